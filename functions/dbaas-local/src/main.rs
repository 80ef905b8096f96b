//! `dbaas-local`: the whole control plane in one process, for a laptop.

use clap::Parser;
use dbaas_local::LocalArgs;

/// Runs the API, the reconciler on a timer, workers and a KubeDB stand-in
/// in one process, with an embedded store, queue and cluster persisted
/// under the data directory. Flags swap any embedded part for a real one.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    local: LocalArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    dbaas_runtime::init_tracing(false);
    dbaas_local::run(cli.local).await?;
    Ok(())
}
