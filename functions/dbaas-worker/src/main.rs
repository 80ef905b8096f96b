//! `dbaas-worker`: one operation, then exit (a KEDA ScaledJob pod).

use std::process::ExitCode;

use clap::Parser;
use dbaas_shared::config::{BackendArgs, WorkerArgs};
use dbaas_shared::worker::{Outcome, Worker};
use tokio::signal::unix::{SignalKind, signal};

/// Takes one operation from the queue and runs it to the end.
///
/// Exit codes: 0 done (or nothing to do), 3 the operation failed and was
/// recorded for retry, 143 stopped by SIGTERM with the operation returned
/// to the queue, 1 an infrastructure error.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    dbaas_shared::telemetry::init_tracing(cli.backend.log_json);
    let config = cli.worker.config(&cli.backend)?;
    let (store, queue, cluster) = (
        cli.backend.store().await?,
        cli.backend.queue()?,
        cli.backend.cluster().await?,
    );
    let mut sigterm = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let worker = Worker {
        store: &*store,
        queue: &*queue,
        cluster: &*cluster,
        config: &config,
    };
    let outcome = worker.run_once(shutdown).await?;
    tracing::info!(?outcome, "worker done");
    Ok(match outcome {
        Outcome::Idle | Outcome::Dropped(_) | Outcome::Succeeded(_) => ExitCode::SUCCESS,
        Outcome::Failed(_) => ExitCode::from(3),
        Outcome::Interrupted(_) => ExitCode::from(143),
    })
}
