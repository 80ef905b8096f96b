//! What every binary of the control plane starts with: logging set up the
//! same way, and one shutdown signal.

use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Logging flags, flattened into every binary.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log JSON lines instead of text.
    #[arg(long, env = "DBAAS_LOG_JSON")]
    pub log_json: bool,
}

impl LogArgs {
    /// Installs the tracing subscriber: JSON lines or compact text on
    /// stderr; the level comes from `RUST_LOG` (default `info`).
    pub fn init(&self) {
        init_tracing(self.log_json);
    }
}

/// Installs the tracing subscriber: JSON lines when `json`, else compact
/// text; the level comes from `RUST_LOG` (default `info`).
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests, local mode) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Resolves on SIGTERM (Kubernetes, KEDA scale-down) or Ctrl-C.
pub async fn shutdown_signal() {
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
        () = ctrl_c => info!("Ctrl-C received; stopping"),
        () = term => info!("SIGTERM received; stopping"),
    }
}
