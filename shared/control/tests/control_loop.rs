//! The control loop (reconciler, worker, KubeDB stand-in) on the embedded
//! store, queue and cluster: every scenario of the design, in-process and
//! deterministic. The same roles run as processes on the real rig in
//! `tests/e2e`.

use std::time::Duration;

use chrono::Utc;
use dbaas_cluster::Kind;
use dbaas_core::domain::{
    Database, DatabaseStatus, EventType, OnDelete, OperationStatus, OperationType, Size,
    random_token,
};
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::kubedb::{self, DeletionPolicy};
use dbaas_core::naming;
use dbaas_standin::{FAIL_ANNOTATION, StandinConfig};
use dbaas_store::{DesiredChange, EventQuery, OperationQuery};
use dbaas_testkit::control_loop::Loop;
use serde_json::json;

const NS: &str = "loop";

/// The testkit's loop over embedded parts, with the scenario helpers below.
struct Fixture(Loop);

impl std::ops::Deref for Fixture {
    type Target = Loop;
    fn deref(&self) -> &Loop {
        &self.0
    }
}

impl Fixture {
    /// Embedded parts; the stand-in runs in the background when `operator`.
    async fn new(operator: bool) -> Fixture {
        let mut l = Loop::embedded(NS).await;
        dbaas_standin::catalog::install(&*l.parts.cluster)
            .await
            .expect("install the catalog");
        l.reconciler.lease_ttl = Duration::from_secs(60);
        l.worker.poll_interval = Duration::from_millis(5);
        l.worker.operation_deadline = Duration::from_secs(20);
        if operator {
            l.spawn_standin(
                StandinConfig {
                    provision_delay: Duration::ZERO,
                    phase_delay: Duration::ZERO,
                    failure_ratio: 0.0,
                    seed: 1,
                    ..Default::default()
                },
                Duration::from_millis(5),
            );
        }
        Fixture(l)
    }

    /// Pass and work until the database is ready and in sync (or `rounds` run out).
    async fn settle(&self, id: &str, rounds: usize) -> Database {
        match self.0.converge(id, rounds).await.expect("pass or worker") {
            Some(db) => db,
            None => panic!(
                "did not converge in {rounds} rounds: {:?}",
                self.db(id).await
            ),
        }
    }

    async fn db(&self, id: &str) -> Database {
        self.parts
            .store
            .get_database(id)
            .await
            .unwrap()
            .expect("database exists")
    }

    async fn create(&self, engine: Engine, size: Size, replicas: u32, storage_gb: u32) -> String {
        let db = Database::declared(
            "tn-test",
            format!("db{}", random_token(4)),
            engine,
            size,
            replicas,
            storage_gb,
            Utc::now(),
        );
        self.parts.store.insert_database(&db, &[]).await.unwrap();
        db.id
    }

    async fn patch(&self, id: &str, change: DesiredChange) {
        let db = self.db(id).await;
        self.parts
            .store
            .update_desired(id, db.generation, &change)
            .await
            .unwrap()
            .expect("patch applies");
    }

    async fn ops_requests(&self, engine: Engine) -> Vec<serde_json::Value> {
        self.parts
            .cluster
            .list(&Kind::ops_request(engine), NS)
            .await
            .unwrap()
    }

