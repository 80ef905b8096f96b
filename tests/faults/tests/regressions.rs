//! Regression tests for the bugs the fault tests found, on the embedded
//! store, queue and cluster (no rig needed), each made deterministic with a
//! crash at a named call.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dbaas_core::domain::{Database, DatabaseStatus, Operation, OperationStatus, Size};
use dbaas_core::engine::Engine;
use dbaas_faults::inject::Faulty;
use dbaas_standin::StandinConfig;
use dbaas_store::embedded::SqliteStore;
use dbaas_store::{DesiredChange, OperationQuery};
use dbaas_testkit::control_loop::Loop;

const NS: &str = "dbaas-databases";

/// Embedded parts with the stand-in running in the background.
async fn parts() -> Loop {
    let mut l = Loop::embedded(NS).await;
    l.reconciler.holder = "regression".into();
    l.worker.dequeue_timeout = Duration::ZERO;
    l.spawn_standin(
        StandinConfig {
            provision_delay: Duration::ZERO,
            phase_delay: Duration::ZERO,
            ..Default::default()
        },
        Duration::from_millis(5),
    );
    l
}

/// Applies `change` at generation 1, then runs a pass that dies right
/// after recording the operation it plans; returns that operation.
async fn change_then_die_after_recording(l: &Loop, id: &str, change: &DesiredChange) -> Operation {
    let store = &l.parts.store;
    store
        .update_desired(id, 1, change)
        .await
        .expect("update")
        .expect("applied");
    let faulty = Faulty::new(&l.parts);
    faulty.inj.arm_crash_at("store.insert_operations", 1, true);
    let crashed = faulty.inj.crashed();
    let dying = l.over(faulty.parts.clone());
    tokio::select! { r = dying.pass() => panic!("the pass ended instead of crashing: {r:?}"), () = crashed => {} }
    store
        .list_operations(&OperationQuery::default())
        .await
        .expect("list")
        .into_iter()
        .find(|o| o.status == OperationStatus::Pending)
        .expect("the recorded operation")
}

/// Passes and workers until the database is ready and in sync with
/// nothing queued.
async fn converge(l: &Loop, id: &str) -> Database {
    l.converge(id, 40)
        .await
        .expect("pass or worker")
        .unwrap_or_else(|| panic!("database {id} did not converge"))
}

fn new_db(engine: Engine) -> Database {
    let now = Utc::now();
    Database::declared("tn-regression", "orphan", engine, Size::Small, 1, 10, now)
}

/// Found by `crash_trials_in_process`: a reconciler that died between
/// recording an operation and making it the database's active one, followed
/// by a change of desired state, left that operation `pending` for ever
/// (never enqueued, never superseded). The next pass now supersedes it.
#[tokio::test]
async fn an_operation_recorded_by_a_dead_pass_is_superseded_not_left_pending() {
    let p = parts().await;
    let db = new_db(Engine::Postgres);
    p.parts
        .store
        .insert_database(&db, &[])
        .await
        .expect("insert");
    converge(&p, &db.id).await;

    // Desired state changes; the pass that plans it dies right after
    // recording the operation.
    let change = DesiredChange {
        size: Some(Size::Large),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    let orphan = change_then_die_after_recording(&p, &db.id, &change).await;

    // Desired state changes again before the next pass: the next plan has
    // another id, and the recorded one must not stay pending.
    let change = DesiredChange {
        size: Some(Size::Xlarge),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    p.parts
        .store
        .update_desired(&db.id, 2, &change)
        .await
        .expect("update")
        .expect("applied");
    // The dead pass's Lease: same holder here, so the next pass may run.
    let done = converge(&p, &db.id).await;
    assert_eq!(done.current_size, Some(Size::Xlarge));
    let ops = p
        .parts
        .store
        .list_operations(&OperationQuery::default())
        .await
        .expect("list");
    let left = ops
        .iter()
        .find(|o| o.id == orphan.id)
        .expect("the orphan is still recorded");
    assert_eq!(left.status, OperationStatus::Superseded, "{left:?}");
    assert!(
        ops.iter().all(|o| o.status.is_final()),
        "no operation left open: {ops:?}"
    );
}

/// The same crash without a change in between: the next pass plans the
/// same operation (same id) and runs it; nothing is superseded.
#[tokio::test]
async fn an_operation_recorded_by_a_dead_pass_is_replanned_under_its_id() {
    let p = parts().await;
    let db = new_db(Engine::Mongodb);
    p.parts
        .store
        .insert_database(&db, &[])
        .await
        .expect("insert");
    converge(&p, &db.id).await;
    let change = DesiredChange {
        replicas: Some(3),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    let recorded = change_then_die_after_recording(&p, &db.id, &change).await;
    let done = converge(&p, &db.id).await;
    assert_eq!(done.current_replicas, Some(3));
    let ops = p
        .parts
        .store
        .list_operations(&OperationQuery::default())
        .await
        .expect("list");
    let op = ops.iter().find(|o| o.id == recorded.id).expect("recorded");
    assert_eq!(
        op.status,
        OperationStatus::Succeeded,
        "the recorded operation ran: {ops:?}"
    );
    assert_eq!(
        ops.iter().filter(|o| o.type_() == recorded.type_()).count(),
        1,
        "no second operation: {ops:?}"
    );
}

/// Found by `schemathesis_fuzzing`: answers the document did not list
/// (400 for an id that is not UTF-8, 413/415 on the admin routes, 429 on
/// every tenant route), `limit` without its bounds, and query parameters
/// whose empty value the API takes as absent without saying so.
#[tokio::test]
async fn the_openapi_document_lists_what_the_api_answers() {
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let api =
        dbaas_faults::serve_api(store, "regression-admin-token", Duration::from_secs(5)).await;
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", api.base))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let responses = |method: &str, path: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"))
            .keys()
            .cloned()
            .collect()
    };
    for (method, path, want) in [
        ("post", "/api/v1/admin/tenants", &["400", "413", "415"][..]),
        ("post", "/api/v1/admin/tenants/{id}/api-keys", &["400"][..]),
        ("get", "/api/v1/databases/{id}", &["400", "429"][..]),
        ("delete", "/api/v1/databases/{id}", &["400", "429"][..]),
        ("patch", "/api/v1/databases/{id}", &["413", "429"][..]),
        ("get", "/api/v1/operations/{id}", &["400", "429"][..]),
    ] {
        let have = responses(method, path);
        for code in want {
            assert!(
                have.iter().any(|c| c == code),
                "{method} {path} does not list {code}: {have:?}"
            );
        }
    }
    let mut query_params = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            for p in op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
            {
                query_params += 1;
                assert_eq!(p["allowEmptyValue"], true, "{method} {path} {}", p["name"]);
                if p["name"] == "limit" {
                    assert_eq!(
                        (
                            p["schema"]["minimum"].as_u64(),
                            p["schema"]["maximum"].as_u64()
                        ),
                        (Some(1), Some(200)),
                        "{method} {path}"
                    );
                }
            }
        }
    }
    assert!(query_params >= 6, "query parameters found: {query_params}");
}
