//! Waiting for a database to reach a state, polling with backoff.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use serde_json::Value;

use crate::cli::Until;
use crate::client::{Client, NO_QUERY, db_path};
use crate::error::Error;
use crate::model::{Database, Operation};

/// Where a database stands against what is waited for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Reached,
    /// It failed; the reason, as its `Failed` condition tells it.
    Failed(String),
    Pending,
}

impl Until {
    pub fn describe(self) -> &'static str {
        match self {
            Until::Ready => "ready",
            Until::InSync => "in sync",
            Until::Deleted => "deleted",
        }
    }

    /// Judges one reading of the database.
    pub fn judge(self, db: &Database) -> Verdict {
        if db.status == "failed" {
            let reason = db.failure().unwrap_or("status failed");
            return Verdict::Failed(reason.to_string());
        }
        let idle = db.active_operation_id.is_none();
        let reached = match self {
            Until::Ready => db.status == "ready",
            Until::InSync => match db.status.as_str() {
                "ready" => {
                    db.generation == db.observed_generation
                        && db.paused == db.current_paused
                        && idle
                }
                // While paused, other changes wait for the resume: the
                // pause itself being done is all that can be in sync.
                "paused" => db.paused == db.current_paused && idle,
                _ => false,
            },
            Until::Deleted => db.status == "deleted",
        };
        if reached {
            Verdict::Reached
        } else {
            Verdict::Pending
        }
    }
}

/// Polls database `id` until `until` holds, it fails, or `timeout` passes;
/// shows progress on stderr when that is a terminal. Returns the last
/// reading (`Null` when a deleted database was no longer found).
pub async fn wait(
    client: &Client,
    id: &str,
    until: Until,
    timeout: Duration,
) -> Result<Value, Error> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut progress = Progress::new(id, until);
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(1.5)
        .without_max_times()
        .build();
    let path = db_path(id);
    loop {
        let value = match client.get(&path, NO_QUERY).await {
            Ok(v) => v,
            Err(Error::Api { status: 404, .. }) if until == Until::Deleted => {
                return Ok(Value::Null);
            }
            Err(e) => return Err(e),
        };
        let db: Database = serde_json::from_value(value.clone()).map_err(|e| Error::Decode {
            url: path.clone(),
            reason: e.to_string(),
        })?;
        let pending = match until.judge(&db) {
            Verdict::Reached => return Ok(value),
            Verdict::Failed(reason) => {
                return Err(Error::Failed {
                    id: id.to_string(),
                    reason,
                });
            }
            Verdict::Pending => db,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                id: id.to_string(),
                until: until.describe(),
                waited: timeout,
                state: state_line(&pending, client.active_operation(&pending).await.as_ref()),
            });
        }
        if progress.enabled {
            let op = client.active_operation(&pending).await;
            progress.show(state_line(&pending, op.as_ref()), start.elapsed());
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

/// `status updating, operation op-1 (scale_vertical running, OpsRequest phase Progressing)`.
fn state_line(db: &Database, op: Option<&Operation>) -> String {
    let mut line = format!("status {}", db.status);
    match (&db.active_operation_id, op) {
        (Some(id), Some(op)) => line.push_str(&format!(", operation {id} ({})", op.summary())),
        (Some(id), None) => line.push_str(&format!(", operation {id}")),
        (None, _) => {}
    }
    if db.generation != db.observed_generation {
        line.push_str(&format!(
            ", observed generation {} of {}",
            db.observed_generation, db.generation
        ));
    }
    line
}

/// Progress on stderr, a line each time the state changes; only on a
/// terminal, so that scripts' logs stay quiet.
struct Progress {
    enabled: bool,
    what: String,
    last: String,
}

impl Progress {
    fn new(id: &str, until: Until) -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            what: format!("waiting for {id} to be {}", until.describe()),
            last: String::new(),
        }
    }

    fn show(&mut self, state: String, elapsed: Duration) {
        if state == self.last {
            return;
        }
        // A failed write to the terminal only loses a progress line.
        let _ = writeln!(
            std::io::stderr(),
            "{} ({}s): {state}",
            self.what,
            elapsed.as_secs()
        );
        self.last = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db(fields: Value) -> Database {
        let mut base = json!({
            "id": "db-1", "name": "orders", "engine": "postgres",
            "version": "16.4", "current_version": "16.4",
            "size": "db.t3.small", "current_size": "db.t3.small",
            "replicas": 1, "current_replicas": 1,
            "storage_gb": 20, "current_storage_gb": 20,
            "paused": false, "current_paused": false,
            "generation": 2, "observed_generation": 2,
            "status": "ready", "conditions": [], "active_operation_id": null,
            "created_at": "2026-01-01T00:00:00Z"
        });
        for (k, v) in fields.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn in_sync_needs_the_generation_observed_and_no_operation() {
        assert_eq!(Until::InSync.judge(&db(json!({}))), Verdict::Reached);
        let behind = db(json!({"generation": 3}));
        assert_eq!(Until::InSync.judge(&behind), Verdict::Pending);
        assert_eq!(Until::Ready.judge(&behind), Verdict::Reached);
        let busy = db(json!({"active_operation_id": "op-1"}));
        assert_eq!(Until::InSync.judge(&busy), Verdict::Pending);
        let updating = db(json!({"status": "updating"}));
        assert_eq!(Until::InSync.judge(&updating), Verdict::Pending);
    }

    #[test]
    fn a_paused_database_is_in_sync_once_the_pause_is_done() {
        let paused = db(
            json!({"status": "paused", "paused": true, "current_paused": true, "generation": 5}),
        );
        assert_eq!(Until::InSync.judge(&paused), Verdict::Reached);
        assert_eq!(Until::Ready.judge(&paused), Verdict::Pending);
        let resuming = db(json!({"status": "paused", "paused": false, "current_paused": true}));
        assert_eq!(Until::InSync.judge(&resuming), Verdict::Pending);
    }

    #[test]
    fn failure_ends_every_wait_with_its_reason() {
        let failed = db(json!({"status": "failed", "conditions": [
            {"type": "Failed", "status": "True", "reason": "OperationFailed",
             "message": "scale_vertical failed after 1 attempts: boom"}]}));
        for until in [Until::Ready, Until::InSync, Until::Deleted] {
            assert_eq!(
                until.judge(&failed),
                Verdict::Failed("scale_vertical failed after 1 attempts: boom".into())
            );
        }
        assert_eq!(
            Until::Deleted.judge(&db(json!({"status": "deleted"}))),
            Verdict::Reached
        );
    }
}