    async fn operations(&self, id: &str) -> Vec<dbaas_core::domain::Operation> {
        self.parts
            .store
            .list_operations(&OperationQuery {
                database_id: Some(id.into()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// A ready Postgres database scaled from 1 to 3 replicas, its operation
    /// planned, dequeued and claimed until `claimed_until` (no worker runs
    /// it); returns the database and operation ids.
    async fn claimed_scale_out(&self, claimed_until: chrono::DateTime<Utc>) -> (String, String) {
        let id = self.create(Engine::Postgres, Size::Small, 1, 20).await;
        self.settle(&id, 5).await;
        self.patch(
            &id,
            DesiredChange {
                replicas: Some(3),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(self.pass().await.expect("pass").operations_created, 1);
        let op_id = self
            .parts
            .queue
            .dequeue(Duration::from_millis(10))
            .await
            .unwrap()
            .expect("queued");
        self.parts
            .store
            .claim_operation(&op_id, Utc::now(), claimed_until, "a-worker-that-died")
            .await
            .unwrap()
            .expect("claimed");
        (id, op_id)
    }

    /// Passes and workers until the database shows `status` with no
    /// operation under way (or `rounds` run out).
    async fn settle_to(&self, id: &str, status: DatabaseStatus, rounds: usize) -> Database {
        for _ in 0..rounds {
            self.pass().await.expect("pass");
            self.work().await.expect("worker");
            let db = self.db(id).await;
            if db.status == status && db.active_operation_id.is_none() {
                return db;
            }
        }
        panic!("not {status:?} in {rounds} rounds: {:?}", self.db(id).await)
    }

    async fn cr(&self, id: &str) -> serde_json::Value {
        let db = self.db(id).await;
        self.parts
            .cluster
            .get(&Kind::database(db.engine), NS, &self.cr_name(id).await)
            .await
            .unwrap()
            .expect("the CR")
    }

    async fn types_of(&self, id: &str) -> Vec<OperationType> {
        let mut ops = self.operations(id).await;
        ops.reverse();
        ops.into_iter().map(|o| o.type_()).collect()
    }

    async fn cr_name(&self, id: &str) -> String {
        let db = self.db(id).await;
        naming::cr_name(&db.name, &db.id)
    }
}

#[tokio::test]
async fn provision_then_user_scales_with_one_ops_request() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 1, 20).await;
    let db = l.settle(&id, 5).await;
    assert_eq!(
        (db.current_size, db.current_replicas, db.current_storage_gb),
        (Some(Size::Small), Some(1), Some(20))
    );

    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Large),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_size, Some(Size::Large));
    assert_eq!(db.observed_generation, db.generation);
    assert_eq!(l.ops_requests(Engine::Postgres).await.len(), 1);
    let ops = l.operations(&id).await;
    assert_eq!(
        ops.iter()
            .filter(|o| o.type_() == OperationType::ScaleVertical)
            .count(),
        1
    );
    assert!(
        ops.iter().all(|o| o.status == OperationStatus::Succeeded),
        "{ops:?}"
    );
}

#[tokio::test]
async fn rapid_updates_make_one_operation_for_the_final_value() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Mongodb, Size::Small, 3, 20).await;
    l.settle(&id, 5).await;
    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Medium),
            ..Default::default()
        },
    )
    .await;
    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Large),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_size, Some(Size::Large));
    let reqs = l.ops_requests(Engine::Mongodb).await;
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let change = kubedb::ObservedOpsRequest::from_value(&reqs[0])
        .unwrap()
        .change;
    assert_eq!(change, Some(Change::Size(Size::Large)));
}

#[tokio::test]
async fn manual_change_to_the_cr_is_reverted() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Medium, 3, 50).await;
    l.settle(&id, 5).await;
    let name = l.cr_name(&id).await;
    l.parts
        .cluster
        .merge_patch(
            &Kind::database(Engine::Postgres),
            NS,
            &name,
            &json!({"spec": {"replicas": 5}}),
        )
        .await
        .unwrap();

    l.pass().await.expect("pass");
    assert_eq!(
        l.db(&id).await.current_replicas,
        Some(5),
        "the pass records what the CR shows"
    );
    l.work().await.expect("worker");
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_replicas, Some(3));
    let cr = l
        .parts
        .cluster
        .get(&Kind::database(Engine::Postgres), NS, &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cr["spec"]["replicas"], 3);
}

