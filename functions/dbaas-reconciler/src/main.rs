//! `dbaas-reconciler`: one reconciliation pass, then exit (a CronJob).

use clap::Parser;
use dbaas_cluster::ClusterArgs;
use dbaas_control::config::{MetricsArgs, ReconcilerArgs, RetryArgs};
use dbaas_control::reconciler::Reconciler;
use dbaas_queue::QueueArgs;
use dbaas_runtime::LogArgs;
use dbaas_store::StoreArgs;

/// Runs one reconciliation pass under a Lease and exits: 0 when the pass
/// ran or another pass holds the Lease, 1 on error.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    queue: QueueArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    reconciler: ReconcilerArgs,
    #[command(flatten)]
    retry: RetryArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
    let config = cli
        .reconciler
        .config(&cli.cluster.namespace, &cli.retry, &cli.metrics);
    let (store, queue, cluster) = (
        cli.store.connect().await?,
        cli.queue.connect()?,
        cli.cluster.connect().await?,
    );
    Reconciler {
        store: &store,
        queue: &queue,
        cluster: &cluster,
        config: &config,
    }
    .run_pass()
    .await?;
    Ok(())
}
