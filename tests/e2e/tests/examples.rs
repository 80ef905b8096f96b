//! The three flow examples of the design (declarative-architecture.md),
//! end to end through the binaries.

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::Size;
use dbaas_core::drift::Change;
use dbaas_core::kubedb::{ObservedDatabase, ObservedOpsRequest};
use dbaas_e2e::{TestEnv, engine_of, name, names, new_database, phase, s};
use serde_json::{Value, json};

fn of_type<'a>(ops: &'a [Value], type_: &str) -> Vec<&'a Value> {
    ops.iter().filter(|o| o["type"] == type_).collect()
}

/// Example 1: the user scales a database. The API only records desired
/// state; a pass plans one scale_vertical operation; a worker creates one
/// OpsRequest and records the new current size; the next pass sees no drift.
#[tokio::test(flavor = "multi_thread")]
async fn example_1_user_scales_a_database() {
    let mut env = TestEnv::start("ex1").await;
    let db = env
        .create_ready(new_database("orders", "mongodb", "db.t3.medium", 3, 20))
        .await;
    let id = s(&db, "id").to_string();
    let ops = env.api.operations(&id).await;
    assert_eq!(ops.len(), 1, "only the provision operation so far: {ops:?}");
    assert_eq!(
        (ops[0]["type"].as_str(), ops[0]["status"].as_str()),
        (Some("provision"), Some("succeeded"))
    );
    let cr = env.database_cr(&db).await.expect("the CR exists");
    assert_eq!(phase(&cr), "Ready");

    // 1-3: the API records desired state and returns; no operation yet.
    let patched = env
        .api
        .patch_database(&id, &json!({"size": "db.t3.large"}))
        .await;
    assert_eq!(patched["size"], "db.t3.large");
    assert_eq!(
        patched["current_size"], "db.t3.medium",
        "current state is untouched by the API"
    );
    assert_eq!(
        env.api.operations(&id).await.len(),
        1,
        "the API must not create operations"
    );
    assert!(env.pending().await.is_empty(), "the API must not enqueue");

    // 4: the pass detects the drift and plans one operation.
    env.reconcile().await;
    let ops = env.api.operations(&id).await;
    let scale = of_type(&ops, "scale_vertical");
    assert_eq!(scale.len(), 1, "one operation for the drift: {ops:?}");
    assert_eq!(scale[0]["desired_state"], json!({"size": "db.t3.large"}));
    assert_eq!(env.pending().await, vec![s(scale[0], "id").to_string()]);

    // 5-6: a worker runs it; then no drift remains.
    let db = env
        .converge_db(&id, "current_size equals size", 10, |db| {
            db["current_size"] == "db.t3.large" && db["status"] == "ready"
        })
        .await;
    let ops = env.api.operations(&id).await;
    let scale = of_type(&ops, "scale_vertical");
    assert_eq!(
        scale.len(),
        1,
        "still one scale_vertical operation: {ops:?}"
    );
    assert_eq!(scale[0]["status"], "succeeded");
    let op_id = s(scale[0], "id");
    let requests = env.ops_requests().await;
    assert_eq!(
        names(&requests),
        vec![format!("{op_id}-1")],
        "exactly one OpsRequest"
    );
    let req = ObservedOpsRequest::from_value(&requests[0]).expect("a readable OpsRequest");
    assert_eq!(req.change, Some(Change::Size(Size::Large)));
    assert_eq!(phase(&requests[0]), "Successful");
    let cr = ObservedDatabase::from_value(&env.database_cr(&db).await.expect("CR"))
        .expect("readable CR");
    assert_eq!(
        cr.size,
        Some(Size::Large),
        "KubeDB wrote the new size into the CR"
    );

    // 6: the next passes find nothing to do.
    env.round().await;
    env.round().await;
    assert_eq!(env.api.operations(&id).await.len(), 2);
    assert_eq!(env.ops_requests().await.len(), 1);
    let db = env.api.get_database(&id).await;
    assert_eq!(db["status"], "ready");
    let synced = db["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Synced")
        .expect("Synced condition");
    assert_eq!(synced["status"], "True", "{db}");
    assert_eq!(db["observed_generation"], db["generation"]);
    env.finish().await;
}

