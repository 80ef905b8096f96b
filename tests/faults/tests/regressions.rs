//! Regression tests for the bugs the fault tests found, on the embedded
//! store, queue and cluster (no rig needed), each made deterministic with a
//! crash at a named call.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dbaas_cluster::Cluster;
use dbaas_cluster::embedded::EmbeddedCluster;
use dbaas_control::reconciler::{Reconciler, ReconcilerConfig};
use dbaas_control::worker::{Worker, WorkerConfig};
use dbaas_core::domain::{Database, DatabaseStatus, Operation, OperationStatus, Size};
use dbaas_core::engine::Engine;
use dbaas_faults::inject::Faulty;
use dbaas_queue::Queue;
use dbaas_queue::embedded::SqliteQueue;
use dbaas_standin::{Standin, StandinConfig};
use dbaas_store::embedded::SqliteStore;
use dbaas_store::{DesiredChange, OperationQuery, Store};
use dbaas_testkit::config::{reconciler_config, worker_config};

const NS: &str = "dbaas-databases";

struct Parts {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    cluster: Arc<dyn Cluster>,
    standin: Standin,
    rcfg: ReconcilerConfig,
    wcfg: WorkerConfig,
}

fn parts() -> Parts {
    let cluster: Arc<dyn Cluster> = Arc::new(EmbeddedCluster::in_memory());
    let standin = Standin::new(
        cluster.clone(),
        StandinConfig {
            provision_delay: Duration::ZERO,
            phase_delay: Duration::ZERO,
            namespaces: vec![NS.into()],
            ..Default::default()
        },
    );
    Parts {
        store: Arc::new(SqliteStore::in_memory().expect("store")),
        queue: Arc::new(SqliteQueue::in_memory().expect("queue")),
        cluster,
        standin,
        rcfg: reconciler_config(NS, "regression"),
        wcfg: WorkerConfig {
            dequeue_timeout: Duration::ZERO,
            ..worker_config(NS)
        },
    }
}

impl Parts {
    /// Applies `change` at generation 1, then runs a pass that dies right
    /// after recording the operation it plans; returns that operation.
    async fn change_then_die_after_recording(&self, id: &str, change: &DesiredChange) -> Operation {
        self.store
            .update_desired(id, 1, change)
            .await
            .expect("update")
            .expect("applied");
        let faulty = Faulty::new(self.store.clone(), self.queue.clone(), self.cluster.clone());
        faulty.inj.arm_crash_at("store.insert_operation", 1, true);
        let crashed = faulty.inj.crashed();
        let pass = Reconciler {
            store: &faulty.store,
            queue: &faulty.queue,
            cluster: &faulty.cluster,
            config: &self.rcfg,
        };
        tokio::select! { r = pass.run_pass() => panic!("the pass ended instead of crashing: {r:?}"), () = crashed => {} }
        self.store
            .list_operations(&OperationQuery::default())
            .await
            .expect("list")
            .into_iter()
            .find(|o| o.status == OperationStatus::Pending)
            .expect("the recorded operation")
    }

    /// Passes, stand-in steps and workers until the database is ready and
    /// in sync with nothing queued.
    async fn converge(&self, id: &str) -> Database {
        for _ in 0..40 {
            Reconciler {
                store: &*self.store,
                queue: &*self.queue,
                cluster: &*self.cluster,
                config: &self.rcfg,
            }
            .run_pass()
            .await
            .expect("pass");
            while !self.queue.pending().await.expect("pending").is_empty() {
                let w = Worker {
                    store: &*self.store,
                    queue: &*self.queue,
                    cluster: &*self.cluster,
                    config: &self.wcfg,
                };
                let stand = async {
                    loop {
                        self.standin.step(Utc::now()).await.expect("stand-in step");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                tokio::select! { r = w.run_once(std::future::pending()) => { r.expect("worker"); } () = stand => {} }
            }
            self.standin.step(Utc::now()).await.expect("stand-in step");
            let db = self
                .store
                .get_database(id)
                .await
                .expect("get")
                .expect("exists");
            if db.status == DatabaseStatus::Ready
                && db.in_sync()
                && db.active_operation_id.is_none()
            {
                return db;
            }
        }
        panic!("database {id} did not converge");
    }
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
    let p = parts();
    let db = new_db(Engine::Postgres);
    p.store.insert_database(&db).await.expect("insert");
    p.converge(&db.id).await;

    // Desired state changes; the pass that plans it dies right after
    // recording the operation.
    let change = DesiredChange {
        size: Some(Size::Large),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    let orphan = p.change_then_die_after_recording(&db.id, &change).await;

    // Desired state changes again before the next pass: the next plan has
    // another id, and the recorded one must not stay pending.
    let change = DesiredChange {
        size: Some(Size::Xlarge),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    p.store
        .update_desired(&db.id, 2, &change)
        .await
        .expect("update")
        .expect("applied");
    // The dead pass's Lease: same holder here, so the next pass may run.
    let done = p.converge(&db.id).await;
    assert_eq!(done.current_size, Some(Size::Xlarge));
    let ops = p
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
    let p = parts();
    let db = new_db(Engine::Mongodb);
    p.store.insert_database(&db).await.expect("insert");
    p.converge(&db.id).await;
    let change = DesiredChange {
        replicas: Some(3),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    let recorded = p.change_then_die_after_recording(&db.id, &change).await;
    let done = p.converge(&db.id).await;
    assert_eq!(done.current_replicas, Some(3));
    let ops = p
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
