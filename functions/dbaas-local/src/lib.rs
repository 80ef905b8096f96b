//! The one-command local mode: every role in one process.
//!
//! The API, a reconciler pass on a timer, a pool of workers (what the KEDA
//! ScaledJob does in a cluster) and the in-process KubeDB stand-in, all
//! through the same library code the binaries run. This module only
//! schedules; it has no control-plane logic of its own. Each part is
//! embedded by default (SQLite store and queue, an in-process cluster, all
//! persisted under the data directory) and can be swapped for the real one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use dbaas_cluster::Cluster;
use dbaas_cluster::embedded::EmbeddedCluster;
use dbaas_control::config::RetryArgs;
use dbaas_control::reconciler::{Reconciler, ReconcilerConfig};
use dbaas_control::worker::{Outcome, Worker, WorkerConfig};
use dbaas_core::domain::{self, ApiKeyRecord, Tenant};
use dbaas_core::error::{Error, Result};
use dbaas_queue::Queue;
use dbaas_queue::embedded::SqliteQueue;
use dbaas_runtime::shutdown_signal;
use dbaas_standin::{Standin, StandinConfig};
use dbaas_store::Store;
use dbaas_store::embedded::SqliteStore;

/// The parts the local mode runs, embedded or real.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub cluster: Arc<dyn Cluster>,
    /// Whether to run the in-process KubeDB stand-in against `cluster`.
    pub standin: Option<StandinConfig>,
}

impl Parts {
    /// Embedded store, queue and cluster under `data_dir`, with the stand-in.
    pub fn embedded(data_dir: &Path, standin: StandinConfig) -> Result<Parts> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", data_dir.display())))?;
        Ok(Parts {
            store: Arc::new(SqliteStore::open(data_dir.join("store.sqlite"))?),
            queue: Arc::new(SqliteQueue::open(data_dir.join("queue.sqlite"))?),
            cluster: Arc::new(EmbeddedCluster::open(&data_dir.join("cluster.sqlite"))?),
            standin: Some(standin),
        })
    }
}

/// Schedules of the local mode.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub reconcile_every: Duration,
    pub workers: usize,
    pub standin_poll: Duration,
}

/// The key for `DBAAS_DEV_API_KEY`, or the one kept in `key_file`, or a new
/// one (written to `key_file`): registered for the `dev` tenant.
pub async fn ensure_dev_key(
    store: &dyn Store,
    given: Option<&str>,
    key_file: &Path,
) -> Result<String> {
    let key = match given {
        Some(k) => k.to_string(),
        None => match std::fs::read_to_string(key_file) {
            Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
            _ => domain::new_api_key(),
        },
    };
    let hash = domain::hash_api_key(&key);
    if store.find_api_key(&hash).await?.is_none() {
        let now = Utc::now();
        let tenant = Tenant {
            id: domain::new_tenant_id(),
            name: format!("dev-{}", domain::random_token(6)),
            created_at: now,
        };
        store.insert_tenant(&tenant).await?;
        store
            .insert_api_key(&ApiKeyRecord {
                key_hash: hash,
                prefix: key.chars().take(8).collect(),
                tenant_id: tenant.id.clone(),
                created_at: now,
            })
            .await?;
        info!(tenant_id = %tenant.id, "created the dev tenant and its API key");
    }
    if given.is_none() {
        write_private(key_file, &key)?;
    }
    Ok(key)
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(content.as_bytes())
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))
}

