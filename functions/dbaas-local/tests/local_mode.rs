//! The local mode as a newcomer uses it: the real binary, over HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use dbaas_testkit::local_mode::LocalMode;
use serde_json::{Value, json};

/// A running `dbaas-local` process, killed when dropped, with the key its
/// dev tenant has.
struct Local {
    mode: LocalMode,
    base: String,
    key: String,
}

/// Starts `dbaas-local` on `data_dir` and waits until it answers.
async fn start(data_dir: &Path) -> Local {
    let key = "dbk_localmodetestkey0000000000000001".to_string();
    let mut mode = LocalMode::start(
        Path::new(env!("CARGO_BIN_EXE_dbaas-local")),
        data_dir,
        &key,
        &[("DBAAS_STANDIN_PHASE_MS", "1000")],
    );
    mode.wait_healthy(&reqwest::Client::new()).await;
    Local {
        base: mode.url.clone(),
        mode,
        key,
    }
}

impl Local {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls the database until `done` holds; panics with the last state.
    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, db) = self
                .call(reqwest::Method::GET, &format!("/databases/{id}"), None)
                .await;
            if done(&db) {
                return db;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within 60 s; last state: {db}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn operations(&self, id: &str) -> Vec<Value> {
        let (_, ops) = self
            .call(
                reqwest::Method::GET,
                &format!("/operations?database_id={id}"),
                None,
            )
            .await;
        ops["items"].as_array().cloned().unwrap_or_default()
    }
}

