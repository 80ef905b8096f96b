//! The Redis adapter: the reliable-queue pattern on two lists and a hash.
//!
//! `<prefix>:pending` is a list (enqueue pushes on the left, workers take
//! from the right, so it is FIFO), `<prefix>:processing` holds the ids being
//! worked on, and `<prefix>:processing_since` maps each to the unix
//! milliseconds at which it was taken.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::OnceCell;

use super::{InProcess, Queue};
use dbaas_core::error::{Error, Result};

/// The driver's error as the queue's, kept as its source.
fn queue_err(e: redis::RedisError) -> Error {
    Error::Queue(Box::new(e))
}

/// How long to wait for a TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-blocking command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time a BLMOVE reply may take beyond its own timeout.
const BLOCKING_GRACE: Duration = Duration::from_secs(2);

/// Moves an id from processing back to pending, only if it was processing,
/// in one step so no other client sees it in neither list.
const REQUEUE: &str = r"
local removed = redis.call('LREM', KEYS[1], 0, ARGV[1])
if removed > 0 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
redis.call('HDEL', KEYS[3], ARGV[1])
return removed
";

/// Lists the processing ids oldest first with their times, giving `now`
/// to ids that have none.
const PROCESSING: &str = r"
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local out = {}
for i = #ids, 1, -1 do
  redis.call('HSETNX', KEYS[2], ids[i], ARGV[1])
  out[#out + 1] = ids[i]
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i])
end
return out
";

/// A [`Queue`] in Redis.
pub struct RedisQueue {
    client: Client,
    shared: OnceCell<ConnectionManager>,
    /// Connections for BLMOVE: a blocked connection answers nothing else
    /// until the command returns, so each waiting dequeue gets its own, and
    /// returns it here when done.
    blocking: std::sync::Mutex<Vec<MultiplexedConnection>>,
    pending: String,
    processing: String,
    since: String,
    requeue: Script,
    list_processing: Script,
}

impl RedisQueue {
    /// A queue under the keys `<prefix>:*` at `url`. Does not connect: the
    /// first command does (and later ones reconnect as needed).
    pub fn new(url: &str, prefix: &str) -> Result<Self> {
        Ok(RedisQueue {
            client: Client::open(url).map_err(queue_err)?,
            shared: OnceCell::new(),
            blocking: Default::default(),
            pending: format!("{prefix}:pending"),
            processing: format!("{prefix}:processing"),
            since: format!("{prefix}:processing_since"),
            requeue: Script::new(REQUEUE),
            list_processing: Script::new(PROCESSING),
        })
    }

    /// The multiplexed connection for non-blocking commands.
    async fn conn(&self) -> Result<ConnectionManager> {
        let manager = self
            .shared
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .map_err(queue_err)?;
        Ok(manager.clone())
    }

    async fn blocking_conn(&self) -> Result<MultiplexedConnection> {
        let pooled = self
            .blocking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(queue_err)
    }

    async fn take(&self, timeout: Duration) -> Result<Option<String>> {
        if timeout < Duration::from_millis(1) {
            // Redis counts BLMOVE timeouts in milliseconds, and 0 waits forever.
            return redis::cmd("LMOVE")
                .arg(&self.pending)
                .arg(&self.processing)
                .arg("RIGHT")
                .arg("LEFT")
                .query_async(&mut self.conn().await?)
                .await
                .map_err(queue_err);
        }
        let mut conn = self.blocking_conn().await?;
        conn.set_response_timeout(timeout + BLOCKING_GRACE);
        let id: Option<String> = redis::cmd("BLMOVE")
            .arg(&self.pending)
            .arg(&self.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(&mut conn)
            .await
            .map_err(queue_err)?;
        // Only a connection that answered goes back: after an error its
        // state is unknown. (If this future is dropped mid-BLMOVE, the id
        // may still move; `processing()` then gives it a time.)
        self.blocking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
        Ok(id)
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, operation_id: &str) -> Result<()> {
        redis::cmd("LPUSH")
            .arg(&self.pending)
            .arg(operation_id)
            .query_async::<()>(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        Ok(())
    }

    async fn dequeue(&self, timeout: Duration) -> Result<Option<String>> {
        let Some(id) = self.take(timeout).await? else {
            return Ok(None);
        };
        redis::cmd("HSET")
            .arg(&self.since)
            .arg(&id)
            .arg(Utc::now().timestamp_millis())
            .query_async::<()>(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        Ok(Some(id))
    }

    async fn ack(&self, operation_id: &str) -> Result<()> {
        redis::pipe()
            .atomic()
            .cmd("LREM")
            .arg(&self.processing)
            .arg(0)
            .arg(operation_id)
            .ignore()
            .cmd("HDEL")
            .arg(&self.since)
            .arg(operation_id)
            .ignore()
            .query_async::<()>(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        Ok(())
    }

    async fn requeue(&self, operation_id: &str) -> Result<()> {
        self.requeue
            .key(&self.processing)
            .key(&self.pending)
            .key(&self.since)
            .arg(operation_id)
            .invoke_async::<i64>(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = redis::cmd("LRANGE")
            .arg(&self.pending)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        // The list's head is the newest.
        ids.reverse();
        Ok(ids)
    }

    async fn processing(&self, now: DateTime<Utc>) -> Result<Vec<InProcess>> {
        let flat: Vec<String> = self
            .list_processing
            .key(&self.processing)
            .key(&self.since)
            .arg(now.timestamp_millis())
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        flat.chunks_exact(2)
            .map(|pair| {
                let millis: i64 = pair[1].parse().map_err(|_| {
                    Error::Queue(format!("bad time {:?} for {}", pair[1], pair[0]).into())
                })?;
                Ok(InProcess {
                    operation_id: pair[0].clone(),
                    since: DateTime::from_timestamp_millis(millis),
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<()> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn().await?)
            .await
            .map_err(queue_err)?;
        Ok(())
    }
}
