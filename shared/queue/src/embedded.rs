//! The embedded adapter: the same two lists and hash in SQLite, for the
//! one-command local mode.
//!
//! Items carry an increasing sequence number; a list's oldest item is its
//! smallest. Moving an item gives it a new number, like pushing it onto the
//! other list does in Redis. A waiting dequeue wakes on enqueues in this
//! process and polls for those of other processes sharing the file.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{InProcess, Queue};
use dbaas_core::error::{Error, Result};
use dbaas_store::embedded::configure;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    list TEXT NOT NULL CHECK (list IN ('pending', 'processing')),
    operation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_items_list ON queue_items (list, seq);
CREATE INDEX IF NOT EXISTS queue_items_id ON queue_items (operation_id);
CREATE TABLE IF NOT EXISTS queue_processing_since (
    operation_id TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL
);
";

/// How often a waiting dequeue looks for items enqueued by another process.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A [`Queue`] in a SQLite database.
#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
    enqueued: Arc<Notify>,
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue in the file at `path`; the file
    /// may be the store's.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::init(Connection::open(path).map_err(queue_err)?)
    }

    /// A queue that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(queue_err)?)
    }

    fn init(conn: Connection) -> Result<Self> {
        configure(&conn).map_err(queue_err)?;
        conn.execute_batch(SCHEMA).map_err(queue_err)?;
        Ok(SqliteQueue {
            conn: Arc::new(Mutex::new(conn)),
            enqueued: Arc::new(Notify::new()),
        })
    }

    /// Runs `f` in an immediate transaction on a blocking thread.
    async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled its transaction back.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::Queue(format!("queue task failed: {e}").into()))?
        .map_err(queue_err)
    }

    /// Moves the oldest pending id to processing, if there is one.
    async fn take(&self) -> Result<Option<String>> {
        self.tx(|tx| {
            let oldest = tx
                .query_row(
                    "SELECT seq, operation_id FROM queue_items
                     WHERE list = 'pending' ORDER BY seq LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            let Some((seq, id)) = oldest else {
                return Ok(None);
            };
            tx.execute("DELETE FROM queue_items WHERE seq = ?1", [seq])?;
            push(tx, "processing", &id)?;
            tx.execute(
                "INSERT INTO queue_processing_since (operation_id, since_ms) VALUES (?1, ?2)
                 ON CONFLICT (operation_id) DO UPDATE SET since_ms = excluded.since_ms",
                params![id, Utc::now().timestamp_millis()],
            )?;
            Ok(Some(id))
        })
        .await
    }
}

/// SQLite errors are queue errors here, whatever `From` says for the store.
fn queue_err(e: rusqlite::Error) -> Error {
    Error::Queue(Box::new(e))
}

fn push(tx: &Transaction<'_>, list: &str, id: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO queue_items (list, operation_id) VALUES (?1, ?2)",
        params![list, id],
    )?;
    Ok(())
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn enqueue(&self, operation_id: &str) -> Result<()> {
        let id = operation_id.to_string();
        self.tx(move |tx| push(tx, "pending", &id)).await?;
        self.enqueued.notify_waiters();
        Ok(())
    }

    async fn dequeue(&self, timeout: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            // Registered before looking, so an enqueue between the look and
            // the wait still wakes us.
            let notified = self.enqueued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(id) = self.take().await? {
                return Ok(Some(id));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(POLL_INTERVAL);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn ack(&self, operation_id: &str) -> Result<()> {
        let id = operation_id.to_string();
        self.tx(move |tx| {
            tx.execute(
                "DELETE FROM queue_items WHERE list = 'processing' AND operation_id = ?1",
                [&id],
            )?;
            tx.execute(
                "DELETE FROM queue_processing_since WHERE operation_id = ?1",
                [&id],
            )?;
            Ok(())
        })
        .await
    }

    async fn requeue(&self, operation_id: &str) -> Result<()> {
        let id = operation_id.to_string();
        let moved = self
            .tx(move |tx| {
                let removed = tx.execute(
                    "DELETE FROM queue_items WHERE list = 'processing' AND operation_id = ?1",
                    [&id],
                )?;
                if removed > 0 {
                    push(tx, "pending", &id)?;
                }
                tx.execute(
                    "DELETE FROM queue_processing_since WHERE operation_id = ?1",
                    [&id],
                )?;
                Ok(removed > 0)
            })
            .await?;
        if moved {
            self.enqueued.notify_waiters();
        }
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<String>> {
        self.tx(|tx| {
            let mut stmt = tx.prepare(
                "SELECT operation_id FROM queue_items WHERE list = 'pending' ORDER BY seq",
            )?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
        .await
    }

    async fn processing(&self, now: DateTime<Utc>) -> Result<Vec<InProcess>> {
        let now = now.timestamp_millis();
        let rows = self
            .tx(move |tx| {
                tx.execute(
                    "INSERT INTO queue_processing_since (operation_id, since_ms)
                     SELECT DISTINCT operation_id, ?1 FROM queue_items WHERE list = 'processing'
                     ON CONFLICT (operation_id) DO NOTHING",
                    [now],
                )?;
                let mut stmt = tx.prepare(
                    "SELECT i.operation_id, s.since_ms FROM queue_items i
                     LEFT JOIN queue_processing_since s ON s.operation_id = i.operation_id
                     WHERE i.list = 'processing' ORDER BY i.seq",
                )?;
                stmt.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(operation_id, since)| InProcess {
                operation_id,
                since: since.and_then(DateTime::from_timestamp_millis),
            })
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        self.tx(|tx| tx.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}