/// Runs the reconciler, the workers and the stand-in until `shutdown`
/// flips to true. The API is served by the caller.
pub async fn run_background(
    parts: &Parts,
    schedule: &Schedule,
    reconciler: ReconcilerConfig,
    worker: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    if let Some(config) = parts.standin.clone() {
        let standin = Standin::new(parts.cluster.clone(), config);
        let poll = schedule.standin_poll;
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            standin
                .run(poll, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    {
        let (store, queue, cluster) = (
            parts.store.clone(),
            parts.queue.clone(),
            parts.cluster.clone(),
        );
        let every = schedule.reconcile_every;
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let pass = Reconciler {
                    store: &*store,
                    queue: &*queue,
                    cluster: &*cluster,
                    config: &reconciler,
                };
                if let Err(e) = pass.run_pass().await {
                    warn!(error = %e, "reconciliation pass failed; next one in {every:?}");
                }
            }
        });
    }
    for n in 0..schedule.workers {
        let (store, queue, cluster) = (
            parts.store.clone(),
            parts.queue.clone(),
            parts.cluster.clone(),
        );
        let config = worker.clone();
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            while !*stop.borrow() {
                let w = Worker {
                    store: &*store,
                    queue: &*queue,
                    cluster: &*cluster,
                    config: &config,
                };
                let mut stop_one = stop.clone();
                match w
                    .run_once(async move {
                        let _ = stop_one.wait_for(|s| *s).await;
                    })
                    .await
                {
                    Ok(Outcome::Idle) => {}
                    Ok(outcome) => info!(worker = n, ?outcome, "worker finished an operation"),
                    Err(e) => {
                        error!(worker = n, error = %e, "worker failed; retrying shortly");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// The default data directory: `$XDG_DATA_HOME/dbaas` or `~/.local/share/dbaas`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("dbaas");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/dbaas")
}

/// Settings of the local mode. Every flag has an environment equivalent.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Address the API listens on.
    #[arg(long, env = "DBAAS_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: std::net::SocketAddr,
    /// Where the embedded store, queue, cluster and the dev API key live.
    #[arg(long, env = "DBAAS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds between reconciliation passes.
    #[arg(long, env = "RECONCILIATION_INTERVAL", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconciliation_interval: u64,
    /// Operations run at once (what the ScaledJob's maxReplicaCount bounds).
    #[arg(long, env = "DBAAS_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// API key of the dev tenant; unset, one is generated on first start and
    /// kept in the data directory.
    #[arg(long, env = "DBAAS_DEV_API_KEY", hide_env_values = true)]
    pub dev_api_key: Option<String>,
    /// Bootstrap token for the admin routes, as in `dbaas-api`.
    #[arg(long, env = "DBAAS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Request timeout and per-key rate limit, as in `dbaas-api`.
    #[command(flatten)]
    pub limits: dbaas_rest::config::LimitsConfig,
    /// Use this MongoDB instead of the embedded store.
    #[arg(long)]
    pub mongodb_uri: Option<String>,
    /// Database name in that MongoDB, as in the other binaries.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "dbaas")]
    pub mongodb_database: String,
    /// Use this Redis instead of the embedded queue.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys in that Redis, as in the other binaries.
    #[arg(long, env = "DBAAS_QUEUE_PREFIX", default_value = "dbaas:operations")]
    pub queue_prefix: String,
    /// Use the cluster of this kubeconfig instead of the embedded one.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Run the in-process KubeDB stand-in even against a real cluster (off
    /// there by default: the real KubeDB operator does its job).
    #[arg(long)]
    pub standin: bool,
    /// Milliseconds the stand-in takes to make a new database Ready.
    #[arg(long, env = "DBAAS_STANDIN_PROVISION_MS", default_value_t = 3000)]
    pub standin_provision_ms: u64,
    /// Milliseconds an OpsRequest spends in each of Pending and Progressing.
    #[arg(long, env = "DBAAS_STANDIN_PHASE_MS", default_value_t = 2000)]
    pub standin_phase_ms: u64,
    /// Share of OpsRequests the stand-in fails at random (0 to 1).
    #[arg(long, env = "DBAAS_STANDIN_FAILURE_RATIO", default_value_t = 0.0)]
    pub standin_failure_ratio: f64,
    /// Retry policy, as in the reconciler and worker.
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// Runs the local mode until SIGINT or SIGTERM.
pub async fn run(args: LocalArgs) -> Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let standin = StandinConfig {
        provision_delay: Duration::from_millis(args.standin_provision_ms),
        phase_delay: Duration::from_millis(args.standin_phase_ms),
        failure_ratio: args.standin_failure_ratio,
        namespaces: vec![dbaas_core::naming::DEFAULT_NAMESPACE.to_string()],
        seed: rand::random(),
    };
    let mut parts = Parts::embedded(&data_dir, standin)?;
    if let Some(uri) = &args.mongodb_uri {
        parts.store =
            Arc::new(dbaas_store::mongo::MongoStore::new(uri, &args.mongodb_database).await?);
    }
    if let Some(url) = &args.redis_url {
        parts.queue = Arc::new(dbaas_queue::redis::RedisQueue::new(
            url,
            &args.queue_prefix,
        )?);
    }
    if let Some(path) = &args.kubeconfig {
        parts.cluster =
            Arc::new(dbaas_cluster::kube::KubeCluster::from_kubeconfig(Some(path)).await?);
        if !args.standin {
            parts.standin = None;
        }
    }
    if parts.standin.is_some() {
        // The stand-in plays KubeDB, whose chart installs the catalog.
        dbaas_standin::catalog::install(&*parts.cluster).await?;
    }
    let key = ensure_dev_key(
        &*parts.store,
        args.dev_api_key.as_deref(),
        &data_dir.join("api-key"),
    )
    .await?;

    let namespace = dbaas_core::naming::DEFAULT_NAMESPACE.to_string();
    let (retry_backoff, max_retry_backoff) = args.retry.backoff()?;
    let reconciler = ReconcilerConfig {
        namespace: namespace.clone(),
        lease_name: "dbaas-reconciler".into(),
        holder: format!("dbaas-local-{}", std::process::id()),
        lease_ttl: Duration::from_secs(args.reconciliation_interval.max(30) * 2),
        max_attempts: args.retry.max_attempts,
        // In one process a worker that vanished is a worker that crashed
        // with the process: its claim expiring is the signal, not this.
        processing_deadline: Duration::from_secs(30),
        pushgateway_url: None,
        settle_concurrency: 16,
    };
    let worker = WorkerConfig {
        namespace,
        dequeue_timeout: Duration::from_secs(1),
        claim_ttl: Duration::from_secs(15),
        poll_interval: Duration::from_millis(500),
        operation_deadline: Duration::from_secs(1800),
        retry_backoff,
        max_retry_backoff,
        pushgateway_url: None,
    };
    let schedule = Schedule {
        reconcile_every: Duration::from_secs(args.reconciliation_interval),
        workers: args.workers.max(1),
        standin_poll: Duration::from_millis(250),
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", args.listen)))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Error::Config(e.to_string()))?
    );
    print_banner(&url, &key, &data_dir);

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = dbaas_rest::router(
        dbaas_rest::AppState::new(
            parts.store.clone(),
            args.admin_token.clone(),
            args.limits.limits(),
        )
        .with_cluster(parts.cluster.clone()),
    );
    let mut api_stop = stop_rx.clone();
    let api = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = api_stop.wait_for(|s| *s).await;
    });
    let background = run_background(&parts, &schedule, reconciler, worker, stop_rx);
    let signals = async {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let (served, (), ()) = tokio::join!(api, background, signals);
    served.map_err(|e| Error::Config(format!("API server: {e}")))
}

fn print_banner(url: &str, key: &str, data_dir: &Path) {
    // The dev key is printed on purpose: it is the local mode's only way in,
    // and it is also in the data directory. It never goes to the log.
    println!(
        "\n  dbaas local control plane\n\
         \n  API       {url}/api/v1   (OpenAPI: {url}/openapi.json)\
         \n  console   {url}/console/\
         \n  API key   {key}\
         \n  data      {}\n\
         \n  Try it:\
         \n    export KEY={key}\
         \n    curl -s -X POST {url}/api/v1/databases -H \"Authorization: Bearer $KEY\" \\\
         \n      -H 'Content-Type: application/json' \\\
         \n      -d '{{\"name\":\"orders\",\"engine\":\"postgres\",\"size\":\"db.t3.small\",\"replicas\":1,\"storage_gb\":20}}'\
         \n    curl -s {url}/api/v1/databases -H \"Authorization: Bearer $KEY\"\n",
        data_dir.display()
    );
}