async fn create_ready_database(local: &Local) -> String {
    let (status, db) = local
        .call(
            reqwest::Method::POST,
            "/databases",
            Some(json!({"name": "orders", "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 20})),
        )
        .await;
    assert_eq!(status, 201, "{db}");
    let id = db["id"].as_str().unwrap().to_string();
    local
        .wait_for(&id, "provisioning", |d| d["status"] == "ready")
        .await;
    id
}

#[tokio::test]
async fn create_then_patch_converges_with_one_operation() {
    let dir = tempdir();
    let local = start(&dir).await;
    let id = create_ready_database(&local).await;

    let (status, db) = local
        .call(
            reqwest::Method::PATCH,
            &format!("/databases/{id}"),
            Some(json!({"size": "db.t3.large"})),
        )
        .await;
    assert_eq!(status, 200, "{db}");
    let db = local
        .wait_for(&id, "the resize", |d| d["current_size"] == "db.t3.large")
        .await;
    assert_eq!(db["size"], db["current_size"]);

    let scale: Vec<Value> = local
        .operations(&id)
        .await
        .into_iter()
        .filter(|o| o["type"] == "scale_vertical")
        .collect();
    assert_eq!(scale.len(), 1, "{scale:?}");
    assert_eq!(scale[0]["status"], "succeeded");
}

#[tokio::test]
async fn sigkill_mid_operation_loses_nothing() {
    let dir = tempdir();
    let mut local = start(&dir).await;
    let id = create_ready_database(&local).await;
    let (status, _) = local
        .call(
            reqwest::Method::PATCH,
            &format!("/databases/{id}"),
            Some(json!({"replicas": 3, "storage_gb": 40})),
        )
        .await;
    assert_eq!(status, 200);

    // Kill while the first operation (storage comes first) is running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ops = local.operations(&id).await;
        if ops
            .iter()
            .any(|o| o["type"] == "expand_storage" && o["status"] == "running")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no running operation within 30 s: {ops:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    local.mode.child.kill().expect("SIGKILL");
    local.mode.child.wait().unwrap();
    drop(local);

    let local = start(&dir).await;
    let db = local
        .wait_for(&id, "convergence after the restart", |d| {
            d["current_storage_gb"] == 40 && d["current_replicas"] == 3 && d["status"] == "ready"
        })
        .await;
    assert_eq!(
        (db["storage_gb"].as_u64(), db["replicas"].as_u64()),
        (Some(40), Some(3))
    );
    let ops = local.operations(&id).await;
    for t in ["expand_storage", "scale_horizontal"] {
        let of_type: Vec<&Value> = ops.iter().filter(|o| o["type"] == t).collect();
        assert_eq!(of_type.len(), 1, "exactly one {t} operation: {ops:?}");
        assert_eq!(of_type[0]["status"], "succeeded");
        // Adopted, not recreated: the first attempt's OpsRequest finished it.
        assert_eq!(of_type[0]["attempts"], 1, "{ops:?}");
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dbaas-local-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// After "create", the one-command mode offers what the rig does: the
/// connection, the credentials of its stand-in Secret, a rotation, the
/// version catalog and an upgrade.
#[tokio::test]
async fn connection_credentials_and_an_upgrade() {
    let dir = tempdir();
    let local = start(&dir).await;
    let (status, versions) = local
        .call(reqwest::Method::GET, "/versions?engine=postgres", None)
        .await;
    assert_eq!(status, 200, "{versions}");
    let (status, db) = local
        .call(
            reqwest::Method::POST,
            "/databases",
            Some(
                json!({"name": "ledger", "engine": "postgres", "version": "15.8",
                        "size": "db.t3.small", "replicas": 1, "storage_gb": 20}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{db}");
    let id = db["id"].as_str().unwrap().to_string();
    let db = local
        .wait_for(&id, "provisioning", |d| {
            d["status"] == "ready" && !d["connection"].is_null()
        })
        .await;
    assert_eq!(db["connection"]["port"], 5432);
    let credentials = format!("/databases/{id}/credentials");
    let (status, first) = local.call(reqwest::Method::GET, &credentials, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["username"], "postgres");

    let (status, _) = local
        .call(
            reqwest::Method::POST,
            &format!("{credentials}/rotate"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    local
        .wait_for(&id, "the rotation", |d| d["current_auth_rotation"] == 1)
        .await;
    let (_, second) = local.call(reqwest::Method::GET, &credentials, None).await;
    assert_ne!(first["password"], second["password"]);

    let (status, refused) = local
        .call(
            reqwest::Method::PATCH,
            &format!("/databases/{id}"),
            Some(json!({"version": "17.2"})),
        )
        .await;
    assert_eq!(status, 422, "a jump the catalog forbids: {refused}");
    let (status, _) = local
        .call(
            reqwest::Method::PATCH,
            &format!("/databases/{id}"),
            Some(json!({"version": "16.4"})),
        )
        .await;
    assert_eq!(status, 200);
    local
        .wait_for(&id, "the upgrade", |d| d["current_version"] == "16.4")
        .await;
    let types: Vec<Value> = local
        .operations(&id)
        .await
        .into_iter()
        .map(|o| o["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("update_version"),
            json!("rotate_auth"),
            json!("provision")
        ]
    );
}

#[tokio::test]
async fn pause_resume_restart_and_the_history() {
    let dir = tempdir();
    let local = start(&dir).await;
    let id = create_ready_database(&local).await;
    let path = format!("/databases/{id}");
    let (status, _) = local
        .call(reqwest::Method::PATCH, &path, Some(json!({"paused": true})))
        .await;
    assert_eq!(status, 200);
    local
        .wait_for(&id, "the pause", |db| {
            db["status"] == "paused" && db["current_paused"] == true
        })
        .await;
    let (status, _) = local
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"paused": false})),
        )
        .await;
    assert_eq!(status, 200);
    local
        .wait_for(&id, "the resume", |db| {
            db["status"] == "ready" && db["current_paused"] == false
        })
        .await;
    let (status, _) = local
        .call(reqwest::Method::POST, &format!("{path}/restart"), None)
        .await;
    assert_eq!(status, 202);
    local
        .wait_for(&id, "the restart", |db| {
            db["status"] == "ready" && db["current_restarts"] == 1
        })
        .await;
    let (_, events) = local
        .call(
            reqwest::Method::GET,
            &format!("{path}/events?limit=200"),
            None,
        )
        .await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for expected in [
        "created",
        "desired_changed",
        "restart_requested",
        "operation_succeeded",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    let types: Vec<String> = local
        .operations(&id)
        .await
        .iter()
        .filter_map(|o| o["type"].as_str().map(str::to_string))
        .collect();
    assert!(
        ["pause", "resume", "restart"]
            .iter()
            .all(|t| types.iter().any(|x| x == t)),
        "{types:?}"
    );
}