#[tokio::test]
async fn in_flight_ops_request_is_not_planned_again() {
    // No operator: the request stays in flight.
    let l = Fixture::new(false).await;
    let id = l.create(Engine::Mysql, Size::Small, 3, 20).await;
    let db = l.db(&id).await;
    let name = l.cr_name(&id).await;
    let manifest = kubedb::DatabaseManifest {
        engine: Engine::Mysql,
        name: name.clone(),
        namespace: NS.into(),
        version: db.version.clone(),
        size: Size::Small,
        replicas: 3,
        storage_gb: 20,
        database_id: id.clone(),
        tenant_id: db.tenant_id.clone(),
        deletion_policy: DeletionPolicy::WipeOut,
    };
    let kind = Kind::database(Engine::Mysql);
    l.parts
        .cluster
        .create(&kind, NS, &kubedb::database_object(&manifest))
        .await
        .unwrap();
    l.parts
        .cluster
        .merge_patch_status(&kind, NS, &name, &json!({"status": {"phase": "Ready"}}))
        .await
        .unwrap();
    let someone_elses = kubedb::ops_request_object(
        Engine::Mysql,
        "manual",
        NS,
        &name,
        &Change::Replicas(5),
        &[],
    );
    l.parts
        .cluster
        .create(&Kind::ops_request(Engine::Mysql), NS, &someone_elses)
        .await
        .unwrap();
    l.patch(
        &id,
        DesiredChange {
            replicas: Some(5),
            ..Default::default()
        },
    )
    .await;

    let report = l.pass().await.expect("pass");
    assert_eq!(report.operations_created, 0, "{report:?}");
    assert!(
        report.drifts.is_empty(),
        "the in-flight request covers the drift: {report:?}"
    );
    assert!(l.operations(&id).await.is_empty());
}

#[tokio::test]
async fn failures_are_retried_then_surface_then_a_patch_recovers() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Redis, Size::Small, 1, 20).await;
    l.settle(&id, 5).await;
    let name = l.cr_name(&id).await;
    let kind = Kind::database(Engine::Redis);
    l.parts
        .cluster
        .merge_patch(
            &kind,
            NS,
            &name,
            &json!({"metadata": {"annotations": {FAIL_ANNOTATION: "true"}}}),
        )
        .await
        .unwrap();
    l.patch(
        &id,
        DesiredChange {
            storage_gb: Some(30),
            ..Default::default()
        },
    )
    .await;

    for _ in 0..6 {
        l.pass().await.expect("pass");
        l.work().await.expect("worker");
    }
    let db = l.db(&id).await;
    assert_eq!(db.status, DatabaseStatus::Failed, "{db:?}");
    let failed = db
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("a Failed condition");
    assert!(
        failed
            .message
            .contains("expand_storage failed after 3 attempts"),
        "{failed:?}"
    );
    let ops = l.operations(&id).await;
    let op = ops
        .iter()
        .find(|o| o.type_() == OperationType::ExpandStorage)
        .unwrap();
    assert_eq!((op.status, op.attempts), (OperationStatus::Failed, 3));
    let mut names: Vec<String> = l
        .ops_requests(Engine::Redis)
        .await
        .iter()
        .map(|r| kubedb::name_of(r).unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        (1..=3)
            .map(|a| format!("{}-{a}", op.id))
            .collect::<Vec<_>>(),
        "one OpsRequest per attempt"
    );

    l.parts
        .cluster
        .merge_patch(
            &kind,
            NS,
            &name,
            &json!({"metadata": {"annotations": {FAIL_ANNOTATION: null}}}),
        )
        .await
        .unwrap();
    l.patch(
        &id,
        DesiredChange {
            storage_gb: Some(40),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_storage_gb, Some(40));
    assert!(db.conditions.iter().all(|c| c.type_ != "Failed"));
    let ops = l.operations(&id).await;
    assert!(
        ops.iter()
            .any(|o| o.id == op.id && o.status == OperationStatus::Superseded),
        "{ops:?}"
    );
}

#[tokio::test]
async fn a_pending_operation_for_an_old_generation_is_superseded() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Mariadb, Size::Small, 1, 20).await;
    l.settle(&id, 5).await;
    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Medium),
            ..Default::default()
        },
    )
    .await;
    l.pass().await.expect("pass"); // plans medium; no worker runs
    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Large),
            ..Default::default()
        },
    )
    .await;
    l.pass().await.expect("pass"); // supersedes medium, plans large
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_size, Some(Size::Large));
    let ops = l.operations(&id).await;
    let statuses: Vec<_> = ops
        .iter()
        .filter(|o| o.type_() == OperationType::ScaleVertical)
        .map(|o| o.status)
        .collect();
    assert_eq!(
        statuses,
        vec![OperationStatus::Succeeded, OperationStatus::Superseded],
        "newest first"
    );
    assert_eq!(
        l.ops_requests(Engine::Mariadb).await.len(),
        1,
        "the superseded one never reached the cluster"
    );
}

