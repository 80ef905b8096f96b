//! The one error type of the library.

use std::time::Duration;

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
    Store(String),
    #[error("queue: {0}")]
    Queue(String),
    #[error("kubernetes: {0}")]
    Kube(String),
    /// The API server rejected an object as invalid (schema, strict fields).
    #[error("invalid object: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("configuration: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        if is_duplicate_key(&e) {
            return Error::Conflict(e.to_string());
        }
        Error::Store(e.to_string())
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        ErrorKind::InsertMany(i) => i
            .write_errors
            .as_ref()
            .is_some_and(|ws| ws.iter().any(|w| w.code == 11000)),
        _ => false,
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return Error::Conflict(e.to_string());
        }
        Error::Store(e.to_string())
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Queue(e.to_string())
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => {
                Error::AlreadyExists(s.message.clone())
            }
            kube::Error::Api(s) if s.code == 409 => Error::Conflict(s.message.clone()),
            kube::Error::Api(s) if s.code == 404 => Error::NotFound(s.message.clone()),
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                Error::Invalid(s.message.clone())
            }
            _ => Error::Kube(e.to_string()),
        }
    }
}
