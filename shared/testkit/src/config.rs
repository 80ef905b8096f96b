//! Settings of the reconciler and worker when a test runs them in its own
//! process: quick polls, no pushing, dead workers' ids requeued at once.
//! Tests change what they exercise with struct update syntax.

use std::time::Duration;

use dbaas_control::reconciler::ReconcilerConfig;
use dbaas_control::worker::WorkerConfig;

/// A pass in `namespace` under the Lease as `holder`.
pub fn reconciler_config(namespace: &str, holder: &str) -> ReconcilerConfig {
    ReconcilerConfig {
        namespace: namespace.to_string(),
        lease_name: "dbaas-reconciler".into(),
        holder: holder.to_string(),
        lease_ttl: Duration::from_secs(30),
        max_attempts: 3,
        processing_deadline: Duration::ZERO,
        pushgateway_url: None,
        // Above one, so every test also runs databases' settling overlapped.
        settle_concurrency: 4,
    }
}

/// A worker in `namespace` that retries at once.
pub fn worker_config(namespace: &str) -> WorkerConfig {
    WorkerConfig {
        namespace: namespace.to_string(),
        dequeue_timeout: Duration::from_millis(10),
        claim_ttl: Duration::from_secs(30),
        poll_interval: Duration::from_millis(10),
        operation_deadline: Duration::from_secs(30),
        retry_backoff: Duration::ZERO,
        max_retry_backoff: Duration::ZERO,
        pushgateway_url: None,
    }
}

/// A worker for tests whose servers fail under it: short claims, so another
/// worker takes over soon, and a backoff that grows but stays short.
pub fn outage_worker_config(namespace: &str) -> WorkerConfig {
    WorkerConfig {
        dequeue_timeout: Duration::from_millis(200),
        claim_ttl: Duration::from_millis(1500),
        poll_interval: Duration::from_millis(50),
        operation_deadline: Duration::from_secs(60),
        retry_backoff: Duration::from_millis(100),
        max_retry_backoff: Duration::from_secs(1),
        ..worker_config(namespace)
    }
}

/// Arguments of a `kubedb-standin` process watching `namespace` that moves
/// objects along in a fraction of a second.
pub fn standin_args(namespace: &str) -> Vec<String> {
    [
        "--namespaces",
        namespace,
        "--provision-delay-ms",
        "300",
        "--phase-delay-ms",
        "200",
        "--poll-interval-ms",
        "100",
    ]
    .map(String::from)
    .to_vec()
}
