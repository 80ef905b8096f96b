//! `kubedb-standin`: plays the KubeDB operator on a real API server that has
//! the KubeDB CRDs but no operator (the test rig). The behaviour lives in
//! [`dbaas_standin`]; this is only the process around it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dbaas_cluster::kube::KubeCluster;
use dbaas_runtime::shutdown_signal;
use dbaas_standin::{Standin, StandinConfig};

/// Moves KubeDB database CRs and OpsRequests through their phases until
/// SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Kubeconfig file; unset means `$KUBECONFIG`-style inference, then in-cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespaces to watch, comma-separated; empty means all namespaces.
    #[arg(long, env = "STANDIN_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Time from Provisioning to Ready, in milliseconds.
    #[arg(long, env = "STANDIN_PROVISION_DELAY_MS", default_value_t = 5000)]
    provision_delay_ms: u64,
    /// Time an OpsRequest spends in each of Pending and Progressing, in milliseconds.
    #[arg(long, env = "STANDIN_PHASE_DELAY_MS", default_value_t = 2000)]
    phase_delay_ms: u64,
    /// Share of OpsRequests that fail at random, 0.0 to 1.0.
    #[arg(long, env = "STANDIN_FAILURE_RATIO", default_value_t = 0.0, value_parser = ratio)]
    failure_ratio: f64,
    /// Seed of the random failures.
    #[arg(long, env = "STANDIN_SEED", default_value_t = 0)]
    seed: u64,
    /// Pause between passes, in milliseconds.
    #[arg(long, env = "STANDIN_POLL_INTERVAL_MS", default_value_t = 500)]
    poll_interval_ms: u64,
    /// Create KubeDB's version catalog (the `*Version` objects) first, as
    /// installing KubeDB does; for clusters where nothing else puts it there.
    #[arg(long, env = "STANDIN_INSTALL_CATALOG")]
    install_catalog: bool,
    /// Log JSON lines instead of text.
    #[arg(long, env = "LOG_JSON")]
    log_json: bool,
}

fn ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    (0.0..=1.0)
        .contains(&r)
        .then_some(r)
        .ok_or_else(|| "must be between 0.0 and 1.0".to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    dbaas_runtime::init_tracing(cli.log_json);
    let cluster = KubeCluster::from_kubeconfig(cli.kubeconfig.as_deref()).await?;
    let config = StandinConfig {
        provision_delay: Duration::from_millis(cli.provision_delay_ms),
        phase_delay: Duration::from_millis(cli.phase_delay_ms),
        failure_ratio: cli.failure_ratio,
        namespaces: cli
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
        seed: cli.seed,
    };
    if cli.install_catalog {
        dbaas_standin::catalog::install(&cluster).await?;
        tracing::info!("version catalog installed");
    }
    tracing::info!(?config, "kubedb stand-in starting");
    Standin::new(std::sync::Arc::new(cluster), config)
        .run(
            Duration::from_millis(cli.poll_interval_ms),
            shutdown_signal(),
        )
        .await;
    tracing::info!("kubedb stand-in stopped");
    Ok(())
}