#[tokio::test]
async fn an_orphaned_running_operation_is_requeued_and_adopted() {
    let l = Fixture::new(true).await;
    // A worker takes the id and dies after claiming: the claim expires and
    // the queue has lost the id altogether (a Redis restart, say).
    let (id, op_id) = l
        .claimed_scale_out(Utc::now() - chrono::Duration::seconds(1))
        .await;
    l.parts.queue.ack(&op_id).await.unwrap();

    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_replicas, Some(3));
    assert_eq!(l.ops_requests(Engine::Postgres).await.len(), 1);
    let op = l.parts.store.get_operation(&op_id).await.unwrap().unwrap();
    assert_eq!((op.status, op.attempts), (OperationStatus::Succeeded, 1));
}

#[tokio::test]
async fn delete_removes_the_cr_and_finalizes_for_every_engine() {
    let l = Fixture::new(true).await;
    for engine in Engine::ALL {
        let id = l.create(engine, Size::Micro, 1, 10).await;
        l.settle(&id, 5).await;
        let name = l.cr_name(&id).await;
        l.patch(
            &id,
            DesiredChange {
                delete: true,
                status: Some(DatabaseStatus::Deleting),
                ..Default::default()
            },
        )
        .await;
        for _ in 0..5 {
            l.pass().await.expect("pass");
            l.work().await.expect("worker");
        }
        let db = l.db(&id).await;
        assert_eq!(db.status, DatabaseStatus::Deleted, "{engine}: {db:?}");
        assert!(
            l.parts
                .cluster
                .get(&Kind::database(engine), NS, &name)
                .await
                .unwrap()
                .is_none(),
            "{engine}: CR gone"
        );
        let ops = l.operations(&id).await;
        assert!(
            ops.iter().any(|o| o.type_() == OperationType::Deprovision
                && o.status == OperationStatus::Succeeded)
        );
    }
}

#[tokio::test]
async fn a_held_lease_makes_the_pass_a_no_op() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 1, 20).await;
    assert!(
        l.parts
            .cluster
            .try_acquire_lease(NS, "dbaas-reconciler", "someone-else", 60, Utc::now())
            .await
            .unwrap()
    );
    let report = l.pass().await.expect("pass");
    assert!(report.skipped);
    assert!(l.operations(&id).await.is_empty());
    l.parts
        .cluster
        .release_lease(NS, "dbaas-reconciler", "someone-else")
        .await
        .unwrap();
    assert!(!l.pass().await.expect("pass").skipped);
    assert_eq!(l.operations(&id).await.len(), 1);
}

/// The pass reads unfinished operations first, then the records and the
/// cluster at once. An operation that ends in between is unfinished in the
/// first read and no longer active in the second, while the CR read may
/// predate its change: the database must wait a pass, not get the change
/// planned (and an OpsRequest made) a second time.
#[tokio::test]
async fn an_operation_ending_during_the_reads_is_not_planned_again() {
    let l = Fixture::new(true).await;
    let (id, op_id) = l
        .claimed_scale_out(Utc::now() + chrono::Duration::seconds(60))
        .await;
    // What the second read sees: the worker already released the database
    // (the CR, read at the same time, still has 1 replica).
    l.parts.store.end_operation(&id, &op_id).await.unwrap();

    let report = l.pass().await.expect("pass");
    assert_eq!(report.operations_created, 0, "{report:?}");
    assert_eq!(l.operations(&id).await.len(), 2, "provision and the scale");
}

