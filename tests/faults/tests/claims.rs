//! A worker paused past its claim (a GC pause, SIGSTOP, a frozen node)
//! while a second worker takes its operation over.
//!
//! The first worker is SIGSTOPped while it follows its OpsRequest, its claim
//! expires, a reconciler pass returns the id to the queue and a second
//! worker claims the operation and adopts the same OpsRequest. Then the
//! first is SIGCONTed while the second still follows (the stand-in is
//! stopped, so the request cannot finish under either of them). The first
//! must find its claim gone at its next write and exit without touching
//! the operation, the queue or the cluster; the second finishes it. Without
//! claim tokens both workers kept renewing one claim and both recorded the
//! outcome.

use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::engine::Engine;
use dbaas_e2e::{TestEnv, log_tail, new_database, s};
use dbaas_faults::Summary;

/// Seconds a worker's claim lasts in this test.
const CLAIM_TTL_SECONDS: u64 = 2;

fn signal(pid: u32, sig: &str) {
    let status = StdCommand::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// The operation's `claimed_by`, as the API shows it.
async fn claim_of(env: &TestEnv, op_id: &str) -> Option<String> {
    env.api.operation(op_id).await["claimed_by"]
        .as_str()
        .map(str::to_string)
}

/// Polls `check` every 50 ms for up to `secs` seconds.
async fn wait_until(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !check().await {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: not reached in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_paused_past_its_claim_stops_without_writing() {
    let mut env = TestEnv::start("claims").await;
    let ttl = CLAIM_TTL_SECONDS.to_string();
    env.settings
        .insert("DBAAS_CLAIM_TTL_SECONDS".into(), ttl.clone());
    env.settings
        .insert("DBAAS_PROCESSING_DEADLINE_SECONDS".into(), "0".into());
    let db = env
        .create_ready(new_database("paused", "postgres", "db.t3.small", 1, 10))
        .await;
    let id = s(&db, "id").to_string();

    // No operator while the workers overlap: the OpsRequest stays unfinished.
    env.stop_standin().await;
    env.api
        .patch_database(&id, &serde_json::json!({"size": "db.t3.large"}))
        .await;
    env.reconcile().await;
    let pending = env.pending().await;
    assert_eq!(pending.len(), 1, "one operation queued: {pending:?}");
    let op_id = pending[0].clone();
    let request_name = format!("{op_id}-1");
    let kind = Kind::ops_request(Engine::Postgres);

    // Worker A claims the operation, creates the OpsRequest and follows it.
    let first = env.spawn_worker(&[]);
    let first_pid = first.child.id().expect("worker A's pid");
    wait_until("worker A follows its OpsRequest", 30, async || {
        let created = env
            .cluster
            .get(&kind, &env.namespace, &request_name)
            .await
            .ok()
            .flatten()
            .is_some();
        created && env.api.operation(&op_id).await["ops_request_name"] == request_name.as_str()
    })
    .await;
    let claim_a = claim_of(&env, &op_id).await.expect("worker A's claim");

    // A freezes past its claim; a pass hands the id to worker B.
    signal(first_pid, "-STOP");
    tokio::time::sleep(Duration::from_secs(CLAIM_TTL_SECONDS + 1)).await;
    env.reconcile().await;
    assert_eq!(
        env.pending().await,
        vec![op_id.clone()],
        "the id is queued again"
    );
    let second = env.spawn_worker(&[]);
    wait_until("worker B takes the operation over", 30, async || {
        claim_of(&env, &op_id).await.is_some_and(|c| c != claim_a)
    })
    .await;
    let claim_b = claim_of(&env, &op_id).await.expect("worker B's claim");

    // A wakes while B follows: it must stop at its next write.
    signal(first_pid, "-CONT");
    let (status_a, log_a) = first.wait(Duration::from_secs(30)).await;
    let text_a = std::fs::read_to_string(&log_a).unwrap_or_default();
    assert!(
        status_a.success(),
        "worker A exited with {status_a}: {}",
        log_tail(&log_a)
    );
    assert!(
        text_a.contains("claim lost to another worker"),
        "worker A did not notice it lost its claim: {}",
        log_tail(&log_a)
    );
    let op = env.api.operation(&op_id).await;
    assert_eq!(op["status"], "running", "A left the operation to B: {op}");
    assert_eq!(op["claimed_by"], claim_b.as_str(), "A wrote no claim: {op}");
    assert_eq!(
        env.processing().await,
        vec![op_id.clone()],
        "A left B's id in the processing list"
    );

    // The operator comes back; B finishes the operation.
    env.start_standin();
    let (status_b, log_b) = second.wait(Duration::from_secs(60)).await;
    let text_b = std::fs::read_to_string(&log_b).unwrap_or_default();
    assert!(
        status_b.success(),
        "worker B exited with {status_b}: {}",
        log_tail(&log_b)
    );

    // One recorded outcome, by B; one OpsRequest for the one attempt.
    let outcomes = |text: &str| {
        text.matches("operation succeeded").count() + text.matches("operation failed").count()
    };
    assert_eq!(
        outcomes(&text_a),
        0,
        "A recorded an outcome: {}",
        log_tail(&log_a)
    );
    assert_eq!(
        outcomes(&text_b),
        1,
        "B recorded one outcome: {}",
        log_tail(&log_b)
    );
    let op = env.api.operation(&op_id).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["attempts"], 1, "{op}");
    let requests = dbaas_e2e::names(&env.ops_requests_of(&db).await);
    assert_eq!(
        requests,
        vec![request_name.clone()],
        "one OpsRequest per attempt"
    );
    assert!(env.pending().await.is_empty() && env.processing().await.is_empty());

    let d = env.api.get_database(&id).await;
    assert_eq!(d["current_size"], "db.t3.large", "{d}");

    let mut summary = Summary::new("claims_sigstop");
    summary.trials = 1;
    summary.faults = 1;
    summary.converged = 1;
    summary.print();
    env.finish().await;
}
