//! Failures: an OpsRequest that fails is retried with backoff and then
//! reported; a worker killed mid-operation is replaced without a second
//! OpsRequest.

use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_e2e::{Proc, TestEnv, log_tail, name, names, new_database, phase, s, time};
use dbaas_standin::FAIL_ANNOTATION;
use serde_json::{Value, json};

fn the_op<'a>(ops: &'a [Value], id: &str) -> &'a Value {
    ops.iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("operation {id} not listed: {ops:?}"))
}

/// With the stand-in told to fail the database's OpsRequests, each attempt
/// gets its own OpsRequest (`<op-id>-<attempt>`), attempts grow after a
/// backoff, and past DBAAS_MAX_ATTEMPTS the database shows `failed` with a
/// `Failed` condition giving the reason. Once the cause is gone, the next
/// change of desired state recovers it.
#[tokio::test(flavor = "multi_thread")]
async fn failed_ops_request_is_retried_then_reported_then_recovers() {
    let mut env = TestEnv::start("fail").await;
    env.settings.insert("DBAAS_MAX_ATTEMPTS".into(), "2".into());
    let db = env
        .create_ready(new_database("ledger", "postgres", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();
    env.patch_cr(
        &db,
        &json!({"metadata": {"annotations": {FAIL_ANNOTATION: "true"}}}),
    )
    .await;
    env.api
        .patch_database(&id, &json!({"size": "db.t3.medium"}))
        .await;

    // Attempt 1: planned, run, failed; the failure is recorded for retry.
    env.reconcile().await;
    let ops = env.api.operations(&id).await;
    let op = ops
        .iter()
        .find(|o| o["type"] == "scale_vertical")
        .expect("a scale_vertical operation")
        .clone();
    let op_id = s(&op, "id").to_string();
    assert_eq!(
        (op["status"].as_str(), op["attempts"].as_u64()),
        (Some("pending"), Some(1))
    );
    // This worker schedules the retry a few seconds out, so the backoff
    // can be seen holding (the other runs use the short 0.2 s).
    let code = env
        .run_worker_with(&[
            ("DBAAS_RETRY_BACKOFF_SECONDS", "4"),
            ("DBAAS_MAX_RETRY_BACKOFF_SECONDS", "4"),
        ])
        .await;
    assert_eq!(code, 3, "the worker exits 3 for a failed operation");
    assert!(env.pending().await.is_empty() && env.processing().await.is_empty());
    let op = env.api.operation(&op_id).await;
    assert_eq!(
        (op["status"].as_str(), op["attempts"].as_u64()),
        (Some("failed"), Some(1)),
        "{op}"
    );
    assert!(
        s(&op, "error").contains("forced"),
        "the error says why: {op}"
    );
    let retry_at = time(&op["next_attempt_at"]).expect("a failed operation has a retry time");
    let requests = env.ops_requests().await;
    assert_eq!(names(&requests), vec![format!("{op_id}-1")]);
    assert_eq!(phase(&requests[0]), "Failed");

    // A pass before the retry time leaves it alone (checked only if the
    // pass did finish before that time, so a slow machine cannot fail it).
    env.reconcile().await;
    if Utc::now() < retry_at {
        let op = env.api.operation(&op_id).await;
        assert_eq!(
            (op["status"].as_str(), op["attempts"].as_u64()),
            (Some("failed"), Some(1)),
            "retried early: {op}"
        );
        assert!(
            env.pending().await.is_empty(),
            "nothing enqueued before the backoff"
        );
    }
    let db_now = env.api.get_database(&id).await;
    assert_ne!(
        db_now["status"], "failed",
        "one failure is below the bound: {db_now}"
    );

    // Attempt 2 after the backoff, then the bound: status failed.
    let failed = env
        .converge_db(&id, "status failed", 15, |db| db["status"] == "failed")
        .await;
    let op = env.api.operation(&op_id).await;
    assert_eq!(
        (op["status"].as_str(), op["attempts"].as_u64()),
        (Some("failed"), Some(2)),
        "{op}"
    );
    let requests = env.ops_requests().await;
    assert_eq!(
        names(&requests),
        vec![format!("{op_id}-1"), format!("{op_id}-2")],
        "one OpsRequest per attempt"
    );
    assert!(
        requests.iter().all(|r| phase(r) == "Failed"),
        "{requests:?}"
    );
    let condition = failed["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap_or_else(|| panic!("no Failed condition: {failed}"))
        .clone();
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "OperationFailed");
    let message = s(&condition, "message");
    assert!(
        message.contains("scale_vertical") && message.contains("2 attempts"),
        "{message}"
    );
    assert!(
        message.contains("forced"),
        "the reason reaches the user: {message}"
    );
    assert_eq!(failed["current_size"], "db.t3.small");

    // Past the bound nothing more is tried, however long we wait.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.round().await;
    }
    assert_eq!(
        env.ops_requests().await.len(),
        2,
        "no attempt past DBAAS_MAX_ATTEMPTS"
    );
    assert_eq!(env.api.operation(&op_id).await["attempts"], 2);
    assert_eq!(env.api.get_database(&id).await["status"], "failed");

    // Recovery: the cause goes away, the user changes desired state.
    env.patch_cr(
        &db,
        &json!({"metadata": {"annotations": {FAIL_ANNOTATION: null}}}),
    )
    .await;
    env.api
        .patch_database(&id, &json!({"size": "db.t3.large"}))
        .await;
    let recovered = env
        .converge_db(&id, "recovered", 10, |db| {
            db["status"] == "ready" && db["current_size"] == "db.t3.large"
        })
        .await;
    assert!(
        recovered["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "Failed"),
        "the Failed condition is gone: {recovered}"
    );
    let ops = env.api.operations(&id).await;
    assert_eq!(the_op(&ops, &op_id)["status"], "superseded", "{ops:?}");
    let new_op = ops
        .iter()
        .find(|o| o["type"] == "scale_vertical" && o["id"] != op_id.as_str())
        .unwrap_or_else(|| panic!("no new operation: {ops:?}"));
    assert_eq!(new_op["status"], "succeeded");
    assert_eq!(new_op["attempts"], 1);
    assert_eq!(new_op["desired_state"], json!({"size": "db.t3.large"}));
    let new_req = format!("{}-1", s(new_op, "id"));
    let requests = env.ops_requests().await;
    assert_eq!(requests.len(), 3, "{:?}", names(&requests));
    let req = requests
        .iter()
        .find(|r| name(r) == new_req)
        .expect("the new OpsRequest");
    assert_eq!(phase(req), "Successful");
    env.finish().await;
}

/// Starts a worker on the queued operation and waits until it follows its
/// OpsRequest (the stand-in must be stopped, so it cannot finish). Returns
/// the worker and the operation as then.
async fn worker_mid_operation(env: &TestEnv, op_id: &str) -> (Proc, Value) {
    let mut worker = env.spawn_worker(&[]);
    let started = Instant::now();
    loop {
        let op = env.api.operation(op_id).await;
        if op["status"] == "running" && op["ops_request_name"].is_string() {
            return (worker, op);
        }
        if let Ok(Some(status)) = worker.child.try_wait() {
            panic!(
                "the worker exited ({status}) before it was stopped; its log:\n{}",
                log_tail(&worker.log)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the operation never ran: {op}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker killed with SIGKILL while following its OpsRequest leaves the
/// id in the processing list and a claim that expires. The next pass puts
/// the id back in the queue; a new worker adopts the same OpsRequest (same
/// name) and finishes the operation: one OpsRequest in total.
#[tokio::test(flavor = "multi_thread")]
async fn killed_worker_is_replaced_without_a_second_ops_request() {
    let mut env = TestEnv::start("kill").await;
    env.settings
        .insert("DBAAS_CLAIM_TTL_SECONDS".into(), "1".into());
    env.settings
        .insert("DBAAS_PROCESSING_DEADLINE_SECONDS".into(), "0".into());
    let db = env
        .create_ready(new_database("billing", "mongodb", "db.t3.small", 3, 20))
        .await;
    let id = s(&db, "id").to_string();

    // The operator is down, so the OpsRequest stays unfinished while the
    // worker follows it: the kill lands mid-operation by construction.
    env.stop_standin().await;
    env.api
        .patch_database(&id, &json!({"size": "db.t3.medium"}))
        .await;
    env.reconcile().await;
    let op_id = env
        .pending()
        .await
        .pop()
        .expect("an operation was enqueued");
    let (worker, op) = worker_mid_operation(&env, &op_id).await;
    let req_name = s(&op, "ops_request_name").to_string();
    assert_eq!(req_name, format!("{op_id}-1"));
    assert_eq!(
        names(&env.ops_requests().await),
        vec![req_name.clone()],
        "the OpsRequest exists before the kill"
    );
    worker.kill9().await;

    // The dead worker's id sits in the processing list; its claim expires.
    assert_eq!(env.processing().await, vec![op_id.clone()]);
    assert!(env.pending().await.is_empty());
    let started = Instant::now();
    loop {
        let op = env.api.operation(&op_id).await;
        assert_eq!(op["status"], "running", "{op}");
        if time(&op["claimed_until"]).is_some_and(|t| t < Utc::now()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the claim never expired: {op}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.start_standin();

    // The next pass returns the id to the queue...
    let log = env.reconcile().await;
    assert_eq!(
        env.pending().await,
        vec![op_id.clone()],
        "the pass re-queued the id; its log:\n{log}"
    );
    assert!(env.processing().await.is_empty());
    // ...and a new worker finishes the same operation.
    let codes = env.drain_workers().await;
    assert_eq!(codes, vec![0]);
    let op = env.api.operation(&op_id).await;
    assert_eq!(
        (op["status"].as_str(), op["attempts"].as_u64()),
        (Some("succeeded"), Some(1)),
        "{op}"
    );
    let requests = env.ops_requests().await;
    assert_eq!(
        names(&requests),
        vec![req_name],
        "exactly one OpsRequest in total"
    );
    assert_eq!(phase(&requests[0]), "Successful");
    env.converge_db(&id, "medium and ready", 5, |db| {
        db["current_size"] == "db.t3.medium" && db["status"] == "ready"
    })
    .await;
    assert!(env.processing().await.is_empty() && env.pending().await.is_empty());
    env.finish().await;
}

/// A worker stopped with SIGTERM (a scale-down or rollout) gives its claim
/// up, puts the id back in the queue and exits 143; the next worker adopts
/// the same OpsRequest.
#[tokio::test(flavor = "multi_thread")]
async fn terminated_worker_hands_its_operation_back() {
    let mut env = TestEnv::start("term").await;
    let db = env
        .create_ready(new_database("audit", "mysql", "db.t3.small", 1, 20))
        .await;
    let id = s(&db, "id").to_string();
    env.stop_standin().await;
    env.api
        .patch_database(&id, &json!({"storage_gb": 40}))
        .await;
    env.reconcile().await;
    let op_id = env
        .pending()
        .await
        .pop()
        .expect("an operation was enqueued");
    let (worker, op) = worker_mid_operation(&env, &op_id).await;
    assert_eq!(op["type"], "expand_storage");
    let pid = worker.child.id().expect("the worker's pid");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let (status, log) = worker.wait(Duration::from_secs(30)).await;
    assert_eq!(
        status.code(),
        Some(143),
        "exit code after SIGTERM; log:\n{}",
        log_tail(&log)
    );
    assert_eq!(
        env.pending().await,
        vec![op_id.clone()],
        "the id is back in the queue"
    );
    assert!(env.processing().await.is_empty());
    let op = env.api.operation(&op_id).await;
    assert!(
        time(&op["claimed_until"]).is_some_and(|t| t <= Utc::now()),
        "the claim was given up: {op}"
    );

    env.start_standin();
    assert_eq!(env.drain_workers().await, vec![0]);
    let op = env.api.operation(&op_id).await;
    assert_eq!(
        (op["status"].as_str(), op["attempts"].as_u64()),
        (Some("succeeded"), Some(1)),
        "{op}"
    );
    let requests = env.ops_requests().await;
    assert_eq!(
        names(&requests),
        vec![format!("{op_id}-1")],
        "exactly one OpsRequest"
    );
    assert_eq!(requests[0]["spec"]["volumeExpansion"]["mysql"], "40Gi");
    env.converge_db(&id, "40 GiB and ready", 5, |db| {
        db["current_storage_gb"] == 40 && db["status"] == "ready"
    })
    .await;
    env.finish().await;
}