#[tokio::test]
async fn rotations_asked_for_together_make_one_rotate_auth_and_a_new_password() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 3, 20).await;
    let db = l.settle(&id, 5).await;
    let cr = l.cr_name(&id).await;
    let connection = db.connection.expect("the connection, once ready");
    assert_eq!(connection.host, format!("{cr}.{NS}.svc"));
    assert_eq!(connection.standby_service, Some(format!("{cr}-standby")));
    assert_eq!(connection.auth_secret, format!("{cr}-auth"));
    let password = async || {
        let secret = l
            .parts
            .cluster
            .get(&Kind::secret(), NS, &connection.auth_secret)
            .await
            .unwrap()
            .expect("the auth Secret");
        secret["data"]["password"].clone()
    };
    let before = password().await;

    for n in 1..=3 {
        l.patch(
            &id,
            DesiredChange {
                auth_rotation: Some(n),
                ..Default::default()
            },
        )
        .await;
    }
    let db = l.settle(&id, 5).await;
    assert_eq!((db.auth_rotation, db.current_auth_rotation), (3, 3));
    let requests = l.ops_requests(Engine::Postgres).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["spec"]["type"], "RotateAuth");
    let rotations: Vec<_> = l
        .operations(&id)
        .await
        .into_iter()
        .filter(|o| o.type_() == OperationType::RotateAuth)
        .collect();
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert_eq!(rotations[0].action.desired_state().auth_rotation, Some(3));
    assert_ne!(password().await, before, "KubeDB made a new password");

    // Nothing more to do: another pass plans nothing.
    assert_eq!(l.pass().await.expect("pass").operations_created, 0);
}

#[tokio::test]
async fn an_upgrade_is_one_update_version_and_lands_only_after_success() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 1, 20).await;
    l.patch(
        &id,
        DesiredChange {
            version: Some("15.8".into()),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_version.as_deref(), Some("15.8"));
    assert!(
        l.ops_requests(Engine::Postgres).await.is_empty(),
        "created at 15.8"
    );

    for version in ["16.1", "16.4"] {
        l.patch(
            &id,
            DesiredChange {
                version: Some(version.into()),
                ..Default::default()
            },
        )
        .await;
    }
    assert_eq!(l.pass().await.expect("pass").operations_created, 1);
    assert_eq!(
        l.db(&id).await.current_version.as_deref(),
        Some("15.8"),
        "planned, not yet run"
    );
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_version.as_deref(), Some("16.4"));
    let requests = l.ops_requests(Engine::Postgres).await;
    assert_eq!(requests.len(), 1, "one request, for the final version");
    assert_eq!(
        requests[0]["spec"]["updateVersion"]["targetVersion"],
        "16.4"
    );
    let cr = l
        .parts
        .cluster
        .get(&Kind::database(Engine::Postgres), NS, &l.cr_name(&id).await)
        .await
        .unwrap()
        .expect("the CR");
    assert_eq!(cr["spec"]["version"], "16.4");

    // Set back by hand in the CR: drift, reverted by another upgrade.
    l.parts
        .cluster
        .merge_patch(
            &Kind::database(Engine::Postgres),
            NS,
            &l.cr_name(&id).await,
            &json!({"spec": {"version": "16.1"}}),
        )
        .await
        .unwrap();
    let db = l.settle(&id, 5).await;
    assert_eq!(db.current_version.as_deref(), Some("16.4"));
    assert_eq!(l.ops_requests(Engine::Postgres).await.len(), 2);
}

