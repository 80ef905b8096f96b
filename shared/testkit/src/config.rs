//! Settings of the reconciler and worker when a test runs them in its own
//! process: quick polls, no pushing, dead workers' ids requeued at once.
//! Tests change what they exercise with struct update syntax.

use std::time::Duration;

use dbaas_control::reconciler::ReconcilerConfig;
use dbaas_control::worker::WorkerConfig;
use dbaas_core::kubedb::DeletionPolicy;

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
        deletion_policy: DeletionPolicy::WipeOut,
        pushgateway_url: None,
    }
}
