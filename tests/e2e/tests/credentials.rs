//! After "create": where the database is and how to log in. The binaries
//! against the rig: the reconciler records the connection once KubeDB (the
//! stand-in) has made the Services and the auth Secret, the API reads the
//! credentials from that Secret, and a rotation is one RotateAuth
//! OpsRequest after which the API returns the new password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dbaas_cluster::{Cluster, Kind};
use dbaas_e2e::{TestEnv, cr_name, new_database, phase, s};
use reqwest::{Method, StatusCode};

/// The username and password in the database's auth Secret, decoded.
async fn secret_login(env: &TestEnv, db: &serde_json::Value) -> (String, String) {
    let secret = env.auth_secret(db).await.expect("the auth Secret");
    let field = |k: &str| {
        let raw = B64
            .decode(secret["data"][k].as_str().expect("a field"))
            .expect("base64");
        String::from_utf8(raw).expect("UTF-8")
    };
    (field("username"), field("password"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_read_credentials_and_rotate_them() {
    let mut env = TestEnv::start("creds").await;
    let db = env
        .api
        .create_database(&new_database("ledger", "postgres", "db.t3.small", 3, 20))
        .await;
    let id = s(&db, "id").to_string();
    assert!(
        db["connection"].is_null(),
        "no connection before KubeDB: {db}"
    );
    let path = format!("/api/v1/databases/{id}/credentials");
    let (status, body) = env.api.send(Method::GET, &path, env.api.key(), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "not ready yet: {body}");

    let db = env
        .converge_db(&id, "ready with a connection", 20, |d| {
            d["status"] == "ready" && !d["connection"].is_null()
        })
        .await;
    let cr = cr_name(&db);
    let ns = env.namespace.clone();
    let c = &db["connection"];
    assert_eq!(c["host"], format!("{cr}.{ns}.svc"));
    assert_eq!(c["port"], 5432);
    assert_eq!(c["standby_service"], format!("{cr}-standby"));
    assert_eq!(
        c["uri"],
        format!("postgresql://postgres@{cr}.{ns}.svc:5432/postgres")
    );
    for service in ["primary_service", "standby_service", "pods_service"] {
        let name = s(c, service);
        let svc = env.cluster.get(&Kind::service(), &ns, name).await.unwrap();
        assert!(svc.is_some(), "the stand-in made Service {name}");
    }

    let (user, password) = secret_login(&env, &db).await;
    let creds = env.api.credentials(&id).await;
    assert_eq!(
        (s(&creds, "username"), s(&creds, "password")),
        (user.as_str(), password.as_str())
    );

    let rotating = env.api.rotate_credentials(&id).await;
    assert_eq!(rotating["auth_rotation"], 1);
    // Until the rotation ran, the current credentials are returned.
    assert_eq!(s(&env.api.credentials(&id).await, "password"), password);
    let db = env
        .converge_db(&id, "rotated", 15, |d| {
            d["current_auth_rotation"] == 1 && d["status"] == "ready"
        })
        .await;
    let requests = env.ops_requests_of(&db).await;
    assert_eq!(requests.len(), 1, "one OpsRequest: {requests:?}");
    assert_eq!(requests[0]["spec"]["type"], "RotateAuth");
    assert_eq!(phase(&requests[0]), "Successful");
    let (_, new_password) = secret_login(&env, &db).await;
    assert_ne!(new_password, password, "KubeDB made a new password");
    assert_eq!(s(&env.api.credentials(&id).await, "password"), new_password);

    let events = env.api.events(&id).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| s(e, "type"))
        .filter(|t| t.starts_with("credentials_"))
        .collect();
    assert_eq!(
        types,
        [
            "credentials_read",
            "credentials_read",
            "credentials_rotation_requested",
            "credentials_read"
        ],
        "newest first: {events:?}"
    );
    env.finish().await;
}
