//! The client's one error type. Each renders as one line.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong, and how the process exits for it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error status (a problem+json body, usually).
    #[error("{status} {message}")]
    Api { status: u16, message: String },
    /// No answer: connection refused, reset, timed out, or a gateway that
    /// could not reach the API. Retried first for idempotent requests.
    #[error("{0}")]
    Network(String),
    /// A 2xx answer whose body is not what the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
    /// The command line or the configuration asks for something impossible.
    #[error("{0}")]
    Usage(String),
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error("{id} failed: {reason}")]
    Failed { id: String, reason: String },
    #[error(
        "timed out after {} waiting for {id} to be {until}: {state}",
        humantime::format_duration(*waited)
    )]
    Timeout {
        id: String,
        until: &'static str,
        waited: Duration,
        state: String,
    },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// 2 for usage errors, as clap exits for its own; 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// Whether stdout was closed under us (`dbaasctl db list | head`):
    /// the reader has what it wanted, which is no failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn config(path: &std::path::Path, reason: impl std::fmt::Display) -> Error {
        Error::Config {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
