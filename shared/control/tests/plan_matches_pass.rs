//! The plan endpoint and the reconciler agree: for each kind of change
//! (a table of desired and current states), the first step
//! `GET /api/v1/databases/{id}/plan` shows is exactly the operation the
//! next pass creates. Both run on the same embedded parts, the stand-in
//! playing KubeDB.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use dbaas_core::domain::{
    ApiKeyRecord, Database, DatabaseStatus, OnDelete, Size, Tenant, hash_api_key, new_api_key,
};
use dbaas_core::engine::Engine;
use dbaas_rest::{AppState, Limits};
use dbaas_standin::StandinConfig;
use dbaas_store::DesiredChange;
use dbaas_testkit::control_loop::Loop;
use serde_json::Value;
use tower::ServiceExt;

const TENANT: &str = "tn-plans";

struct World {
    l: Loop,
    api: axum::Router,
    key: String,
}

impl World {
    async fn new() -> World {
        let mut l = Loop::embedded("plans").await;
        dbaas_standin::catalog::install(&*l.parts.cluster)
            .await
            .expect("install the catalog");
        l.worker.poll_interval = Duration::from_millis(5);
        l.spawn_standin(
            StandinConfig {
                provision_delay: Duration::ZERO,
                phase_delay: Duration::ZERO,
                failure_ratio: 0.0,
                seed: 7,
                ..Default::default()
            },
            Duration::from_millis(5),
        );
        let store = l.parts.store.clone();
        let key = new_api_key();
        store
            .insert_tenant(&Tenant {
                id: TENANT.into(),
                name: "plans".into(),
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        store
            .insert_api_key(&ApiKeyRecord {
                key_hash: hash_api_key(&key),
                prefix: key[..8].to_string(),
                tenant_id: TENANT.into(),
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        let api = dbaas_rest::router(AppState::new(store, None, Limits::default()));
        World { l, api, key }
    }

    async fn db(&self, id: &str) -> Database {
        self.l.parts.store.get_database(id).await.unwrap().unwrap()
    }

    async fn create(&self, name: &str, version: &str, replicas: u32) -> String {
        let mut db = Database::declared(
            TENANT,
            name,
            Engine::Postgres,
            Size::Small,
            replicas,
            20,
            Utc::now(),
        );
        db.version = version.into();
        self.l.parts.store.insert_database(&db, &[]).await.unwrap();
        db.id
    }

    async fn change(&self, id: &str, change: DesiredChange) {
        let db = self.db(id).await;
        self.l
            .parts
            .store
            .update_desired(id, db.generation, &change)
            .await
            .unwrap()
            .expect("applies");
    }

    /// Passes and workers until the database shows `status`, idle.
    async fn settle(&self, id: &str, status: DatabaseStatus) {
        for _ in 0..10 {
            self.l.pass().await.unwrap();
            self.l.work().await.unwrap();
            let db = self.db(id).await;
            // Paused, a change may wait for the resume.
            let settled = db.in_sync() || status == DatabaseStatus::Paused;
            if db.status == status && db.active_operation_id.is_none() && settled {
                return;
            }
        }
        panic!("not {status:?}: {:?}", self.db(id).await);
    }

    async fn plan(&self, id: &str) -> Value {
        let req = Request::get(format!("/api/v1/databases/{id}/plan"))
            .header("authorization", format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        let res = self.api.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// The plan's first step, then the operation the next pass creates:
    /// type and target must be the same.
    async fn check(&self, id: &str, case: &str) {
        let plan = self.plan(id).await;
        let first = &plan["steps"][0];
        assert!(!first.is_null(), "{case}: an empty plan: {plan}");
        assert_eq!(first["running"], false, "{case}: {plan}");
        let report = self.l.pass().await.unwrap();
        assert_eq!(report.operations_created, 1, "{case}: {report:?}");
        let op_id = self.db(id).await.active_operation_id.expect("planned");
        let op = self
            .l
            .parts
            .store
            .get_operation(&op_id)
            .await
            .unwrap()
            .unwrap();
        let op = serde_json::to_value(&op).unwrap();
        assert_eq!(
            (&first["type"], &first["target"]),
            (&op["type"], &op["desired_state"]),
            "{case}: the plan said {first}, the pass made {op}"
        );
        // Under way now: the plan shows it first, running.
        let plan = self.plan(id).await;
        assert_eq!(plan["steps"][0]["running"], true, "{case}: {plan}");
        assert_eq!(plan["steps"][0]["operation_id"], op["id"], "{case}");
        self.l.work().await.unwrap();
    }
}

#[tokio::test]
async fn the_first_planned_step_is_what_the_next_pass_creates() {
    let w = World::new().await;
    let new = w.create("fresh", "16.1", 1).await;
    w.check(&new, "a new database").await;
    w.settle(&new, DatabaseStatus::Ready).await;
    let plan = w.plan(&new).await;
    assert_eq!(
        (&plan["in_sync"], &plan["steps"]),
        (&Value::Bool(true), &serde_json::json!([]))
    );

    let cases: Vec<(&str, DesiredChange)> = vec![
        (
            "a size",
            DesiredChange {
                size: Some(Size::Large),
                ..Default::default()
            },
        ),
        (
            "replicas and storage (storage first)",
            DesiredChange {
                replicas: Some(3),
                storage_gb: Some(40),
                ..Default::default()
            },
        ),
        (
            "a version",
            DesiredChange {
                version: Some("16.4".into()),
                ..Default::default()
            },
        ),
        (
            "a rotation and a restart (rotation first)",
            DesiredChange {
                auth_rotation: Some(1),
                restarts: Some(1),
                ..Default::default()
            },
        ),
        (
            "a deletion policy",
            DesiredChange {
                deletion_policy: Some(OnDelete::Delete),
                ..Default::default()
            },
        ),
        (
            "a pause with a size (the pause first)",
            DesiredChange {
                paused: Some(true),
                size: Some(Size::Medium),
                ..Default::default()
            },
        ),
    ];
    let id = w.create("table", "16.1", 1).await;
    w.settle(&id, DatabaseStatus::Ready).await;
    for (case, change) in cases {
        w.change(&id, change).await;
        w.check(&id, case).await;
        // Let the rest of the plan run before the next case.
        let paused = w.db(&id).await.paused;
        w.settle(
            &id,
            if paused {
                DatabaseStatus::Paused
            } else {
                DatabaseStatus::Ready
            },
        )
        .await;
    }
    // Paused with a change waiting: the plan says so and plans nothing.
    let plan = w.plan(&id).await;
    assert!(
        plan["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("resume")),
        "{plan}"
    );
    w.change(
        &id,
        DesiredChange {
            paused: Some(false),
            ..Default::default()
        },
    )
    .await;
    let plan = w.plan(&id).await;
    let types: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["resume", "set_deletion_policy", "scale_vertical"],
        "{plan}"
    );
    w.check(&id, "a resume").await;
    w.settle(&id, DatabaseStatus::Ready).await;

    w.change(
        &id,
        DesiredChange {
            delete: true,
            ..Default::default()
        },
    )
    .await;
    w.check(&id, "a deletion").await;
}
