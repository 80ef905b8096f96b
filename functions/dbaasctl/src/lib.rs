//! `dbaasctl`: the DBaaS API from a shell. Profiles of URL and key, every
//! database and operation endpoint, plans, and waits for convergence.

pub mod cli;
mod client;
mod commands;
mod config;
mod error;
mod model;
mod render;
mod wait;

use std::io::Write as _;

pub use cli::Cli;
pub use error::Error;

/// Runs the command `cli` names, printing to stdout.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let mut out = std::io::stdout();
    commands::run(cli, &mut out).await?;
    out.flush()?;
    Ok(())
}
