//! Command-line and environment configuration shared by the roles.
//!
//! Every flag has an environment equivalent (clap `env`), so the same
//! binary is configured by flags on a laptop and by a ConfigMap in a pod.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cluster::Cluster;
use crate::cluster::kube::KubeCluster;
use crate::error::{Error, Result};
use crate::kubedb::DeletionPolicy;
use crate::naming::DEFAULT_NAMESPACE;
use crate::queue::Queue;
use crate::queue::redis::RedisQueue;
use crate::reconciler::ReconcilerConfig;
use crate::store::Store;
use crate::store::mongo::MongoStore;
use crate::worker::WorkerConfig;

/// Where the store, queue and cluster are.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// MongoDB connection string (the store); may hold a password, so its
    /// value is never shown.
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/",
        hide_env_values = true
    )]
    pub mongodb_uri: String,
    /// MongoDB database name.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "dbaas")]
    pub mongodb_database: String,
    /// Redis URL (the operation queue); may hold a password.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Prefix of the Redis keys; KEDA's ScaledJob watches `<prefix>:pending`.
    #[arg(long, env = "DBAAS_QUEUE_PREFIX", default_value = "dbaas:operations")]
    pub queue_prefix: String,
    /// Kubeconfig file; unset means in-cluster configuration.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace holding the database CRs, OpsRequests and the Lease.
    #[arg(long, env = "DBAAS_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Pushgateway base URL; unset disables pushing metrics.
    #[arg(long, env = "PUSHGATEWAY_URL")]
    pub pushgateway_url: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "DBAAS_LOG_JSON")]
    pub log_json: bool,
}

impl BackendArgs {
    /// Connects lazily: nothing is contacted before the first call.
    pub async fn store(&self) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(
            MongoStore::new(&self.mongodb_uri, &self.mongodb_database).await?,
        ))
    }

    pub fn queue(&self) -> Result<Arc<dyn Queue>> {
        Ok(Arc::new(RedisQueue::new(
            &self.redis_url,
            &self.queue_prefix,
        )?))
    }

    pub async fn cluster(&self) -> Result<Arc<dyn Cluster>> {
        Ok(Arc::new(
            KubeCluster::from_kubeconfig(self.kubeconfig.as_deref()).await?,
        ))
    }
}

/// Retry policy shared by the reconciler (which retries) and the worker
/// (which schedules the retry).
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
    #[command(flatten)]
    pub retry: RetryArgs,
}

impl ReconcilerArgs {
    pub fn config(&self, backend: &BackendArgs) -> Result<ReconcilerConfig> {
        Ok(ReconcilerConfig {
            namespace: backend.namespace.clone(),
            lease_name: self.lease_name.clone(),
            holder: match &self.holder {
                Some(h) => h.clone(),
                None => default_holder(),
            },
            lease_ttl: Duration::from_secs(self.lease_ttl_seconds),
            max_attempts: self.retry.max_attempts,
            processing_deadline: Duration::from_secs(self.processing_deadline_seconds),
            pushgateway_url: backend.pushgateway_url.clone(),
        })
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
    /// deletionPolicy of the database CRs created (Delete keeps secrets,
    /// WipeOut removes everything).
    #[arg(long, env = "DBAAS_DELETION_POLICY", default_value = "WipeOut")]
    pub deletion_policy: String,
    #[command(flatten)]
    pub retry: RetryArgs,
}

impl WorkerArgs {
    pub fn config(&self, backend: &BackendArgs) -> Result<WorkerConfig> {
        Ok(WorkerConfig {
            namespace: backend.namespace.clone(),
            dequeue_timeout: seconds(self.dequeue_timeout_seconds, "dequeue timeout")?,
            claim_ttl: seconds(self.claim_ttl_seconds, "claim ttl")?,
            poll_interval: seconds(self.poll_interval_seconds, "poll interval")?,
            operation_deadline: seconds(self.operation_deadline_seconds, "operation deadline")?,
            retry_backoff: seconds(self.retry.retry_backoff_seconds, "retry backoff")?,
            max_retry_backoff: seconds(self.retry.max_retry_backoff_seconds, "max retry backoff")?,
            deletion_policy: DeletionPolicy::parse(&self.deletion_policy).ok_or_else(|| {
                Error::Config(format!(
                    "unknown deletion policy {:?}",
                    self.deletion_policy
                ))
            })?,
            pushgateway_url: backend.pushgateway_url.clone(),
        })
    }
}

fn seconds(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::Config(format!("{what} must be a non-negative number of seconds")))
}

fn default_holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "reconciler".to_string());
    format!("{host}-{}", std::process::id())
}
