//! The embedded adapter: one SQLite file, for the one-command local mode.
//!
//! Each record is a JSON column next to the columns that filters and unique
//! constraints need. Every method runs in one `IMMEDIATE` transaction that
//! reads the record, checks the precondition and writes it back, so it is
//! as atomic as the MongoDB adapter's single-document updates (and safe
//! against another process sharing the file). Times are truncated to
//! milliseconds, the precision the MongoDB adapter keeps, so both adapters
//! return the same records.
//!
//! Events that ride with a write go into the `events` table in the write's
//! transaction, and only when its precondition held; there is no outbox,
//! so [`Store::flush_events`] has nothing to move. Records written before a
//! field existed read back with the field's default (serde defaults).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    DatabaseQuery, DesiredChange, EventQuery, ObservedUpdate, OperationQuery, OperationUpdate,
    Store,
};
use dbaas_core::domain::OperationStatus::{Failed, Pending, Running};
use dbaas_core::domain::{
    ApiKeyRecord, Database, DatabaseStatus, Event, Operation, OperationStatus, Tenant,
};
use dbaas_core::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS databases (
    id TEXT PRIMARY KEY,
    -- <tenant>/<name> while the database lives, <tenant>/<name>/deleted/<id> after.
    name_key TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS databases_tenant ON databases (tenant_id, id);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY,
    database_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_database ON operations (database_id, created_at_ms, id);
CREATE INDEX IF NOT EXISTS operations_tenant ON operations (tenant_id, created_at_ms, id);
CREATE INDEX IF NOT EXISTS operations_created ON operations (created_at_ms, id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    database_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_database ON events (database_id, at_ms, id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value REAL NOT NULL
);
";

/// A [`Store`] in a SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::init(Connection::open(path).map_err(store_err)?)
    }

    /// A store that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(conn: Connection) -> Result<Self> {
        configure(&conn).map_err(store_err)?;
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` in an immediate transaction on a blocking thread.
    async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled its transaction back, so the
            // connection behind a poisoned lock is still consistent.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(store_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(store_err)?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::Store(format!("store task failed: {e}").into()))?
    }
}

/// The driver's error as the store's: a constraint violation is a conflict.
fn store_err(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return Error::Conflict(e.to_string());
    }
    Error::Store(Box::new(e))
}

/// Durable, concurrent-reader settings shared by the store and the queue.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // In-memory databases answer "memory" and keep their journal; fine.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
    // NORMAL in WAL mode loses at most the last commits on power loss, never
    // consistency; a process crash loses nothing.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Another process on the same file (a second local instance) waits
    // instead of failing with SQLITE_BUSY.
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(())
}

/// Sets the fields `update` sets (its events are written by the caller).
fn apply_update(op: &mut Operation, update: OperationUpdate) {
    if let Some(s) = update.status {
        op.status = s;
    }
    if let Some(a) = update.attempts {
        op.attempts = a;
    }
    if let Some(e) = update.error {
        op.error = e;
    }
    if let Some(n) = update.ops_request_name {
        op.ops_request_name = n;
    }
    if let Some(p) = update.ops_request_phase {
        op.ops_request_phase = p;
    }
    if let Some(t) = update.claimed_until {
        op.claimed_until = t.map(millis);
    }
    if let Some(t) = update.next_attempt_at {
        op.next_attempt_at = t.map(millis);
    }
    if let Some(t) = update.finished_at {
        op.finished_at = t.map(millis);
    }
}

/// `t` with the sub-millisecond part dropped.
fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn now() -> DateTime<Utc> {
    millis(Utc::now())
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Store(format!("encoding record: {e}").into()))
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Store(format!("decoding record: {e}").into()))
}

fn name_key(db: &Database) -> String {
    if db.status == DatabaseStatus::Deleted {
        format!("{}/{}/deleted/{}", db.tenant_id, db.name, db.id)
    } else {
        format!("{}/{}", db.tenant_id, db.name)
    }
}

fn normalize_database(mut db: Database) -> Database {
    db.created_at = millis(db.created_at);
    db.updated_at = millis(db.updated_at);
    for c in &mut db.conditions {
        c.last_transition_time = millis(c.last_transition_time);
    }
    db
}

fn normalize_operation(mut op: Operation) -> Operation {
    op.claimed_until = op.claimed_until.map(millis);
    op.next_attempt_at = op.next_attempt_at.map(millis);
    op.created_at = millis(op.created_at);
    op.updated_at = millis(op.updated_at);
    op.finished_at = op.finished_at.map(millis);
    op
}

fn load<T: DeserializeOwned>(tx: &Transaction<'_>, table: &str, id: &str) -> Result<Option<T>> {
    let sql = format!("SELECT doc FROM {table} WHERE id = ?1");
    tx.query_row(&sql, [id], |r| r.get::<_, String>(0))
        .optional()
        .map_err(store_err)?
        .map(|doc| from_json(&doc))
        .transpose()
}

fn save_database(tx: &Transaction<'_>, db: &Database) -> Result<()> {
    tx.execute(
        "UPDATE databases SET name_key = ?2, status = ?3, doc = ?4 WHERE id = ?1",
        params![db.id, name_key(db), db.status.as_str(), to_json(db)?],
    )
    .map_err(store_err)?;
    Ok(())
}

/// Loads a database, lets `change` check its precondition and modify it,
/// and saves it if the precondition held.
fn modify_database(
    tx: &Transaction<'_>,
    id: &str,
    change: impl FnOnce(&mut Database) -> bool,
) -> Result<Option<Database>> {
    let Some(mut db) = load::<Database>(tx, "databases", id)? else {
        return Ok(None);
    };
    if !change(&mut db) {
        return Ok(None);
    }
    db.updated_at = now();
    save_database(tx, &db)?;
    Ok(Some(db))
}

fn modify_operation(
    tx: &Transaction<'_>,
    id: &str,
    change: impl FnOnce(&mut Operation) -> bool,
) -> Result<Option<Operation>> {
    let Some(mut op) = load::<Operation>(tx, "operations", id)? else {
        return Ok(None);
    };
    if !change(&mut op) {
        return Ok(None);
    }
    op.updated_at = now();
    tx.execute(
        "UPDATE operations SET status = ?2, doc = ?3 WHERE id = ?1",
        params![op.id, op.status.as_str(), to_json(&op)?],
    )
    .map_err(store_err)?;
    Ok(Some(op))
}

/// Appends `events` to the history, in the caller's transaction; an event
/// whose id is already there is kept as it is (idempotent by id).
fn write_events(tx: &Transaction<'_>, events: &[Event]) -> Result<()> {
    for event in events {
        let mut event = event.clone();
        event.at = millis(event.at);
        tx.execute(
            "INSERT INTO events (id, database_id, at_ms, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO NOTHING",
            params![
                event.id,
                event.database_id,
                event.at.timestamp_millis(),
                to_json(&event)?
            ],
        )
        .map_err(store_err)?;
    }
    Ok(())
}

/// `modified` as it is, after writing `events` if it is `Some` (the write's
/// precondition held).
fn with_events<T>(
    tx: &Transaction<'_>,
    modified: Option<T>,
    events: &[Event],
) -> Result<Option<T>> {
    if modified.is_some() {
        write_events(tx, events)?;
    }
    Ok(modified)
}

fn query_docs<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    sql: &str,
    args: Vec<Value>,
) -> Result<Vec<T>> {
    let mut stmt = tx.prepare(sql).map_err(store_err)?;
    let docs = stmt
        .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))
        .map_err(store_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(store_err)?;
    docs.iter().map(|d| from_json(d)).collect()
}

fn limit_value(limit: usize) -> Value {
    Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.tx(|tx| tx.query_row("SELECT 1", [], |_| Ok(())).map_err(store_err))
            .await
    }

    async fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        let mut t = tenant.clone();
        t.created_at = millis(t.created_at);
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO tenants (id, name, doc) VALUES (?1, ?2, ?3)",
                params![t.id, t.name, to_json(&t)?],
            )
            .map_err(store_err)?;
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let id = id.to_string();
        self.tx(move |tx| load(tx, "tenants", &id)).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut k = key.clone();
        k.created_at = millis(k.created_at);
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO api_keys (key_hash, tenant_id, doc) VALUES (?1, ?2, ?3)",
                params![k.key_hash, k.tenant_id, to_json(&k)?],
            )
            .map_err(store_err)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let key_hash = key_hash.to_string();
        self.tx(move |tx| {
            tx.query_row(
                "SELECT doc FROM api_keys WHERE key_hash = ?1",
                [&key_hash],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(store_err)?
            .map(|doc| from_json(&doc))
            .transpose()
        })
        .await
    }

    async fn insert_database(&self, db: &Database, events: &[Event]) -> Result<()> {
        let db = normalize_database(db.clone());
        let events = events.to_vec();
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO databases (id, name_key, tenant_id, engine, status, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    db.id,
                    name_key(&db),
                    db.tenant_id,
                    db.engine.as_str(),
                    db.status.as_str(),
                    to_json(&db)?
                ],
            )
            .map_err(store_err)?;
            write_events(tx, &events)
        })
        .await
    }

    async fn get_database(&self, id: &str) -> Result<Option<Database>> {
        let id = id.to_string();
        self.tx(move |tx| load(tx, "databases", &id)).await
    }

    async fn list_databases(&self, query: &DatabaseQuery) -> Result<Vec<Database>> {
        let mut sql = String::from("SELECT doc FROM databases WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(t) = &query.tenant_id {
            sql.push_str(" AND tenant_id = ?");
            args.push(Value::Text(t.clone()));
        }
        if let Some(e) = query.engine {
            sql.push_str(" AND engine = ?");
            args.push(Value::Text(e.as_str().into()));
        }
        if let Some(s) = query.status {
            sql.push_str(" AND status = ?");
            args.push(Value::Text(s.as_str().into()));
        }
        if query.exclude_deleted {
            sql.push_str(" AND status <> ?");
            args.push(Value::Text(DatabaseStatus::Deleted.as_str().into()));
        }
        if let Some(after) = &query.after_id {
            sql.push_str(" AND id > ?");
            args.push(Value::Text(after.clone()));
        }
        sql.push_str(" ORDER BY id");
        if let Some(limit) = query.limit {
            sql.push_str(" LIMIT ?");
            args.push(limit_value(limit));
        }
        self.tx(move |tx| query_docs(tx, &sql, args)).await
    }

    async fn update_desired(
        &self,
        id: &str,
        expected_generation: u64,
        change: &DesiredChange,
    ) -> Result<Option<Database>> {
        let (id, mut change) = (id.to_string(), change.clone());
        let events = std::mem::take(&mut change.events);
        self.tx(move |tx| {
            let modified = modify_database(tx, &id, |db| {
                if db.generation != expected_generation || db.deletion_requested {
                    return false;
                }
                if let Some(s) = change.size {
                    db.size = s;
                }
                if let Some(r) = change.replicas {
                    db.replicas = r;
                }
                if let Some(g) = change.storage_gb {
                    db.storage_gb = g;
                }
                if let Some(v) = change.version {
                    db.version = v;
                }
                if let Some(n) = change.auth_rotation {
                    db.auth_rotation = n;
                }
                if let Some(p) = change.paused {
                    db.paused = p;
                }
                if let Some(p) = change.deletion_protection {
                    db.deletion_protection = p;
                }
                if let Some(p) = change.deletion_policy {
                    db.deletion_policy = p;
                }
                if let Some(n) = change.restarts {
                    db.restarts = n;
                }
                if change.delete {
                    db.deletion_requested = true;
                }
                if let Some(s) = change.status {
                    db.status = s;
                }
                db.generation += 1;
                true
            })?;
            with_events(tx, modified, &events)
        })
        .await
    }

    async fn update_observed(&self, id: &str, update: &ObservedUpdate) -> Result<bool> {
        let (id, mut update) = (id.to_string(), update.clone());
        let events = std::mem::take(&mut update.events);
        let updated = self
            .tx(move |tx| {
                let modified = modify_database(tx, &id, |db| {
                    if let Some(s) = update.current_size {
                        db.current_size = Some(s);
                    }
                    if let Some(r) = update.current_replicas {
                        db.current_replicas = Some(r);
                    }
                    if let Some(g) = update.current_storage_gb {
                        db.current_storage_gb = Some(g);
                    }
                    if let Some(v) = update.current_version {
                        db.current_version = Some(v);
                    }
                    if let Some(n) = update.current_auth_rotation {
                        db.current_auth_rotation = db.current_auth_rotation.max(n);
                    }
                    if let Some(p) = update.current_deletion_policy {
                        db.current_deletion_policy = Some(p);
                    }
                    if let Some(p) = update.current_paused {
                        db.current_paused = p;
                    }
                    if let Some(n) = update.current_restarts {
                        db.current_restarts = db.current_restarts.max(n);
                    }
                    if let Some(c) = update.connection {
                        db.connection = Some(c);
                    }
                    if let Some(g) = update.observed_generation {
                        db.observed_generation = g;
                    }
                    if let Some(s) = update.status {
                        db.status = s;
                    }
                    if let Some(c) = update.conditions {
                        db.conditions = c;
                        for c in &mut db.conditions {
                            c.last_transition_time = millis(c.last_transition_time);
                        }
                    }
                    true
                })?;
                with_events(tx, modified, &events)
            })
            .await?;
        Ok(updated.is_some())
    }

    async fn begin_operation(
        &self,
        id: &str,
        operation_id: &str,
        expected_seq: u64,
    ) -> Result<bool> {
        let (id, operation_id) = (id.to_string(), operation_id.to_string());
        let updated = self
            .tx(move |tx| {
                modify_database(tx, &id, |db| {
                    if db.active_operation_id.is_some() || db.operation_seq != expected_seq {
                        return false;
                    }
                    db.active_operation_id = Some(operation_id);
                    db.operation_seq += 1;
                    true
                })
            })
            .await?;
        Ok(updated.is_some())
    }

    async fn end_operation(&self, id: &str, operation_id: &str) -> Result<bool> {
        let (id, operation_id) = (id.to_string(), operation_id.to_string());
        let updated = self
            .tx(move |tx| {
                modify_database(tx, &id, |db| {
                    if db.active_operation_id.as_deref() != Some(operation_id.as_str()) {
                        return false;
                    }
                    db.active_operation_id = None;
                    true
                })
            })
            .await?;
        Ok(updated.is_some())
    }

    async fn finalize_deletion(&self, id: &str, events: &[Event]) -> Result<bool> {
        let (id, events) = (id.to_string(), events.to_vec());
        self.tx(move |tx| {
            let Some(db) = load::<Database>(tx, "databases", &id)? else {
                return Ok(false);
            };
            if db.status == DatabaseStatus::Deleted {
                // Finalized before: nothing to do, no second event.
                return Ok(true);
            }
            let modified = modify_database(tx, &id, |db| {
                db.status = DatabaseStatus::Deleted;
                true
            })?;
            Ok(with_events(tx, modified, &events)?.is_some())
        })
        .await
    }

    async fn insert_operation(&self, op: &Operation, events: &[Event]) -> Result<bool> {
        let (op, events) = (normalize_operation(op.clone()), events.to_vec());
        self.tx(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO operations (id, database_id, tenant_id, status, created_at_ms, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                params![
                    op.id,
                    op.database_id,
                    op.tenant_id,
                    op.status.as_str(),
                    op.created_at.timestamp_millis(),
                    to_json(&op)?
                ],
            ).map_err(store_err)?;
            Ok(with_events(tx, (inserted == 1).then_some(()), &events)?.is_some())
        })
        .await
    }

    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        let id = id.to_string();
        self.tx(move |tx| load(tx, "operations", &id)).await
    }

    async fn list_operations(&self, query: &OperationQuery) -> Result<Vec<Operation>> {
        let mut sql = String::from("SELECT doc FROM operations WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(t) = &query.tenant_id {
            sql.push_str(" AND tenant_id = ?");
            args.push(Value::Text(t.clone()));
        }
        if let Some(d) = &query.database_id {
            sql.push_str(" AND database_id = ?");
            args.push(Value::Text(d.clone()));
        }
        if !query.statuses.is_empty() {
            let marks = vec!["?"; query.statuses.len()].join(", ");
            sql.push_str(&format!(" AND status IN ({marks})"));
            args.extend(
                query
                    .statuses
                    .iter()
                    .map(|s| Value::Text(s.as_str().into())),
            );
        }
        if let Some((at, id)) = &query.before {
            sql.push_str(" AND (created_at_ms < ? OR (created_at_ms = ? AND id < ?))");
            let at = at.timestamp_millis();
            args.extend([
                Value::Integer(at),
                Value::Integer(at),
                Value::Text(id.clone()),
            ]);
        }
        sql.push_str(" ORDER BY created_at_ms DESC, id DESC");
        if let Some(limit) = query.limit {
            sql.push_str(" LIMIT ?");
            args.push(limit_value(limit));
        }
        self.tx(move |tx| query_docs(tx, &sql, args)).await
    }

    async fn insert_event(&self, event: &Event) -> Result<()> {
        let event = event.clone();
        self.tx(move |tx| write_events(tx, std::slice::from_ref(&event)))
            .await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let mut sql = String::from("SELECT doc FROM events WHERE database_id = ?");
        let mut args = vec![Value::Text(query.database_id.clone())];
        if let Some((at, id)) = &query.before {
            sql.push_str(" AND (at_ms < ? OR (at_ms = ? AND id < ?))");
            let at = at.timestamp_millis();
            args.extend([
                Value::Integer(at),
                Value::Integer(at),
                Value::Text(id.clone()),
            ]);
        }
        sql.push_str(" ORDER BY at_ms DESC, id DESC");
        if let Some(limit) = query.limit {
            sql.push_str(" LIMIT ?");
            args.push(limit_value(limit));
        }
        self.tx(move |tx| query_docs(tx, &sql, args)).await
    }

    async fn flush_events(&self) -> Result<usize> {
        // Events are written to the history directly, in their write's
        // transaction: there is never anything to move.
        Ok(0)
    }

    async fn update_operation(
        &self,
        id: &str,
        expected: &[OperationStatus],
        update: &OperationUpdate,
    ) -> Result<Option<Operation>> {
        let (id, expected, mut update) = (id.to_string(), expected.to_vec(), update.clone());
        let events = std::mem::take(&mut update.events);
        self.tx(move |tx| {
            let modified = modify_operation(tx, &id, |op| {
                let holds = expected.contains(&op.status);
                if holds {
                    apply_update(op, update);
                }
                holds
            })?;
            with_events(tx, modified, &events)
        })
        .await
    }

    async fn update_claimed_operation(
        &self,
        id: &str,
        claim: &str,
        update: &OperationUpdate,
    ) -> Result<Option<Operation>> {
        let (id, claim, mut update) = (id.to_string(), claim.to_string(), update.clone());
        let events = std::mem::take(&mut update.events);
        self.tx(move |tx| {
            let modified = modify_operation(tx, &id, |op| {
                let holds = op.status == OperationStatus::Running
                    && op.claimed_by.as_deref() == Some(claim.as_str());
                if holds {
                    apply_update(op, update);
                }
                holds
            })?;
            with_events(tx, modified, &events)
        })
        .await
    }

    async fn claim_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim: &str,
    ) -> Result<Option<Operation>> {
        let (id, claim) = (id.to_string(), claim.to_string());
        // Compare at the stored precision, as the MongoDB adapter does.
        let now = millis(now);
        self.tx(move |tx| {
            modify_operation(tx, &id, |op| {
                let claimable = match op.status {
                    OperationStatus::Pending => true,
                    // A running operation without a claim has no worker either.
                    OperationStatus::Running => op.claimed_until.is_none_or(|c| c < now),
                    _ => false,
                };
                if claimable {
                    op.status = OperationStatus::Running;
                    op.claimed_until = Some(millis(until));
                    op.claimed_by = Some(claim);
                }
                claimable
            })
        })
        .await
    }

    async fn cancel_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        events: &[Event],
    ) -> Result<Option<Operation>> {
        let (id, events) = (id.to_string(), events.to_vec());
        let now = millis(now);
        self.tx(move |tx| {
            let modified = modify_operation(tx, &id, |op| {
                // No KubeDB object exists for the current attempt: none was
                // named yet, or the one that was is final (failed).
                let cancellable = match op.status {
                    Pending | Running => op.ops_request_name.is_none(),
                    Failed => true,
                    _ => false,
                };
                if cancellable {
                    op.status = OperationStatus::Cancelled;
                    op.finished_at = Some(now);
                    op.claimed_until = None;
                }
                cancellable
            })?;
            with_events(tx, modified, &events)
        })
        .await
    }

    async fn add_to_counter(&self, name: &str, by: f64) -> Result<f64> {
        let name = name.to_string();
        self.tx(move |tx| {
            tx.query_row(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value
                 RETURNING value",
                params![name, by],
                |r| r.get::<_, f64>(0),
            )
            .map_err(store_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbaas_core::domain::{OnDelete, Size};
    use dbaas_core::engine::Engine;

    /// A record written before the lifecycle fields existed reads back with
    /// their defaults.
    #[tokio::test]
    async fn records_without_new_fields_read_with_defaults() {
        let store = SqliteStore::in_memory().expect("open");
        let mut db = Database::declared("tn-1", "old", Engine::Postgres, Size::Small, 1, 10, now());
        db.paused = true;
        db.current_restarts = 4;
        db.deletion_policy = OnDelete::Halt;
        store.insert_database(&db, &[]).await.expect("insert");
        let id = db.id.clone();
        store
            .tx(move |tx| {
                tx.execute(
                    "UPDATE databases SET doc = json_remove(doc, '$.paused', '$.current_paused',
                     '$.deletion_protection', '$.deletion_policy', '$.restarts',
                     '$.current_restarts') WHERE id = ?1",
                    [&id],
                )
                .map_err(store_err)?;
                Ok(())
            })
            .await
            .expect("strip fields");
        let got = store
            .get_database(&db.id)
            .await
            .expect("get")
            .expect("kept");
        let want = Database {
            paused: false,
            current_restarts: 0,
            deletion_policy: OnDelete::Wipeout,
            ..normalize_database(db)
        };
        assert_eq!(got, want);
    }
}
