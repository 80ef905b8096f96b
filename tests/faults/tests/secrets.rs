//! Secrets never reach a log: a full flow of the binaries (API, reconciler,
//! worker, stand-in; e2e harness) with every line of their output captured,
//! then searched for the API keys, the admin token, a rejected key, the
//! database passwords (read through the API before and after a rotation,
//! raw and base64) and the kubeconfig's client key. Every document the
//! store holds is searched the same way. Reconcilers and workers log at
//! debug level, so library logs are searched too. Besides the exact
//! values, any `dbk_` key or `admin-` token of the generated shapes counts
//! as a leak.

use std::time::Instant;

use base64::Engine as _;
use dbaas_core::domain::random_token;
use dbaas_e2e::{TestEnv, new_database, s};
use dbaas_faults::Summary;
use futures::TryStreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Occurrences of `prefix` followed by `len` lowercase alphanumerics.
fn shaped(text: &str, prefix: &str, len: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let tail: String = text[i + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .collect();
        if tail.len() >= len {
            out.push(format!("{prefix}{}", &tail[..len]));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_in_any_log_line() {
    let started = Instant::now();
    let mut env = TestEnv::start("secrets").await;
    env.settings.insert("RUST_LOG".into(), "debug".into());
    let db = env
        .create_ready(new_database("vault", "postgres", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();
    let tenant = s(&db, "tenant_id").to_string();

    // A second key of the tenant, made by the admin subcommand.
    let out = tokio::process::Command::new(dbaas_e2e::binary(dbaas_e2e::API_BIN))
        .args(["admin", "create-key", "--tenant", &tenant])
        .env("MONGODB_URI", &env.rig.mongodb_uri)
        .env("MONGODB_DATABASE", &env.mongodb_database)
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("run dbaas-api admin create-key");
    assert!(
        out.status.success(),
        "admin create-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the key as JSON");
    let key = created["key"].as_str().expect("key").to_string();
    let admin_stderr = String::from_utf8_lossy(&out.stderr).to_string();

    // Use it: change desired state, read, and fail to authenticate with a
    // key that does not exist and a wrong admin token.
    let (status, _) = env
        .api
        .send(
            Method::PATCH,
            &format!("/api/v1/databases/{id}"),
            &key,
            Some(&json!({"size": "db.t3.medium"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rejected = format!("dbk_{}", random_token(32));
    let (status, _) = env
        .api
        .send(
            Method::GET,
            &format!("/api/v1/databases/{id}"),
            &rejected,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong_admin = format!("admin-{}", random_token(24));
    let (status, _) = env
        .api
        .send(
            Method::POST,
            "/api/v1/admin/tenants",
            &wrong_admin,
            Some(&json!({"name": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    env.converge_db(&id, "medium", 15, |d| {
        d["current_size"] == "db.t3.medium" && d["status"] == "ready"
    })
    .await;

    // Credentials read, rotated and read again: both passwords go through
    // the API, and neither may reach a log or the store.
    let first = env.api.credentials(&id).await;
    env.api.rotate_credentials(&id).await;
    env.converge_db(&id, "rotated", 15, |d| {
        d["current_auth_rotation"] == 1 && d["status"] == "ready"
    })
    .await;
    let second = env.api.credentials(&id).await;
    let first_password = s(&first, "password").to_string();
    assert_ne!(first_password, s(&second, "password"), "a new password");

    // The database password, before deletion wipes the Secret.
    let secret = env
        .auth_secret(&db)
        .await
        .expect("the stand-in made the auth Secret");
    let password_b64 = secret["data"]["password"]
        .as_str()
        .expect("a password")
        .to_string();
    let password = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&password_b64)
            .expect("base64"),
    )
    .expect("UTF-8");
    assert!(password.len() >= 16, "a real password: {password:?}");

    env.api.delete_database(&id).await;
    env.converge_db(&id, "deleted", 15, |d| d["status"] == "deleted")
        .await;

    // The kubeconfig's client key, as the processes read it.
    let kubeconfig = std::fs::read_to_string(&env.rig.kubeconfig).expect("kubeconfig");
    let client_key = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data:"))
        .map(|v| v.trim().to_string())
        .expect("client-key-data");

    let mut texts = vec![("admin create-key stderr".to_string(), admin_stderr)];
    // Every document the store holds for this test.
    let store = mongodb::Client::with_uri_str(&env.rig.mongodb_uri)
        .await
        .expect("mongodb uri")
        .database(&env.mongodb_database);
    for collection in store.list_collection_names().await.expect("collections") {
        let docs: Vec<mongodb::bson::Document> = store
            .collection(&collection)
            .find(mongodb::bson::doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("documents");
        for d in docs {
            texts.push((format!("store collection {collection}"), d.to_string()));
        }
    }
    for entry in std::fs::read_dir(&env.procs.logs).expect("the log directory") {
        let path = entry.expect("entry").path();
        texts.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap_or_default(),
        ));
    }
    let secrets = [
        ("the new API key", key.clone()),
        ("a rejected API key", rejected.clone()),
        ("a rejected admin token", wrong_admin.clone()),
        (
            "the database password before rotation",
            first_password.clone(),
        ),
        ("the database password", password.clone()),
        ("the database password (base64)", password_b64.clone()),
        (
            "the kubeconfig client key",
            client_key[..40.min(client_key.len())].to_string(),
        ),
    ];
    let mut leaks = Vec::new();
    let mut lines = 0u64;
    for (file, text) in &texts {
        lines += text.lines().count() as u64;
        for (what, value) in &secrets {
            if text.contains(value.as_str()) {
                leaks.push(format!("{what} is in {file}"));
            }
        }
        for found in shaped(text, "dbk_", 32) {
            leaks.push(format!("an API key ({}...) is in {file}", &found[..8]));
        }
        for found in shaped(text, "admin-", 24) {
            leaks.push(format!("an admin token ({}...) is in {file}", &found[..10]));
        }
    }
    let mut summary = Summary::new("secrets_in_logs");
    summary.trials = lines;
    summary.faults = secrets.len() as u64 + 2;
    summary.converged = 1;
    summary.extra = format!(
        "log_files={} leaks={} secs={}",
        texts.len(),
        leaks.len(),
        started.elapsed().as_secs()
    );
    summary.print();
    assert!(lines > 100, "too few log lines to mean anything: {lines}");
    assert!(
        leaks.is_empty(),
        "secrets in logs (logs in {}):\n{}",
        env.procs.logs.display(),
        leaks.join("\n")
    );
    env.finish().await;
}
