//! Declarative upgrades on the rig: the binaries, the stand-in as KubeDB,
//! the catalog as KubeDB's chart installs it. `version` is desired state;
//! the API checks it against the catalog, the reconciler plans one
//! UpdateVersion, and the current version moves only after it succeeded.

use dbaas_e2e::{TestEnv, new_database, phase, s};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_along_an_allowed_path_and_refuse_the_rest() {
    let mut env = TestEnv::start("upgrade").await;
    let path = "/api/v1/versions?engine=postgres";
    let (status, catalog) = env.api.send(Method::GET, path, env.api.key(), None).await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    let names: Vec<&str> = catalog["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| s(v, "name"))
        .collect();
    assert!(
        names.contains(&"15.8") && names.contains(&"16.4"),
        "{names:?}"
    );

    let mut body = new_database("ledger", "postgres", "db.t3.small", 1, 20);
    body["version"] = json!("15.8");
    let db = env.create_ready(body).await;
    let id = s(&db, "id").to_string();
    assert_eq!(db["current_version"], "15.8");
    let upgrades = format!("/api/v1/databases/{id}/upgrades");
    let (_, allowed) = env
        .api
        .send(Method::GET, &upgrades, env.api.key(), None)
        .await;
    let allowed: Vec<&str> = allowed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| s(v, "name"))
        .collect();
    assert_eq!(allowed, ["16.1", "16.4"]);

    // A forbidden jump, a downgrade, an unknown and a deprecated version:
    // each a 422 naming `version`, and nothing planned.
    for version in ["17.2", "14.13", "99.0", "13.13"] {
        let (status, problem) = env
            .api
            .try_patch_database(&id, &json!({"version": version}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{version}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], "version", "{problem}");
    }
    env.round().await;
    assert!(
        env.ops_requests_of(&db).await.is_empty(),
        "no OpsRequest for a refused version"
    );

    env.api
        .patch_database(&id, &json!({"version": "16.4"}))
        .await;
    env.reconcile().await;
    let planned = env.api.get_database(&id).await;
    assert_eq!(planned["current_version"], "15.8", "planned, not yet run");
    let cr = env.database_cr(&db).await.expect("the CR");
    assert_eq!(cr["spec"]["version"], "15.8");
    let db = env
        .converge_db(&id, "upgraded", 15, |d| {
            d["current_version"] == "16.4" && d["status"] == "ready"
        })
        .await;
    let requests = env.ops_requests_of(&db).await;
    assert_eq!(requests.len(), 1, "one OpsRequest: {requests:?}");
    assert_eq!(requests[0]["spec"]["type"], "UpdateVersion");
    assert_eq!(
        requests[0]["spec"]["updateVersion"]["targetVersion"],
        "16.4"
    );
    assert_eq!(phase(&requests[0]), "Successful");
    let ops = env.api.operations(&id).await;
    let types: Vec<&str> = ops.iter().map(|o| s(o, "type")).collect();
    assert_eq!(types, ["update_version", "provision"], "newest first");
    env.finish().await;
}