/// Example 2: someone edits the CR behind the control plane's back. The
/// next pass records the CR's replica count as current, plans a
/// scale_horizontal operation, and a HorizontalScaling OpsRequest brings the
/// database back to the desired count.
#[tokio::test(flavor = "multi_thread")]
async fn example_2_manual_change_is_reverted() {
    let mut env = TestEnv::start("ex2").await;
    let db = env
        .create_ready(new_database("catalog", "mongodb", "db.t3.small", 3, 20))
        .await;
    let id = s(&db, "id").to_string();

    // 1: kubectl patch mongodb <cr> --type merge -p '{"spec":{"replicas":5}}'
    env.patch_cr(&db, &json!({"spec": {"replicas": 5}})).await;
    assert_eq!(
        env.api.get_database(&id).await["current_replicas"],
        3,
        "not yet synced"
    );

    // 3: the pass syncs current state from the CR and plans the fix.
    env.reconcile().await;
    let seen = env.api.get_database(&id).await;
    assert_eq!(seen["replicas"], 3, "desired state is untouched");
    assert_eq!(
        seen["current_replicas"], 5,
        "current state comes from the CR: {seen}"
    );
    assert_eq!(seen["status"], "updating");
    let ops = env.api.operations(&id).await;
    let fix = of_type(&ops, "scale_horizontal");
    assert_eq!(fix.len(), 1, "{ops:?}");
    assert_eq!(fix[0]["desired_state"], json!({"replicas": 3}));

    // 4: the worker's HorizontalScaling OpsRequest brings it back.
    env.drain_workers().await;
    let requests = env.ops_requests().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["spec"]["type"], "HorizontalScaling");
    assert_eq!(requests[0]["spec"]["horizontalScaling"]["replicas"], 3);
    assert_eq!(phase(&requests[0]), "Successful");
    assert_eq!(name(&requests[0]), format!("{}-1", s(fix[0], "id")));
    assert_eq!(
        env.database_cr(&db).await.expect("CR")["spec"]["replicas"],
        3
    );

    // 5: desired == current, and it stays so.
    env.converge_db(&id, "back to 3 replicas and ready", 5, |db| {
        db["current_replicas"] == 3 && db["status"] == "ready"
    })
    .await;
    env.round().await;
    let ops = env.api.operations(&id).await;
    assert_eq!(of_type(&ops, "scale_horizontal").len(), 1);
    assert_eq!(of_type(&ops, "scale_horizontal")[0]["status"], "succeeded");
    assert_eq!(env.ops_requests().await.len(), 1);
    env.finish().await;
}

