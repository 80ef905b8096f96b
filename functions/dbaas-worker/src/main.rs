//! `dbaas-worker`: one operation, then exit (a KEDA ScaledJob pod).

use std::process::ExitCode;

use clap::Parser;
use dbaas_cluster::ClusterArgs;
use dbaas_control::config::{MetricsArgs, RetryArgs, WorkerArgs};
use dbaas_control::worker::{Outcome, Worker};
use dbaas_queue::QueueArgs;
use dbaas_runtime::{LogArgs, shutdown_signal};
use dbaas_store::StoreArgs;

/// Takes one operation from the queue and runs it to the end.
///
/// Exit codes: 0 done (or nothing to do, or the operation was taken over by
/// another worker after this one lost its claim), 3 the operation failed and
/// was recorded for retry, 143 stopped by SIGTERM with the operation
/// returned to the queue, 1 an infrastructure error.
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
    worker: WorkerArgs,
    #[command(flatten)]
    retry: RetryArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    cli.log.init();
    let config = cli
        .worker
        .config(&cli.cluster.namespace, &cli.retry, &cli.metrics)?;
    let (store, queue, cluster) = (
        cli.store.connect().await?,
        cli.queue.connect()?,
        cli.cluster.connect().await?,
    );
    let worker = Worker {
        store: &store,
        queue: &queue,
        cluster: &cluster,
        config: &config,
    };
    let outcome = worker.run_once(shutdown_signal()).await?;
    tracing::info!(?outcome, "worker done");
    Ok(match outcome {
        Outcome::Idle | Outcome::Dropped(_) | Outcome::Succeeded(_) | Outcome::Lost(_) => {
            ExitCode::SUCCESS
        }
        Outcome::Failed(_) => ExitCode::from(3),
        Outcome::Interrupted(_) => ExitCode::from(143),
    })
}
