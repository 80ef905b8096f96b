//! More than one reconciler: the Lease keeps passes apart, and passes that
//! run anyway never plan duplicates.

use std::time::Duration;

use chrono::Utc;
use dbaas_cluster::{Cluster, Kind};
use dbaas_e2e::{TestEnv, log_tail, names, new_database, s};
use serde_json::{Value, json};

const LEASE: &str = "dbaas-reconciler";

fn lease_kind() -> Kind {
    Kind {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
    }
}

/// While another holder has the Lease, a reconciler exits 0 at once and
/// plans nothing; once the Lease is free, the next pass does its work.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_lease_makes_a_pass_exit_without_planning() {
    let mut env = TestEnv::start("lease").await;
    let db = env
        .api
        .create_database(&new_database("held", "redis", "db.t3.micro", 1, 10))
        .await;
    let id = s(&db, "id").to_string();
    let other = "e2e-other-reconciler";
    let taken = env
        .cluster
        .try_acquire_lease(&env.namespace, LEASE, other, 300, Utc::now())
        .await
        .expect("lease call");
    assert!(taken, "the test takes the Lease first");

    for _ in 0..2 {
        let log = env.reconcile().await;
        assert!(
            log.contains("another reconciler holds the lease"),
            "the pass saw the Lease held; its log:\n{log}"
        );
    }
    assert!(env.api.operations(&id).await.is_empty(), "nothing planned");
    assert!(
        env.pending().await.is_empty() && env.processing().await.is_empty(),
        "nothing enqueued"
    );
    let seen = env.api.get_database(&id).await;
    assert_eq!(seen["status"], "provisioning");
    assert_eq!(
        seen["current_size"],
        Value::Null,
        "nothing recorded: {seen}"
    );
    assert_eq!(seen["conditions"], json!([]), "nothing recorded: {seen}");
    assert!(env.database_cr(&db).await.is_none());
    let lease = env
        .cluster
        .get(&lease_kind(), &env.namespace, LEASE)
        .await
        .unwrap()
        .expect("the Lease");
    assert_eq!(
        lease["spec"]["holderIdentity"], other,
        "the Lease was not taken over: {lease}"
    );
    // A worker with nothing to do exits 0 at once, too.
    assert_eq!(env.run_worker().await, 0);

    env.cluster
        .release_lease(&env.namespace, LEASE, other)
        .await
        .expect("release");
    env.reconcile().await;
    let ops = env.api.operations(&id).await;
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["type"], "provision");
    assert_eq!(env.pending().await, vec![s(&ops[0], "id").to_string()]);
    env.converge_db(&id, "ready", 10, |db| db["status"] == "ready")
        .await;
    let lease = env
        .cluster
        .get(&lease_kind(), &env.namespace, LEASE)
        .await
        .unwrap()
        .expect("the Lease");
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "passes release the Lease: {lease}"
    );
    env.finish().await;
}

/// One round with two reconcilers started together, then two workers
/// started together until the queue is empty. Returns how many passes
/// found the Lease held.
async fn paired_round(env: &TestEnv) -> usize {
    let a = env.spawn_reconciler(&[]);
    let b = env.spawn_reconciler(&[]);
    let mut skipped = 0;
    for proc in [a, b] {
        let (status, log) = proc.wait(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "a reconciler exited with {status}; its log:\n{}",
            log_tail(&log)
        );
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("another reconciler holds the lease")
        {
            skipped += 1;
        }
    }
    for _ in 0..10 {
        if env.pending().await.is_empty() {
            return skipped;
        }
        let a = env.spawn_worker(&[]);
        let b = env.spawn_worker(&[]);
        for proc in [a, b] {
            let (status, log) = proc.wait(Duration::from_secs(90)).await;
            assert!(
                status.success(),
                "a worker exited with {status}; its log:\n{}",
                log_tail(&log)
            );
        }
    }
    panic!("the queue did not empty: {:?}", env.pending().await);
}

async fn paired_until(
    env: &TestEnv,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> (Value, usize) {
    let mut skipped = 0;
    for _ in 0..15 {
        skipped += paired_round(env).await;
        let db = env.api.get_database(id).await;
        if pred(&db) {
            return (db, skipped);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what} not reached with paired reconcilers (logs in {})",
        env.procs.logs.display()
    );
}

/// Two reconcilers started together (as a CronJob may do), with two
/// workers at a time: one operation per change, one OpsRequest per
/// operation.
#[tokio::test(flavor = "multi_thread")]
async fn two_reconcilers_together_never_duplicate_operations() {
    let env = TestEnv::start("pair").await;
    let db = env
        .api
        .create_database(&new_database("twins", "postgres", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();
    let mut skipped = 0;

    let (_, n) = paired_until(&env, &id, "ready", |db| db["status"] == "ready").await;
    skipped += n;
    env.api
        .patch_database(&id, &json!({"size": "db.t3.large"}))
        .await;
    let (_, n) = paired_until(&env, &id, "large", |db| {
        db["status"] == "ready" && db["current_size"] == "db.t3.large"
    })
    .await;
    skipped += n;
    env.api.patch_database(&id, &json!({"replicas": 3})).await;
    let (_, n) = paired_until(&env, &id, "3 replicas", |db| {
        db["status"] == "ready" && db["current_replicas"] == 3
    })
    .await;
    skipped += n;
    // More paired passes on a settled database change nothing.
    for _ in 0..2 {
        skipped += paired_round(&env).await;
    }

    let ops = env.api.operations(&id).await;
    let mut types: Vec<&str> = ops.iter().map(|o| o["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        vec!["provision", "scale_horizontal", "scale_vertical"],
        "no duplicate operation: {ops:?}"
    );
    assert!(
        ops.iter()
            .all(|o| o["status"] == "succeeded" && o["attempts"] == 1),
        "{ops:?}"
    );
    let requests = env.ops_requests().await;
    let mut want: Vec<String> = ops
        .iter()
        .filter(|o| o["type"] != "provision")
        .map(|o| format!("{}-1", s(o, "id")))
        .collect();
    want.sort();
    assert_eq!(names(&requests), want, "one OpsRequest per operation");
    eprintln!("paired passes that found the Lease held: {skipped}");
    env.finish().await;
}