/// Example 3: two quick changes before a pass make one operation and one
/// OpsRequest, for the final value.
#[tokio::test(flavor = "multi_thread")]
async fn example_3_rapid_updates_make_one_ops_request() {
    let mut env = TestEnv::start("ex3").await;
    let db = env
        .create_ready(new_database("events", "postgres", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();

    env.api
        .patch_database(&id, &json!({"size": "db.t3.medium"}))
        .await;
    let last = env
        .api
        .patch_database(&id, &json!({"size": "db.t3.large"}))
        .await;
    assert_eq!(last["generation"], db["generation"].as_u64().unwrap() + 2);

    env.reconcile().await;
    let ops = env.api.operations(&id).await;
    let scale = of_type(&ops, "scale_vertical");
    assert_eq!(scale.len(), 1, "one operation for two updates: {ops:?}");
    assert_eq!(
        scale[0]["desired_state"],
        json!({"size": "db.t3.large"}),
        "for the final value"
    );
    assert_eq!(scale[0]["target_generation"], last["generation"]);

    env.converge_db(&id, "current_size is large", 10, |db| {
        db["current_size"] == "db.t3.large" && db["status"] == "ready"
    })
    .await;
    let requests = env.ops_requests().await;
    assert_eq!(
        requests.len(),
        1,
        "exactly one OpsRequest: {:?}",
        names(&requests)
    );
    let req = ObservedOpsRequest::from_value(&requests[0]).expect("readable");
    assert_eq!(req.change, Some(Change::Size(Size::Large)));
    assert_eq!(phase(&requests[0]), "Successful");
    let ops = env.api.operations(&id).await;
    assert_eq!(of_type(&ops, "scale_vertical").len(), 1, "{ops:?}");
    assert!(ops.iter().all(|o| o["status"] == "succeeded"), "{ops:?}");
    env.finish().await;
}

/// Example 3 with a pass in between: the first change is planned and
/// queued, the second arrives before any worker ran. The pass supersedes
/// the queued operation, the worker that dequeues it drops it, and only the
/// final value gets an OpsRequest.
#[tokio::test(flavor = "multi_thread")]
async fn example_3_a_queued_operation_is_superseded_by_a_newer_change() {
    let mut env = TestEnv::start("ex3b").await;
    let db = env
        .create_ready(new_database("clicks", "mariadb", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();

    env.api
        .patch_database(&id, &json!({"size": "db.t3.medium"}))
        .await;
    env.reconcile().await;
    let first = env.pending().await;
    assert_eq!(first.len(), 1, "one operation queued: {first:?}");
    env.api
        .patch_database(&id, &json!({"size": "db.t3.xlarge"}))
        .await;
    env.reconcile().await;
    let ops = env.api.operations(&id).await;
    let old = ops
        .iter()
        .find(|o| o["id"] == first[0].as_str())
        .expect("the first operation");
    assert_eq!(old["status"], "superseded", "{ops:?}");
    let scale = of_type(&ops, "scale_vertical");
    assert_eq!(scale.len(), 2, "{ops:?}");
    let new = scale
        .iter()
        .find(|o| o["status"] == "pending")
        .expect("a pending operation for the final value");
    assert_eq!(new["desired_state"], json!({"size": "db.t3.xlarge"}));

    env.converge_db(&id, "current_size is xlarge", 10, |db| {
        db["current_size"] == "db.t3.xlarge" && db["status"] == "ready"
    })
    .await;
    let requests = env.ops_requests().await;
    assert_eq!(
        names(&requests),
        vec![format!("{}-1", s(new, "id"))],
        "no OpsRequest for the superseded value"
    );
    let req = ObservedOpsRequest::from_value(&requests[0]).expect("readable");
    assert_eq!(req.change, Some(Change::Size(Size::Xlarge)));
    let ops = env.api.operations(&id).await;
    assert_eq!(
        ops.iter().find(|o| o["id"] == first[0].as_str()).unwrap()["status"],
        "superseded"
    );
    env.finish().await;
}

/// Self-healing: a CR deleted behind the control plane's back is created
/// again with the desired state.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_database_resource_is_recreated() {
    let mut env = TestEnv::start("heal").await;
    let db = env
        .create_ready(new_database("sessions", "redis", "db.t3.small", 1, 10))
        .await;
    let id = s(&db, "id").to_string();
    let cr = env.database_cr(&db).await.expect("CR");
    let uid = cr["metadata"]["uid"].clone();

    // kubectl delete redis <cr>
    let kind = Kind::database(engine_of(&db));
    assert!(
        env.cluster
            .delete(&kind, &env.namespace, name(&cr))
            .await
            .expect("kubectl delete")
    );
    let (uid_ref, id_ref) = (&uid, &id);
    let cr = env
        .converge(
            "the CR recreated and the database ready",
            15,
            async |env: &TestEnv| {
                let cr = env
                    .database_cr(&db)
                    .await
                    .filter(|cr| cr["metadata"]["uid"] != *uid_ref)?;
                (phase(&cr) == "Ready" && env.api.get_database(id_ref).await["status"] == "ready")
                    .then_some(cr)
            },
        )
        .await;
    let seen = ObservedDatabase::from_value(&cr).expect("readable");
    assert_eq!(
        (seen.size, seen.replicas, seen.storage_gb),
        (Some(Size::Small), Some(1), Some(10))
    );
    let ops = env.api.operations(&id).await;
    assert_eq!(of_type(&ops, "provision").len(), 2, "{ops:?}");
    assert!(ops.iter().all(|o| o["status"] == "succeeded"), "{ops:?}");
    assert!(env.ops_requests().await.is_empty());
    env.finish().await;
}

/// A CR that is being deleted behind the control plane's back (it carries
/// a deletionTimestamp; KubeDB is tearing it down) is not a ready, in-sync
/// database (regression: `drift::assess` used to answer `InSync` for it).
#[tokio::test(flavor = "multi_thread")]
async fn a_database_resource_being_deleted_is_not_reported_ready() {
    let mut env = TestEnv::start("gone").await;
    let db = env
        .create_ready(new_database("fleeting", "postgres", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();
    // The operator is down, so the finalizer holds the CR in deletion.
    env.stop_standin().await;
    let cr = env.database_cr(&db).await.expect("CR");
    let kind = Kind::database(engine_of(&db));
    assert!(
        env.cluster
            .delete(&kind, &env.namespace, name(&cr))
            .await
            .expect("kubectl delete")
    );
    let cr = env
        .database_cr(&db)
        .await
        .expect("held by the kubedb.com finalizer");
    assert!(cr["metadata"]["deletionTimestamp"].is_string());
    env.reconcile().await;
    let seen = env.api.get_database(&id).await;
    let synced = seen["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Synced")
        .cloned();
    assert_ne!(
        seen["status"], "ready",
        "a database whose resource is being deleted is not ready: {seen}"
    );
    assert_ne!(
        synced.map(|c| c["status"].clone()),
        Some(json!("True")),
        "nor in sync: {seen}"
    );
    env.start_standin();
    env.finish().await;
}