#[tokio::test]
async fn a_pause_keeps_changes_for_the_resume_and_the_deletion_policy_comes_back() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 1, 20).await;
    l.settle(&id, 5).await;
    l.patch(
        &id,
        DesiredChange {
            deletion_policy: Some(OnDelete::Delete),
            ..Default::default()
        },
    )
    .await;
    l.settle(&id, 5).await;
    assert_eq!(l.cr(&id).await["spec"]["deletionPolicy"], "Delete");

    l.patch(
        &id,
        DesiredChange {
            paused: Some(true),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle_to(&id, DatabaseStatus::Paused, 5).await;
    assert!(db.current_paused);
    let cr = l.cr(&id).await;
    assert_eq!(
        (
            &cr["spec"]["halted"],
            &cr["status"]["phase"],
            &cr["spec"]["deletionPolicy"]
        ),
        (&json!(true), &json!("Halted"), &json!("Halt")),
        "KubeDB halts it and forces Halt"
    );

    // Changed while paused: kept, not applied.
    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Medium),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..2 {
        l.pass().await.expect("pass");
        l.work().await.expect("worker");
    }
    let db = l.db(&id).await;
    assert_eq!(
        (db.status, db.size, db.current_size),
        (DatabaseStatus::Paused, Size::Medium, Some(Size::Small))
    );
    let synced = db.conditions.iter().find(|c| c.type_ == "Synced").unwrap();
    assert!(synced.message.contains("after the resume"), "{synced:?}");
    assert!(l.ops_requests(Engine::Postgres).await.is_empty());

    l.patch(
        &id,
        DesiredChange {
            paused: Some(false),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle(&id, 8).await;
    assert_eq!(
        (db.current_size, db.current_paused),
        (Some(Size::Medium), false)
    );
    let cr = l.cr(&id).await;
    assert_eq!(
        (&cr["spec"]["halted"], &cr["spec"]["deletionPolicy"]),
        (&json!(false), &json!("Delete")),
        "resumed, and the user's policy put back"
    );
    assert_eq!(
        l.types_of(&id).await,
        [
            OperationType::Provision,
            OperationType::SetDeletionPolicy,
            OperationType::Pause,
            OperationType::Resume,
            OperationType::SetDeletionPolicy,
            OperationType::ScaleVertical,
        ]
    );
    let requests = l.ops_requests(Engine::Postgres).await;
    assert_eq!(requests.len(), 1, "only the scaling is an OpsRequest");
}

#[tokio::test]
async fn restarts_asked_for_together_make_one_restart_ops_request() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Mysql, Size::Small, 1, 20).await;
    l.settle(&id, 5).await;
    for n in 1..=2 {
        l.patch(
            &id,
            DesiredChange {
                restarts: Some(n),
                ..Default::default()
            },
        )
        .await;
    }
    let db = l.settle(&id, 5).await;
    assert_eq!((db.restarts, db.current_restarts), (2, 2));
    let requests = l.ops_requests(Engine::Mysql).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["spec"]["type"], "Restart");
}

#[tokio::test]
async fn a_cancel_the_api_could_not_finish_is_finished_by_the_pass() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 1, 20).await;
    l.settle(&id, 5).await;
    l.patch(
        &id,
        DesiredChange {
            size: Some(Size::Large),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(l.pass().await.expect("pass").operations_created, 1);
    let op = l.db(&id).await.active_operation_id.expect("planned");
    // The API's cancel committed, then its process died before it took
    // the change back.
    l.parts
        .store
        .cancel_operation(&op, Utc::now(), &[])
        .await
        .unwrap()
        .expect("cancelled");
    let db = l.settle(&id, 5).await;
    assert_eq!((db.size, db.current_size), (Size::Small, Some(Size::Small)));
    assert!(
        l.ops_requests(Engine::Postgres).await.is_empty(),
        "no OpsRequest for a cancelled operation"
    );
    assert_eq!(
        l.types_of(&id).await,
        [OperationType::Provision, OperationType::ScaleVertical]
    );
}

#[tokio::test]
async fn a_deletion_with_halt_keeps_the_secret_and_the_history_says_so() {
    let l = Fixture::new(true).await;
    let id = l.create(Engine::Postgres, Size::Small, 1, 20).await;
    l.patch(
        &id,
        DesiredChange {
            deletion_policy: Some(OnDelete::Halt),
            ..Default::default()
        },
    )
    .await;
    let db = l.settle(&id, 5).await;
    let secret = db.connection.expect("connection").auth_secret;
    l.patch(
        &id,
        DesiredChange {
            delete: true,
            status: Some(DatabaseStatus::Deleting),
            ..Default::default()
        },
    )
    .await;
    l.settle_to(&id, DatabaseStatus::Deleted, 5).await;
    assert!(
        l.parts
            .cluster
            .get(&Kind::secret(), NS, &secret)
            .await
            .unwrap()
            .is_some(),
        "halt keeps the Secret"
    );
    let events = l
        .parts
        .store
        .list_events(&EventQuery {
            database_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events[0].type_, EventType::Deleted);
    assert!(events[0].message.contains("kept"), "{:?}", events[0]);
    let types: Vec<EventType> = events.iter().rev().map(|e| e.type_).collect();
    for expected in [
        EventType::OperationPlanned,
        EventType::OperationStarted,
        EventType::OperationSucceeded,
        EventType::StatusChanged,
    ] {
        assert!(types.contains(&expected), "{expected:?} in {types:?}");
    }
}
