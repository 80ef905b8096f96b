//! The flags of the reconciler and the worker. Every flag has an
//! environment equivalent (clap `env`), so the same binary is configured by
//! flags on a laptop and by a ConfigMap in a pod. Where the store, queue and
//! cluster are is configured by the adapters' own flag groups
//! (`StoreArgs`, `QueueArgs`, `ClusterArgs`); logging by `LogArgs`.

use std::time::Duration;

use clap::Args;
use dbaas_core::error::{Error, Result};

use crate::reconciler::ReconcilerConfig;
use crate::worker::WorkerConfig;

/// Where short-lived runs push their metrics.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Pushgateway base URL; unset disables pushing metrics.
    #[arg(long, env = "PUSHGATEWAY_URL")]
    pub pushgateway_url: Option<String>,
}

/// Retry policy shared by the reconciler (which starts a retry when it is
/// due) and the worker (which schedules it).
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// Attempts of one operation before the database shows it failed.
    #[arg(long, env = "DBAAS_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Seconds before the first retry; doubles with every attempt.
    #[arg(long, env = "DBAAS_RETRY_BACKOFF_SECONDS", default_value_t = 30.0)]
    pub retry_backoff_seconds: f64,
    /// Longest delay between retries, in seconds.
    #[arg(
        long,
        env = "DBAAS_MAX_RETRY_BACKOFF_SECONDS",
        default_value_t = 1800.0
    )]
    pub max_retry_backoff_seconds: f64,
}

impl RetryArgs {
    /// The first retry's delay and the longest one.
    pub fn backoff(&self) -> Result<(Duration, Duration)> {
        Ok((
            seconds(self.retry_backoff_seconds, "retry backoff")?,
            seconds(self.max_retry_backoff_seconds, "max retry backoff")?,
        ))
    }
}

/// Settings of the reconciler role.
#[derive(Debug, Clone, Args)]
pub struct ReconcilerArgs {
    /// Name of the Lease that keeps passes from overlapping.
    #[arg(long, env = "DBAAS_LEASE_NAME", default_value = "dbaas-reconciler")]
    pub lease_name: String,
    /// Identity in the Lease; defaults to the host name (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub holder: Option<String>,
    /// Seconds the Lease stays valid; keep it above the longest pass.
    #[arg(long, env = "DBAAS_LEASE_TTL_SECONDS", default_value_t = 240)]
    pub lease_ttl_seconds: u64,
    /// Seconds an id may sit in the processing list with no live worker
    /// before it goes back to the queue.
    #[arg(long, env = "DBAAS_PROCESSING_DEADLINE_SECONDS", default_value_t = 120)]
    pub processing_deadline_seconds: u64,
    /// Databases a pass settles at once (their store writes overlap).
    #[arg(long, env = "DBAAS_SETTLE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub settle_concurrency: u64,
}

impl ReconcilerArgs {
    pub fn config(
        &self,
        namespace: &str,
        retry: &RetryArgs,
        metrics: &MetricsArgs,
    ) -> ReconcilerConfig {
        ReconcilerConfig {
            namespace: namespace.to_string(),
            lease_name: self.lease_name.clone(),
            holder: self.holder.clone().unwrap_or_else(default_holder),
            lease_ttl: Duration::from_secs(self.lease_ttl_seconds),
            max_attempts: retry.max_attempts,
            processing_deadline: Duration::from_secs(self.processing_deadline_seconds),
            pushgateway_url: metrics.pushgateway_url.clone(),
            settle_concurrency: usize::try_from(self.settle_concurrency).unwrap_or(1),
        }
    }
}

/// Settings of the worker role.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Seconds to wait for an operation before exiting.
    #[arg(long, env = "DBAAS_DEQUEUE_TIMEOUT_SECONDS", default_value_t = 2.0)]
    pub dequeue_timeout_seconds: f64,
    /// Seconds a claim lasts without renewal.
    #[arg(long, env = "DBAAS_CLAIM_TTL_SECONDS", default_value_t = 60.0)]
    pub claim_ttl_seconds: f64,
    /// Seconds between polls of the object being followed.
    #[arg(long, env = "DBAAS_POLL_INTERVAL_SECONDS", default_value_t = 2.0)]
    pub poll_interval_seconds: f64,
    /// Seconds to follow an object before recording a failure.
    #[arg(
        long,
        env = "DBAAS_OPERATION_DEADLINE_SECONDS",
        default_value_t = 1800.0
    )]
    pub operation_deadline_seconds: f64,
}

impl WorkerArgs {
    pub fn config(
        &self,
        namespace: &str,
        retry: &RetryArgs,
        metrics: &MetricsArgs,
    ) -> Result<WorkerConfig> {
        let (retry_backoff, max_retry_backoff) = retry.backoff()?;
        Ok(WorkerConfig {
            namespace: namespace.to_string(),
            dequeue_timeout: seconds(self.dequeue_timeout_seconds, "dequeue timeout")?,
            claim_ttl: seconds(self.claim_ttl_seconds, "claim ttl")?,
            poll_interval: seconds(self.poll_interval_seconds, "poll interval")?,
            operation_deadline: seconds(self.operation_deadline_seconds, "operation deadline")?,
            retry_backoff,
            max_retry_backoff,
            pushgateway_url: metrics.pushgateway_url.clone(),
        })
    }
}

fn seconds(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::Config(format!("{what} must be a non-negative number of seconds")))
}

/// This process's identity in the Lease: the host (pod) name and the pid.
pub fn default_holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "reconciler".to_string());
    format!("{host}-{}", std::process::id())
}
