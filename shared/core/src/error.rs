//! The one error type below the HTTP layer.
//!
//! Adapters map their drivers' errors into it (`dbaas-store`, `dbaas-queue`,
//! `dbaas-cluster`), keeping the driver's error as the source, so a log line
//! or `anyhow`'s `{:#}` shows the whole chain.

use std::time::Duration;

/// A boxed cause: a driver's error, or a message where there is none.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong below the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A uniqueness rule was violated (duplicate name, existing object).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A Kubernetes object already exists (create is then adopted).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The store could not be reached or answered with an error.
    #[error("store: {0}")]
    Store(#[source] BoxError),
    #[error("queue: {0}")]
    Queue(#[source] BoxError),
    #[error("kubernetes: {0}")]
    Kube(#[source] BoxError),
    /// The API server rejected an object as invalid (schema, strict fields).
    #[error("invalid object: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("configuration: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(#[source] BoxError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
