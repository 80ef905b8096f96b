//! `dbaas-api`: the HTTP API, plus admin subcommands that create tenants
//! and API keys directly in the store.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dbaas_shared::api::config::{ApiConfig, MongoConfig};
use dbaas_shared::api::{AppState, create_api_key, create_tenant, router};
use dbaas_shared::store::mongo::MongoStore;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Serves the DBaaS API: validates requests and records desired state.
/// Options go before the subcommand; each also reads its environment
/// variable.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    mongo: MongoConfig,
    #[command(flatten)]
    api: ApiConfig,
    /// Log JSON lines instead of text.
    #[arg(long, env = "DBAAS_LOG_JSON")]
    log_json: bool,
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
    dbaas_shared::telemetry::init_tracing(cli.log_json);
    // Lazy: nothing is contacted until the first store call.
    let store = MongoStore::new(&cli.mongo.mongodb_uri, &cli.mongo.mongodb_database)
        .await
        .context("invalid MONGODB_URI")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.api, store).await,
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
async fn serve(config: ApiConfig, store: MongoStore) -> anyhow::Result<()> {
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
    let state = AppState::new(
        Arc::new(store),
        config.admin_token.clone(),
        config.limits.limits(),
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;
    info!("drained; exiting");
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes, KEDA scale-down) or Ctrl-C; in-flight
/// requests then finish before `serve` returns.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received; draining"),
        () = term => info!("SIGTERM received; draining"),
    }
}
