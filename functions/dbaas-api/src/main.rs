//! `dbaas-api`: the HTTP API, plus admin subcommands that create tenants
//! and API keys directly in the store.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dbaas_cluster::ClusterArgs;
use dbaas_rest::config::ApiConfig;
use dbaas_rest::{AppState, create_api_key, create_tenant, router};
use dbaas_runtime::{LogArgs, shutdown_signal};
use dbaas_store::StoreArgs;
use dbaas_store::mongo::MongoStore;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Serves the DBaaS API: validates requests and records desired state.
/// Options go before the subcommand; each also reads its environment
/// variable.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    api: ApiConfig,
    /// Where the auth Secrets are read from (credentials route only).
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create tenants and API keys; prints the result as JSON.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Subcommand)]
enum Admin {
    /// Create a tenant.
    CreateTenant {
        /// Unique tenant name.
        #[arg(long)]
        name: String,
    },
    /// Create an API key for a tenant. The key is printed only this once.
    CreateKey {
        /// Tenant id (`tn-…`).
        #[arg(long)]
        tenant: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
    // Lazy: nothing is contacted until the first store call.
    let store = cli.store.connect().await.context("invalid MONGODB_URI")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.api, cli.cluster, store).await,
        Command::Admin(admin) => {
            store
                .ensure_indexes()
                .await
                .context("creating the store's indexes")?;
            let json = match admin {
                Admin::CreateTenant { name } => {
                    serde_json::to_string_pretty(&create_tenant(&store, &name).await?)?
                }
                Admin::CreateKey { tenant } => {
                    serde_json::to_string_pretty(&create_api_key(&store, &tenant).await?)?
                }
            };
            println!("{json}");
            Ok(())
        }
    }
}

/// Binds first and answers at once; indexes are created in the background
/// so a cold start does not wait on the store.
async fn serve(config: ApiConfig, cluster: ClusterArgs, store: MongoStore) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    info!(listen = %listener.local_addr()?, "serving the API");
    let indexes = store.clone();
    tokio::spawn(async move {
        if let Err(error) = indexes.ensure_indexes().await {
            warn!(%error, "creating the store's indexes failed; inserts retry it");
        }
    });
    let mut state = AppState::new(
        Arc::new(store),
        config.admin_token.clone(),
        config.limits.limits(),
    );
    if cluster.configured() {
        // The kubeconfig (or in-cluster token) is read on the first request
        // that needs the cluster, not before the first answer.
        state = state.with_cluster(Arc::new(cluster.connect_lazily()));
    } else {
        warn!(
            "no Kubernetes configuration (KUBECONFIG, or in a pod): credentials answer 503, \
             and each engine offers its built-in default version only"
        );
    }
    axum::serve(listener, router(state))
        // In-flight requests finish before `serve` returns.
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;
    info!("drained; exiting");
    Ok(())
}
