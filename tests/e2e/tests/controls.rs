//! What users do after "create", on the rig: pause and resume, deletion
//! protection and policy, restart, cancel, and the history that tells it.
//! The API records each as desired state; the reconciler plans; workers
//! act on the real API server, where the stand-in plays KubeDB.

use std::time::Duration;

use dbaas_cluster::{Cluster, Kind};
use dbaas_e2e::{TestEnv, new_database, phase, s};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn types(items: &[Value]) -> Vec<&str> {
    items.iter().map(|e| s(e, "type")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_protect_restart_and_the_history_of_it() {
    let mut env = TestEnv::start("controls").await;
    let mut body = new_database("ledger", "postgres", "db.t3.small", 1, 20);
    body["deletion_protection"] = json!(true);
    body["deletion_policy"] = json!("delete");
    let db = env.create_ready(body).await;
    let id = s(&db, "id").to_string();
    let cr = env.database_cr(&db).await.expect("the CR");
    assert_eq!(cr["spec"]["deletionPolicy"], "Delete");

    // Protected: 409 naming the field; the record and the CR untouched.
    let uri = format!("/api/v1/databases/{id}");
    let (status, problem) = env
        .api
        .send(Method::DELETE, &uri, env.api.key(), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "deletion_protection");
    env.round().await;
    let after = env.database_cr(&db).await.expect("the CR stays");
    assert!(after["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(env.api.get_database(&id).await["deletion_requested"], false);

    // Pause: KubeDB halts it (Services gone, Secret kept) and forces Halt.
    env.api.patch_database(&id, &json!({"paused": true})).await;
    env.converge_db(&id, "paused", 10, |d| d["status"] == "paused")
        .await;
    let cr = env.database_cr(&db).await.expect("the CR");
    assert_eq!(
        (
            &cr["spec"]["halted"],
            phase(&cr),
            &cr["spec"]["deletionPolicy"]
        ),
        (&json!(true), "Halted", &json!("Halt"))
    );
    let service = env
        .cluster
        .get(&Kind::service(), &env.namespace, s(&cr["metadata"], "name"))
        .await
        .expect("read the Service");
    assert!(service.is_none(), "no Service while halted");
    assert!(env.auth_secret(&db).await.is_some(), "the Secret is kept");

    // A change while paused waits for the resume.
    env.api
        .patch_database(&id, &json!({"size": "db.t3.medium"}))
        .await;
    env.round().await;
    env.round().await;
    let paused = env.api.get_database(&id).await;
    assert_eq!(
        (&paused["status"], &paused["current_size"]),
        (&json!("paused"), &json!("db.t3.small"))
    );
    assert!(env.ops_requests_of(&db).await.is_empty());

    env.api.patch_database(&id, &json!({"paused": false})).await;
    let resumed = env
        .converge_db(&id, "resumed and scaled", 15, |d| {
            d["status"] == "ready" && d["current_size"] == "db.t3.medium"
        })
        .await;
    assert_eq!(resumed["current_paused"], false);
    let cr = env.database_cr(&db).await.expect("the CR");
    assert_eq!(
        (&cr["spec"]["halted"], &cr["spec"]["deletionPolicy"]),
        (&json!(false), &json!("Delete")),
        "the user's deletion policy is put back"
    );

    // Restart: one Restart OpsRequest.
    let restart = format!("/api/v1/databases/{id}/restart");
    let (status, restarted) = env
        .api
        .send(Method::POST, &restart, env.api.key(), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{restarted}");
    env.converge_db(&id, "restarted", 10, |d| {
        d["current_restarts"] == 1 && d["status"] == "ready"
    })
    .await;
    let requests = env.ops_requests_of(&db).await;
    let restarts: Vec<&Value> = requests
        .iter()
        .filter(|r| r["spec"]["type"] == "Restart")
        .collect();
    assert_eq!(restarts.len(), 1, "{requests:?}");
    assert_eq!(phase(restarts[0]), "Successful");

    // The story, oldest first.
    let mut events = env.api.events(&id).await;
    events.reverse();
    let story: Vec<&str> = types(&events)
        .into_iter()
        .filter(|t| *t != "status_changed")
        .collect();
    let expected = [
        "created",
        "operation_planned",
        "operation_started",
        "operation_succeeded",
        "desired_changed",
        "operation_planned",
        "operation_started",
        "operation_succeeded",
        "desired_changed",
        "desired_changed",
        "operation_planned",
        "operation_started",
        "operation_succeeded",
    ];
    assert_eq!(&story[..expected.len()], expected, "{events:#?}");
    assert!(story.contains(&"restart_requested"), "{story:?}");
    assert!(
        types(&events).contains(&"status_changed"),
        "status transitions are recorded"
    );
    let ops = env.api.operations(&id).await;
    let op_types: Vec<&str> = ops.iter().rev().map(|o| s(o, "type")).collect();
    assert_eq!(
        op_types,
        [
            "provision",
            "pause",
            "resume",
            "set_deletion_policy",
            "scale_vertical",
            "restart"
        ]
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_takes_a_change_back_until_its_ops_request_exists() {
    let mut env = TestEnv::start("cancel").await;
    let db = env
        .create_ready(new_database("orders", "mysql", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();

    // Planned, not yet run: the cancel takes the change back.
    env.api
        .patch_database(&id, &json!({"size": "db.t3.large"}))
        .await;
    env.reconcile().await;
    let planned = env.api.get_database(&id).await;
    let op = s(&planned, "active_operation_id").to_string();
    let cancel = format!("/api/v1/operations/{op}/cancel");
    let (status, cancelled) = env
        .api
        .send(Method::POST, &cancel, env.api.key(), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let back = env.api.get_database(&id).await;
    assert_eq!(
        (&back["size"], &back["generation"]),
        (&json!("db.t3.small"), &json!(3))
    );
    let (status, _) = env
        .api
        .send(Method::POST, &cancel, env.api.key(), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "an ended operation");
    for _ in 0..3 {
        env.round().await;
    }
    assert!(
        env.ops_requests_of(&db).await.is_empty(),
        "the API server never saw an OpsRequest for the cancelled change"
    );
    assert_eq!(env.api.get_database(&id).await["status"], "ready");

    // Once the worker has created the OpsRequest: 409, and it runs.
    env.stop_standin().await;
    env.api
        .patch_database(&id, &json!({"size": "db.t3.medium"}))
        .await;
    env.reconcile().await;
    let op = s(&env.api.get_database(&id).await, "active_operation_id").to_string();
    let worker = env.spawn_worker(&[]);
    let mut named = false;
    for _ in 0..100 {
        if !env.api.operation(&op).await["ops_request_name"].is_null()
            && !env.ops_requests_of(&db).await.is_empty()
        {
            named = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(named, "the worker created its OpsRequest");
    let cancel = format!("/api/v1/operations/{op}/cancel");
    let (status, problem) = env
        .api
        .send(Method::POST, &cancel, env.api.key(), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(s(&problem, "detail").contains("OpsRequest"), "{problem}");
    env.start_standin();
    let (exit, log) = worker.wait(Duration::from_secs(60)).await;
    assert!(exit.success(), "worker: {exit} ({})", log.display());
    let db = env
        .converge_db(&id, "scaled", 10, |d| {
            d["current_size"] == "db.t3.medium" && d["status"] == "ready"
        })
        .await;
    assert_eq!(env.ops_requests_of(&db).await.len(), 1);
    let events = env.api.events(&id).await;
    assert!(
        types(&events).contains(&"operation_cancelled"),
        "{events:#?}"
    );
    env.finish().await;
}
