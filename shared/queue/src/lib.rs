//! The work queue: operation ids waiting for a worker.
//!
//! A reliable queue in the Redis pattern: workers BLMOVE an id from the
//! pending list to a processing list, and remove it only when done, so a
//! worker that dies leaves its id where the reconciler can find it and put
//! it back. KEDA scales workers on the pending list's length. The store
//! stays the source of truth; the queue only says what to look at next.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use dbaas_core::error::Result;

mod args;
#[cfg(feature = "sqlite")]
pub mod embedded;
#[cfg(feature = "redis")]
pub mod redis;

pub use args::QueueArgs;

/// An id in the processing list and when it was first seen there.
#[derive(Debug, Clone, PartialEq)]
pub struct InProcess {
    pub operation_id: String,
    /// When a worker took it; `None` if the worker died before recording it.
    pub since: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends to the pending list.
    async fn enqueue(&self, operation_id: &str) -> Result<()>;
    /// Moves the oldest pending id to the processing list, waiting up to
    /// `timeout`; records when. `None` if nothing came.
    async fn dequeue(&self, timeout: Duration) -> Result<Option<String>>;
    /// Removes a finished id from the processing list.
    async fn ack(&self, operation_id: &str) -> Result<()>;
    /// Moves an id from the processing list back to the pending list.
    async fn requeue(&self, operation_id: &str) -> Result<()>;
    /// Ids in the pending list, oldest first.
    async fn pending(&self) -> Result<Vec<String>>;
    /// Ids in the processing list, with the time each was taken; an id with
    /// no time gets `now` recorded, so its deadline starts counting.
    async fn processing(&self, now: DateTime<Utc>) -> Result<Vec<InProcess>>;
    async fn ping(&self) -> Result<()>;
}
