//! `dbaas-reconciler`: one reconciliation pass, then exit (a CronJob).

use clap::Parser;
use dbaas_shared::config::{BackendArgs, ReconcilerArgs};
use dbaas_shared::reconciler::Reconciler;

/// Runs one reconciliation pass under a Lease and exits: 0 when the pass
/// ran or another pass holds the Lease, 1 on error.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    reconciler: ReconcilerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    dbaas_shared::telemetry::init_tracing(cli.backend.log_json);
    let config = cli.reconciler.config(&cli.backend)?;
    let (store, queue, cluster) = (
        cli.backend.store().await?,
        cli.backend.queue()?,
        cli.backend.cluster().await?,
    );
    Reconciler {
        store: &*store,
        queue: &*queue,
        cluster: &*cluster,
        config: &config,
    }
    .run_pass()
    .await?;
    Ok(())
}
