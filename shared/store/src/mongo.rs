//! The MongoDB adapter (tested against FerretDB).
//!
//! Every write is one single-document operation whose filter carries the
//! precondition (`find_one_and_update` returning the document after the
//! update), and updates `$set` individual fields, so desired and observed
//! state never overwrite each other. Dates are stored as BSON dates so range
//! filters compare them correctly; that truncates them to milliseconds.
//!
//! Uniqueness lives in indexes: `databases.name_key` is `<tenant>/<name>`
//! while a database lives and becomes `<tenant>/<name>/deleted/<id>` once
//! its deletion is finalized, which frees the name. No partial indexes or
//! collations are used (FerretDB 1.x does not support them).
//!
//! FerretDB 1.x does not apply an update atomically: it reads the document,
//! applies the update in memory and writes the whole document back
//! (FerretDB issue 2168), so concurrent updates of one document lose writes
//! and conditional updates can all succeed. Inserts are atomic (unique
//! indexes hold), so there every update of an existing document first takes
//! a short write lock: a document in the `locks` collection whose `_id`
//! names the record. MongoDB's single-document updates are atomic, so there
//! an update is the one conditional write and nothing more: which one the
//! server is, is asked once (`buildInfo` names FerretDB), or set
//! ([`WriteLocks`]).
//!
//! The batch methods the pass uses send up to [`BATCH`] single-record
//! updates in one `update` command (portable to every MongoDB version,
//! unlike `bulkWrite`), after taking their locks in one unordered
//! `insertMany` under one token; records whose lock another writer holds
//! are written one by one afterwards, waiting as a single write does. The
//! command answers how many records matched, not which: when some did not,
//! the callers that need to know read those records.
//!
//! With no multi-document transactions, an event cannot be inserted into
//! `events` atomically with the write that causes it. Instead the write
//! pushes it into an outbox, the `pending_events` array of the very
//! document it updates (a database or an operation), in the same
//! single-document update, so the change and its event exist together or
//! not at all. Once a write leaves [`OUTBOX_FLUSH_AT`] events in a
//! record's outbox, the adapter moves them right after the write: it copies
//! them into `events` (by `_id`, so a copy repeated after a crash is a
//! duplicate key and nothing more) and only then removes them from the
//! outbox, under the record's lock. Moving per write would cost each write
//! five more round trips; a record never written again keeps its last few
//! events in its outbox, where readers find them. [`Store::flush_events`]
//! moves every outbox at once. [`Store::list_events`] reads the outboxes of the database
//! and of its operations before the `events` collection and merges them
//! (by id): an event is in one or the other at any moment, and a flush puts
//! it in `events` before taking it out of the outbox, so a reader never
//! misses one.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt, TryStreamExt};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, IndexModel};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{
    BeginOperation, DatabaseQuery, DesiredChange, EventQuery, ObservedUpdate, OperationQuery,
    OperationUpdate, Store, WriteLocks,
};
use dbaas_core::domain::{
    Action, ApiKeyRecord, Condition, Connection, Database, DatabaseStatus, DesiredState, Event,
    EventType, OnDelete, Operation, OperationStatus, OperationType, Size, Tenant, random_token,
};
use dbaas_core::engine::Engine;
use dbaas_core::error::{Error, Result};

/// How long an operation waits for a reachable server unless the URI says
/// otherwise (`serverSelectionTimeoutMS`): short, so a store outage fails
/// requests fast instead of piling them up.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a write lock holds: far longer than the one update it guards,
/// so only a holder that died loses it to the next writer.
const LOCK_LEASE: Duration = Duration::from_secs(10);
/// How long a write waits for a lock; longer than the lease, so a dead
/// holder's lock is always taken over before a writer gives up.
const LOCK_WAIT: Duration = Duration::from_secs(15);
const LOCK_MAX_BACKOFF: Duration = Duration::from_millis(50);
/// Records written by one command of a batch write (well under the
/// server's 16 MB command size for records of a few KB).
const BATCH: usize = 500;

/// A [`Store`] on a MongoDB database.
#[derive(Clone)]
pub struct MongoStore {
    tenants: Collection<TenantDoc>,
    api_keys: Collection<ApiKeyDoc>,
    databases: Collection<DatabaseDoc>,
    operations: Collection<OperationDoc>,
    events: Collection<EventDoc>,
    counters: Collection<Document>,
    locks: Collection<Document>,
    database: mongodb::Database,
    indexes: std::sync::Arc<OnceCell<()>>,
    write_locks: WriteLocks,
    /// Whether updates lock, once known.
    locking: std::sync::Arc<OnceCell<bool>>,
    abandoned: Abandoned,
}

impl MongoStore {
    /// A store on `database` at `uri`. Does not connect: the driver connects
    /// on first use, so a process starts even while the server is down.
    pub async fn new(uri: &str, database: &str) -> Result<Self> {
        Self::with_server_selection_timeout(uri, database, DEFAULT_SERVER_SELECTION_TIMEOUT).await
    }

    /// Like [`MongoStore::new`], with the time an operation waits for a
    /// server (used when the URI does not set `serverSelectionTimeoutMS`).
    pub async fn with_server_selection_timeout(
        uri: &str,
        database: &str,
        timeout: Duration,
    ) -> Result<Self> {
        // Parsing only resolves DNS for `mongodb+srv` URIs; it never connects.
        let mut options = ClientOptions::parse(uri).await.map_err(store_err)?;
        options.server_selection_timeout.get_or_insert(timeout);
        options.connect_timeout.get_or_insert(timeout);
        let client = Client::with_options(options).map_err(store_err)?;
        let db = client.database(database);
        Ok(MongoStore {
            tenants: db.collection("tenants"),
            api_keys: db.collection("api_keys"),
            databases: db.collection("databases"),
            operations: db.collection("operations"),
            events: db.collection("events"),
            counters: db.collection("counters"),
            locks: db.collection("locks"),
            database: db,
            indexes: Default::default(),
            write_locks: WriteLocks::Auto,
            locking: Default::default(),
            abandoned: Abandoned::default(),
        })
    }

    /// This store with its updates locked as `mode` says.
    pub fn with_write_locks(mut self, mode: WriteLocks) -> Self {
        self.write_locks = mode;
        self.locking = Default::default();
        self
    }

    /// Whether updates take a write lock: asks the server on first use
    /// when the mode is [`WriteLocks::Auto`].
    pub async fn uses_write_locks(&self) -> Result<bool> {
        match self.write_locks {
            WriteLocks::Always => Ok(true),
            WriteLocks::Never => Ok(false),
            WriteLocks::Auto => self
                .locking
                .get_or_try_init(|| async {
                    let info = self
                        .database
                        .run_command(doc! {"buildInfo": 1})
                        .await
                        .map_err(store_err)?;
                    let ferretdb = info.contains_key("ferretdbVersion");
                    tracing::info!(
                        ferretdb,
                        "store server identified; updates lock records: {ferretdb}"
                    );
                    Ok(ferretdb)
                })
                .await
                .copied(),
        }
    }

    /// Creates the indexes (idempotent). Inserts that rely on a unique index
    /// call this first, once per process.
    pub async fn ensure_indexes(&self) -> Result<()> {
        self.indexes
            .get_or_try_init(|| self.create_indexes())
            .await
            .map(|_| ())
    }

    async fn create_indexes(&self) -> Result<()> {
        const INDEXES: [IndexSpec; 10] = [
            ("tenants", "name_unique", &[("name", 1)], true),
            ("api_keys", "tenant", &[("tenant_id", 1)], false),
            ("databases", "name_key_unique", &[("name_key", 1)], true),
            (
                "databases",
                "tenant_id",
                &[("tenant_id", 1), ("_id", 1)],
                false,
            ),
            ("databases", "status", &[("status", 1)], false),
            (
                "operations",
                "database_created",
                &[("database_id", 1), ("created_at", -1)],
                false,
            ),
            (
                "operations",
                "tenant_created",
                &[("tenant_id", 1), ("created_at", -1)],
                false,
            ),
            (
                "operations",
                "created",
                &[("created_at", -1), ("_id", -1)],
                false,
            ),
            ("operations", "status", &[("status", 1)], false),
            (
                "events",
                "database_at",
                &[("database_id", 1), ("at", -1), ("_id", -1)],
                false,
            ),
        ];
        for (collection, name, keys, unique) in INDEXES {
            let keys: Document = keys
                .iter()
                .map(|(k, dir)| (k.to_string(), Bson::Int32(*dir)))
                .collect();
            let options = IndexOptions::builder()
                .name(name.to_string())
                .unique(unique)
                .build();
            // One index per command: FerretDB 1.24 drops the connection when
            // a createIndexes naming several indexes finds them all existing.
            self.database
                .collection::<Document>(collection)
                .create_index(IndexModel::builder().keys(keys).options(options).build())
                .await
                .map_err(store_err)?;
        }
        Ok(())
    }

    /// The underlying database handle (for administration and tests).
    pub fn database(&self) -> &mongodb::Database {
        &self.database
    }
}

/// Collection, index name, keys with their directions, and uniqueness.
type IndexSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, i32)],
    bool,
);

/// A date as stored: milliseconds, the precision of a BSON date.
fn bdate(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn cdate(t: bson::DateTime) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.timestamp_millis())
        .ok_or_else(|| Error::Store(format!("date out of range: {t}").into()))
}

fn int(v: u64) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| Error::Store(format!("{v} does not fit a 64-bit signed integer").into()))
}

fn uint<T: TryFrom<i64>>(v: i64, field: &str) -> Result<T> {
    T::try_from(v).map_err(|_| Error::Store(format!("stored {field} out of range: {v}").into()))
}

fn bson_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(Box::new(e))
}

/// The driver's error as the store's: a duplicate key is a conflict.
fn store_err(e: mongodb::error::Error) -> Error {
    if is_duplicate_key(&e) {
        return Error::Conflict(e.to_string());
    }
    Error::Store(Box::new(e))
}

/// FerretDB on PostgreSQL fails a query comparing a string that holds NUL
/// (jsonb has no U+0000); no stored id holds one, so a lookup by such an id
/// (from a URL) finds nothing without asking.
fn holds_nul(id: &str) -> bool {
    id.contains('\0')
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

/// An unordered `insert_many` that failed only on documents already there
/// (copied before): every other document went in.
fn only_duplicate_keys(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::InsertMany(i) => {
            i.write_concern_error.is_none()
                && i.write_errors
                    .as_ref()
                    .is_some_and(|ws| ws.iter().all(|w| w.code == 11000))
        }
        _ => is_duplicate_key(e),
    }
}

/// The positions of the documents an unordered `insert_many` found there
/// already, when that is all that went wrong (every other one went in).
fn duplicate_key_indexes(e: &mongodb::error::Error) -> Option<Vec<usize>> {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::InsertMany(i) if only_duplicate_keys(e) => {
            Some(i.write_errors.iter().flatten().map(|w| w.index).collect())
        }
        _ => None,
    }
}

/// How many records an `update` command's statements matched; an error
/// if any statement failed.
fn update_reply_count(reply: &Document) -> Result<usize> {
    if let Ok(errors) = reply.get_array("writeErrors")
        && !errors.is_empty()
    {
        return Err(Error::Store(
            format!("{} of a batch's updates failed: {errors:?}", errors.len()).into(),
        ));
    }
    match reply.get("n") {
        Some(Bson::Int32(n)) => Ok(usize::try_from(*n).unwrap_or(0)),
        Some(Bson::Int64(n)) => Ok(usize::try_from(*n).unwrap_or(0)),
        Some(Bson::Double(n)) => Ok(*n as usize),
        _ => Err(Error::Store(
            format!("an update command answered without a count: {reply}").into(),
        )),
    }
}

fn name_key(tenant_id: &str, name: &str) -> String {
    format!("{tenant_id}/{name}")
}

fn deleted_name_key(tenant_id: &str, name: &str, id: &str) -> String {
    format!("{tenant_id}/{name}/deleted/{id}")
}

fn opt_date(t: Option<DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, |t| Bson::DateTime(bdate(t)))
}

fn opt_str(s: Option<String>) -> Bson {
    s.map_or(Bson::Null, Bson::String)
}

#[derive(Serialize, Deserialize)]
struct TenantDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    created_at: bson::DateTime,
}

#[derive(Serialize, Deserialize)]
struct ApiKeyDoc {
    #[serde(rename = "_id")]
    key_hash: String,
    prefix: String,
    tenant_id: String,
    created_at: bson::DateTime,
}

#[derive(Serialize, Deserialize)]
struct ConditionDoc {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: String,
    message: String,
    last_transition_time: bson::DateTime,
}

impl From<&Condition> for ConditionDoc {
    fn from(c: &Condition) -> Self {
        ConditionDoc {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: bdate(c.last_transition_time),
        }
    }
}

impl TryFrom<ConditionDoc> for Condition {
    type Error = Error;
    fn try_from(c: ConditionDoc) -> Result<Self> {
        Ok(Condition {
            type_: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_transition_time: cdate(c.last_transition_time)?,
        })
    }
}

/// The outbox field of databases and operations: events written with the
/// document's updates, not yet moved to the `events` collection.
const OUTBOX: &str = "pending_events";

/// How many events a record's outbox holds before a write moves them to
/// the `events` collection: each move costs about five round trips, so
/// moving every eighth write's worth keeps writes cheap and outboxes small.
const OUTBOX_FLUSH_AT: usize = 8;

/// Leaves the outbox out of a read of whole records: only writes and
/// history reads need it.
fn without_outbox() -> Document {
    doc! {OUTBOX: 0}
}

/// An event as stored, in the `events` collection and in outboxes alike.
#[derive(Clone, Serialize, Deserialize)]
struct EventDoc {
    #[serde(rename = "_id")]
    id: String,
    database_id: String,
    tenant_id: String,
    #[serde(rename = "type")]
    type_: EventType,
    api_key: Option<String>,
    #[serde(default)]
    operation_id: Option<String>,
    message: String,
    at: bson::DateTime,
}

/// A database or operation read for its outbox only.
#[derive(Deserialize)]
struct OutboxDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    pending_events: Vec<EventDoc>,
}

/// Matches documents whose outbox holds an event.
fn has_outbox() -> Document {
    doc! {format!("{OUTBOX}.0"): {"$exists": true}}
}

/// `update` that also pushes `events` into the written document's outbox.
fn with_events(mut update: Document, events: &[Event]) -> Result<Document> {
    if !events.is_empty() {
        let docs: Vec<EventDoc> = events.iter().map(EventDoc::from_domain).collect();
        let each = bson::to_bson(&docs).map_err(bson_err)?;
        update.insert("$push", doc! {OUTBOX: {"$each": each}});
    }
    Ok(update)
}

impl EventDoc {
    fn from_domain(e: &Event) -> Self {
        EventDoc {
            id: e.id.clone(),
            database_id: e.database_id.clone(),
            tenant_id: e.tenant_id.clone(),
            type_: e.type_,
            api_key: e.api_key.clone(),
            operation_id: e.operation_id.clone(),
            message: e.message.clone(),
            at: bdate(e.at),
        }
    }

    fn into_domain(self) -> Result<Event> {
        Ok(Event {
            id: self.id,
            database_id: self.database_id,
            tenant_id: self.tenant_id,
            type_: self.type_,
            api_key: self.api_key,
            operation_id: self.operation_id,
            message: self.message,
            at: cdate(self.at)?,
        })
    }
}

/// A database as stored; integers are i64 because BSON has no unsigned
/// types. Fields added later default when a document lacks them. The
/// outbox (`pending_events`) is read back from writes only (to know when to
/// move it), never by reads of records.
#[derive(Serialize, Deserialize)]
struct DatabaseDoc {
    #[serde(rename = "_id")]
    id: String,
    name_key: String,
    tenant_id: String,
    name: String,
    engine: Engine,
    version: String,
    #[serde(default)]
    current_version: Option<String>,
    size: Size,
    replicas: i64,
    storage_gb: i64,
    current_size: Option<Size>,
    current_replicas: Option<i64>,
    current_storage_gb: Option<i64>,
    #[serde(default)]
    auth_rotation: i64,
    #[serde(default)]
    current_auth_rotation: i64,
    #[serde(default)]
    connection: Option<Connection>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    current_paused: bool,
    #[serde(default)]
    current_deletion_policy: Option<OnDelete>,
    #[serde(default)]
    deletion_protection: bool,
    #[serde(default)]
    deletion_policy: OnDelete,
    #[serde(default)]
    restarts: i64,
    #[serde(default)]
    current_restarts: i64,
    deletion_requested: bool,
    generation: i64,
    observed_generation: i64,
    status: DatabaseStatus,
    conditions: Vec<ConditionDoc>,
    active_operation_id: Option<String>,
    operation_seq: i64,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_events: Vec<EventDoc>,
}

impl DatabaseDoc {
    fn from_domain(d: &Database) -> Result<Self> {
        let name_key = if d.status == DatabaseStatus::Deleted {
            deleted_name_key(&d.tenant_id, &d.name, &d.id)
        } else {
            name_key(&d.tenant_id, &d.name)
        };
        Ok(DatabaseDoc {
            id: d.id.clone(),
            name_key,
            tenant_id: d.tenant_id.clone(),
            name: d.name.clone(),
            engine: d.engine,
            version: d.version.clone(),
            current_version: d.current_version.clone(),
            size: d.size,
            replicas: d.replicas.into(),
            storage_gb: d.storage_gb.into(),
            current_size: d.current_size,
            current_replicas: d.current_replicas.map(Into::into),
            current_storage_gb: d.current_storage_gb.map(Into::into),
            auth_rotation: int(d.auth_rotation)?,
            current_auth_rotation: int(d.current_auth_rotation)?,
            connection: d.connection.clone(),
            paused: d.paused,
            current_paused: d.current_paused,
            current_deletion_policy: d.current_deletion_policy,
            deletion_protection: d.deletion_protection,
            deletion_policy: d.deletion_policy,
            restarts: int(d.restarts)?,
            current_restarts: int(d.current_restarts)?,
            deletion_requested: d.deletion_requested,
            generation: int(d.generation)?,
            observed_generation: int(d.observed_generation)?,
            status: d.status,
            conditions: d.conditions.iter().map(ConditionDoc::from).collect(),
            active_operation_id: d.active_operation_id.clone(),
            operation_seq: int(d.operation_seq)?,
            created_at: bdate(d.created_at),
            updated_at: bdate(d.updated_at),
            pending_events: Vec::new(),
        })
    }

    fn into_domain(self) -> Result<Database> {
        Ok(Database {
            id: self.id,
            tenant_id: self.tenant_id,
            name: self.name,
            engine: self.engine,
            version: self.version,
            current_version: self.current_version,
            size: self.size,
            replicas: uint(self.replicas, "replicas")?,
            storage_gb: uint(self.storage_gb, "storage_gb")?,
            current_size: self.current_size,
            current_replicas: self
                .current_replicas
                .map(|v| uint(v, "current_replicas"))
                .transpose()?,
            current_storage_gb: self
                .current_storage_gb
                .map(|v| uint(v, "current_storage_gb"))
                .transpose()?,
            auth_rotation: uint(self.auth_rotation, "auth_rotation")?,
            current_auth_rotation: uint(self.current_auth_rotation, "current_auth_rotation")?,
            connection: self.connection,
            paused: self.paused,
            current_paused: self.current_paused,
            current_deletion_policy: self.current_deletion_policy,
            deletion_protection: self.deletion_protection,
            deletion_policy: self.deletion_policy,
            restarts: uint(self.restarts, "restarts")?,
            current_restarts: uint(self.current_restarts, "current_restarts")?,
            deletion_requested: self.deletion_requested,
            generation: uint(self.generation, "generation")?,
            observed_generation: uint(self.observed_generation, "observed_generation")?,
            status: self.status,
            conditions: self
                .conditions
                .into_iter()
                .map(Condition::try_from)
                .collect::<Result<_>>()?,
            active_operation_id: self.active_operation_id,
            operation_seq: uint(self.operation_seq, "operation_seq")?,
            created_at: cdate(self.created_at)?,
            updated_at: cdate(self.updated_at)?,
        })
    }
}

/// An operation as stored; its outbox as in [`DatabaseDoc`].
#[derive(Serialize, Deserialize)]
struct OperationDoc {
    #[serde(rename = "_id")]
    id: String,
    database_id: String,
    tenant_id: String,
    #[serde(rename = "type")]
    type_: OperationType,
    desired_state: DesiredState,
    target_generation: i64,
    status: OperationStatus,
    attempts: i64,
    error: Option<String>,
    ops_request_name: Option<String>,
    ops_request_phase: Option<String>,
    claimed_until: Option<bson::DateTime>,
    #[serde(default)]
    claimed_by: Option<String>,
    next_attempt_at: Option<bson::DateTime>,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
    finished_at: Option<bson::DateTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_events: Vec<EventDoc>,
}

impl OperationDoc {
    fn from_domain(o: &Operation) -> Result<Self> {
        Ok(OperationDoc {
            id: o.id.clone(),
            database_id: o.database_id.clone(),
            tenant_id: o.tenant_id.clone(),
            type_: o.type_(),
            desired_state: o.action.desired_state(),
            target_generation: int(o.target_generation)?,
            status: o.status,
            attempts: o.attempts.into(),
            error: o.error.clone(),
            ops_request_name: o.ops_request_name.clone(),
            ops_request_phase: o.ops_request_phase.clone(),
            claimed_until: o.claimed_until.map(bdate),
            claimed_by: o.claimed_by.clone(),
            next_attempt_at: o.next_attempt_at.map(bdate),
            created_at: bdate(o.created_at),
            updated_at: bdate(o.updated_at),
            finished_at: o.finished_at.map(bdate),
            pending_events: Vec::new(),
        })
    }

    fn into_domain(self) -> Result<Operation> {
        let action = Action::from_wire(self.type_, &self.desired_state).ok_or_else(|| {
            Error::Store(
                format!(
                    "stored operation {} of type {} lacks its target",
                    self.id,
                    self.type_.as_str()
                )
                .into(),
            )
        })?;
        Ok(Operation {
            id: self.id,
            database_id: self.database_id,
            tenant_id: self.tenant_id,
            action,
            target_generation: uint(self.target_generation, "target_generation")?,
            status: self.status,
            attempts: uint(self.attempts, "attempts")?,
            error: self.error,
            ops_request_name: self.ops_request_name,
            ops_request_phase: self.ops_request_phase,
            claimed_until: self.claimed_until.map(cdate).transpose()?,
            claimed_by: self.claimed_by,
            next_attempt_at: self.next_attempt_at.map(cdate).transpose()?,
            created_at: cdate(self.created_at)?,
            updated_at: cdate(self.updated_at)?,
            finished_at: self.finished_at.map(cdate).transpose()?,
        })
    }
}

/// The update of an operation: `$set` of the fields it sets, and its
/// events pushed into the operation's outbox.
fn operation_update(update: &OperationUpdate) -> Result<Document> {
    with_events(doc! {"$set": operation_set(update)}, &update.events)
}

/// The `$set` of an operation update: only the fields it sets.
fn operation_set(update: &OperationUpdate) -> Document {
    let mut set = Document::new();
    if let Some(s) = update.status {
        set.insert("status", s.as_str());
    }
    if let Some(a) = update.attempts {
        set.insert("attempts", i64::from(a));
    }
    if let Some(e) = &update.error {
        set.insert("error", opt_str(e.clone()));
    }
    if let Some(n) = &update.ops_request_name {
        set.insert("ops_request_name", opt_str(n.clone()));
    }
    if let Some(p) = &update.ops_request_phase {
        set.insert("ops_request_phase", opt_str(p.clone()));
    }
    if let Some(t) = update.claimed_until {
        set.insert("claimed_until", opt_date(t));
    }
    if let Some(t) = update.next_attempt_at {
        set.insert("next_attempt_at", opt_date(t));
    }
    if let Some(t) = update.finished_at {
        set.insert("finished_at", opt_date(t));
    }
    set
}

/// A held write lock on one record. Released explicitly after the write;
/// a write whose future is dropped releases it in the background.
struct WriteLock {
    locks: Collection<Document>,
    /// What it locks, for logs.
    key: String,
    /// Matches the lock documents it holds (their token, and the one
    /// `_id` for a single record).
    filter: Document,
    token: String,
    held: bool,
    abandoned: Abandoned,
}

/// Tokens of this process's locks whose writers gave up. A lock insert cut
/// off on the wire may reach the server after the guard's removal did, so
/// the removal alone cannot be trusted; a writer of this process that finds
/// such a lock takes it over at once instead of waiting out its lease.
#[derive(Clone, Default)]
struct Abandoned(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl Abandoned {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long a given-up lock's token is remembered: past it, a late insert
/// would have landed long ago and been removed by the second removal.
const ABANDONED_FOR: Duration = Duration::from_secs(2);

impl WriteLock {
    async fn release(mut self) {
        let released = self.locks.delete_many(self.filter.clone()).await;
        // Only now: a caller that gives up during the delete drops the
        // guard still held, and the drop removes the lock instead.
        self.held = false;
        if let Err(e) = released {
            tracing::warn!(key = %self.key, error = %e, "write lock not released; it expires by itself");
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if self.held
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            self.abandoned.set().insert(self.token.clone());
            let (locks, filter) = (self.locks.clone(), self.filter.clone());
            let (abandoned, token) = (self.abandoned.clone(), self.token.clone());
            runtime.spawn(async move {
                // Removed now, and again once a late insert would have landed.
                let _ = locks.delete_many(filter.clone()).await;
                tokio::time::sleep(ABANDONED_FOR).await;
                let _ = locks.delete_many(filter).await;
                abandoned.set().remove(&token);
            });
        }
    }
}

impl MongoStore {
    /// Takes the write lock on record `id` of `collection`, waiting (with
    /// backoff) while another writer holds it.
    async fn lock(&self, collection: &str, id: &str) -> Result<WriteLock> {
        let key = format!("{collection}/{id}");
        let token = random_token(16);
        let deadline = Instant::now() + LOCK_WAIT;
        let mut backoff = Duration::from_millis(1);
        loop {
            let now = Utc::now();
            let lock = doc! {"_id": &key, "token": &token, "expires_at": bdate(now + LOCK_LEASE)};
            // The guard exists before the insert is sent: a caller that
            // gives up while it is on the wire (the server may have applied
            // it) drops the guard, which removes the lock if it landed. Its
            // token makes that removal harmless if it did not.
            let mut guard = WriteLock {
                locks: self.locks.clone(),
                key: key.clone(),
                filter: doc! {"_id": &key, "token": &token},
                token: token.clone(),
                held: true,
                abandoned: self.abandoned.clone(),
            };
            match self.locks.insert_one(lock).await.map_err(store_err) {
                Ok(_) => return Ok(guard),
                Err(Error::Conflict(_)) => guard.held = false,
                Err(e) => return Err(e),
            }
            let holder = self
                .locks
                .find_one(doc! {"_id": &key})
                .await
                .map_err(store_err)?;
            if let Some(holder) = holder
                && (holder
                    .get_datetime("expires_at")
                    .is_ok_and(|t| *t < bdate(now))
                    || holder
                        .get_str("token")
                        .is_ok_and(|t| self.abandoned.set().contains(t)))
            {
                // Its holder died or gave up. The token in the filter keeps
                // us from deleting a lock another writer has just taken over.
                let stale = holder.get_str("token").unwrap_or_default();
                self.locks
                    .delete_one(doc! {"_id": &key, "token": stale})
                    .await
                    .map_err(store_err)?;
                continue;
            }
            if Instant::now() >= deadline {
                return Err(Error::Store(
                    format!("timed out waiting for the write lock on {key}").into(),
                ));
            }
            // Jitter keeps waiting writers from retrying in lockstep.
            let pause = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(LOCK_MAX_BACKOFF);
        }
    }

    /// Runs `write` (a lazy future) while holding the lock on the record,
    /// where the server needs one.
    async fn locked<T>(
        &self,
        collection: &str,
        id: &str,
        write: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if !self.uses_write_locks().await? {
            return write.await;
        }
        let lock = self.lock(collection, id).await?;
        let out = write.await;
        lock.release().await;
        out
    }

    /// Takes the write locks on records `ids` of `collection` in one
    /// insert, under one token. Returns the guard and which of them it
    /// holds: another writer holds the rest, which the caller then writes
    /// one by one (waiting, as [`MongoStore::lock`] does).
    async fn lock_batch(&self, collection: &str, ids: &[&str]) -> Result<(WriteLock, Vec<bool>)> {
        let token = random_token(16);
        let expires_at = bdate(Utc::now() + LOCK_LEASE);
        let locks: Vec<Document> = ids
            .iter()
            .map(|id| doc! {"_id": format!("{collection}/{id}"), "token": &token, "expires_at": expires_at})
            .collect();
        // As in `lock`: the guard exists before the insert is sent.
        let guard = WriteLock {
            locks: self.locks.clone(),
            key: format!("{collection}/({} records)", ids.len()),
            filter: doc! {"token": &token},
            token,
            held: true,
            abandoned: self.abandoned.clone(),
        };
        let mut held = vec![true; ids.len()];
        if let Err(e) = self.locks.insert_many(locks).ordered(false).await {
            let taken = duplicate_key_indexes(&e).ok_or_else(|| store_err(e))?;
            for i in taken {
                held[i] = false;
            }
        }
        Ok((guard, held))
    }

    /// Applies conditional updates to many databases (`(id, filter,
    /// update)`, stamping `updated_at`), [`BATCH`] to an `update` command,
    /// under their write locks where the server needs them. Element `i`
    /// tells whether record `i` matched its filter: known for each record
    /// written on its own, and for a command all of whose records matched;
    /// `None` when some record of its command did not (the command tells
    /// how many, not which).
    async fn update_databases(
        &self,
        statements: &[(&str, Document, Document)],
    ) -> Result<Vec<Option<bool>>> {
        let locking = self.uses_write_locks().await?;
        let mut matched = vec![None; statements.len()];
        for (c, chunk) in statements.chunks(BATCH).enumerate() {
            let ids: Vec<&str> = chunk.iter().map(|s| s.0).collect();
            let (lock, held) = if locking {
                let (lock, held) = self.lock_batch("databases", &ids).await?;
                (Some(lock), held)
            } else {
                (None, vec![true; chunk.len()])
            };
            let batched: Vec<usize> = (0..chunk.len()).filter(|&i| held[i]).collect();
            let updates = batched
                .iter()
                // `multi`: the filter names one `_id`, so it changes nothing
                // on MongoDB; FerretDB 1.24 holds a pooled PostgreSQL
                // connection per single-document statement until the whole
                // command ends, and hangs for good past its pool's 50.
                .map(|&i| {
                    Ok(doc! {"q": chunk[i].1.clone(), "u": stamped(chunk[i].2.clone())?, "multi": true})
                })
                .collect::<Result<Vec<_>>>()?;
            let reply = if updates.is_empty() {
                None
            } else {
                let command =
                    doc! {"update": self.databases.name(), "updates": updates, "ordered": false};
                Some(self.database.run_command(command).await.map_err(store_err))
            };
            if let Some(lock) = lock {
                lock.release().await;
            }
            if let Some(reply) = reply {
                let all = update_reply_count(&reply?)? == batched.len();
                for &i in &batched {
                    matched[c * BATCH + i] = all.then_some(true);
                }
            }
            for i in (0..chunk.len()).filter(|&i| !held[i]) {
                let (id, filter, update) = &chunk[i];
                let written = self
                    .modify_database(id, filter.clone(), update.clone())
                    .await?;
                matched[c * BATCH + i] = Some(written.is_some());
            }
        }
        Ok(matched)
    }

    /// Under the database's write lock, applies `update` (stamping
    /// `updated_at`) if the database matches `filter`; returns it after.
    async fn modify_database(
        &self,
        id: &str,
        filter: Document,
        update: Document,
    ) -> Result<Option<Database>> {
        let written = self
            .locked("databases", id, async {
                self.databases
                    .find_one_and_update(filter, stamped(update)?)
                    .return_document(ReturnDocument::After)
                    .await
                    .map_err(store_err)
            })
            .await?;
        let Some(mut d) = written else {
            return Ok(None);
        };
        let outbox = std::mem::take(&mut d.pending_events);
        self.flush_if_full("databases", d.id.clone(), outbox).await;
        d.into_domain().map(Some)
    }

    /// The database's active operation, read alone.
    async fn active_operation_of(&self, id: &str) -> Result<Option<String>> {
        let found = self
            .databases
            .clone_with_type::<Document>()
            .find_one(doc! {"_id": id})
            .projection(doc! {"active_operation_id": 1})
            .await
            .map_err(store_err)?;
        Ok(found.and_then(|d| d.get_str("active_operation_id").ok().map(str::to_string)))
    }

    /// Inserts an event into the `events` collection; one with its id being
    /// there already (inserted or moved before) is not an error.
    async fn insert_event_doc(&self, event: EventDoc) -> Result<()> {
        match self.events.insert_one(event).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// The unflushed events of database `database_id`: in its own outbox and
    /// in those of its operations.
    async fn outbox_events(&self, database_id: &str) -> Result<Vec<EventDoc>> {
        let projection = doc! {OUTBOX: 1};
        let mut events = Vec::new();
        let mut filter = has_outbox();
        filter.insert("_id", database_id);
        let db = self
            .databases
            .clone_with_type::<OutboxDoc>()
            .find_one(filter)
            .projection(projection.clone())
            .await
            .map_err(store_err)?;
        events.extend(db.into_iter().flat_map(|d| d.pending_events));
        let mut filter = has_outbox();
        filter.insert("database_id", database_id);
        let ops: Vec<OutboxDoc> = self
            .operations
            .clone_with_type::<OutboxDoc>()
            .find(filter)
            .projection(projection)
            .await
            .map_err(store_err)?
            .try_collect()
            .await
            .map_err(store_err)?;
        events.extend(ops.into_iter().flat_map(|o| o.pending_events));
        Ok(events)
    }

    /// Moves the outbox events of every document of `collection` into the
    /// `events` collection; returns how many left the outboxes.
    async fn flush_outboxes(&self, collection: &str) -> Result<usize> {
        let docs: Vec<OutboxDoc> = self
            .database
            .collection::<OutboxDoc>(collection)
            .find(has_outbox())
            .projection(doc! {OUTBOX: 1})
            .await
            .map_err(store_err)?
            .try_collect()
            .await
            .map_err(store_err)?;
        let mut moved = 0;
        for d in docs {
            moved += self.flush_outbox(collection, d).await?;
        }
        Ok(moved)
    }

    /// Moves one document's outbox, as read in `d`, to `events`.
    async fn flush_outbox(&self, collection: &str, d: OutboxDoc) -> Result<usize> {
        let outboxes = self.database.collection::<OutboxDoc>(collection);
        // Copy first (idempotent by `_id`), so an event is always in the
        // outbox, in `events`, or in both: never in neither.
        if d.pending_events.is_empty() {
            return Ok(0);
        }
        let ids: std::collections::HashSet<String> =
            d.pending_events.iter().map(|e| e.id.clone()).collect();
        match self
            .events
            .insert_many(d.pending_events)
            .ordered(false)
            .await
        {
            Ok(_) => {}
            Err(e) if only_duplicate_keys(&e) => {}
            Err(e) => return Err(store_err(e)),
        }
        // Then take the copied events out, leaving any pushed since: on a
        // server with atomic updates one `$pull` by id does it.
        if !self.uses_write_locks().await? {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let before = outboxes
                .find_one_and_update(
                    doc! {"_id": &d.id},
                    doc! {"$pull": {OUTBOX: {"_id": {"$in": &ids}}}},
                )
                .projection(doc! {OUTBOX: 1})
                .return_document(ReturnDocument::Before)
                .await
                .map_err(store_err)?;
            return Ok(before.map_or(0, |b| {
                b.pending_events
                    .iter()
                    .filter(|e| ids.contains(&e.id.as_str()))
                    .count()
            }));
        }
        // FerretDB 1.x lacks `$pull` by condition; under the record's lock,
        // which every writer of the document takes, reading the outbox and
        // setting what is left is atomic.
        self.locked(collection, &d.id, async {
            let Some(current) = outboxes
                .find_one(doc! {"_id": &d.id})
                .projection(doc! {OUTBOX: 1})
                .await
                .map_err(store_err)?
            else {
                return Ok(0);
            };
            let before = current.pending_events.len();
            let left: Vec<EventDoc> = current
                .pending_events
                .into_iter()
                .filter(|e| !ids.contains(&e.id))
                .collect();
            let taken = before - left.len();
            if taken > 0 {
                let left = bson::to_bson(&left).map_err(bson_err)?;
                outboxes
                    .update_one(doc! {"_id": &d.id}, doc! {"$set": {OUTBOX: left}})
                    .await
                    .map_err(store_err)?;
            }
            Ok(taken)
        })
        .await
    }

    /// Like [`MongoStore::modify_database`], for an operation.
    async fn modify_operation(
        &self,
        id: &str,
        filter: Document,
        update: Document,
    ) -> Result<Option<Operation>> {
        let written = self
            .locked("operations", id, async {
                self.operations
                    .find_one_and_update(filter, stamped(update)?)
                    .return_document(ReturnDocument::After)
                    .await
                    .map_err(store_err)
            })
            .await?;
        let Some(mut o) = written else {
            return Ok(None);
        };
        let outbox = std::mem::take(&mut o.pending_events);
        self.flush_if_full("operations", o.id.clone(), outbox).await;
        o.into_domain().map(Some)
    }

    /// Moves the outbox of record `id`, as a write just left it, to the
    /// `events` collection once it holds [`OUTBOX_FLUSH_AT`] events. Awaited,
    /// not spawned: a short-lived role would exit with the move's lock
    /// still held, stalling the record's next writer until the lease ends.
    /// A failed move only delays it: readers see the events where they are.
    async fn flush_if_full(&self, collection: &str, id: String, outbox: Vec<EventDoc>) {
        if outbox.len() < OUTBOX_FLUSH_AT {
            return;
        }
        let d = OutboxDoc {
            id,
            pending_events: outbox,
        };
        if let Err(e) = self.flush_outbox(collection, d).await {
            tracing::warn!(error = %e, "history events not moved yet; they stay with the record");
        }
    }
}

/// The conditional update of [`Store::begin_operation`].
fn begin_statement(
    id: &str,
    operation_id: &str,
    expected_seq: u64,
) -> Result<(Document, Document)> {
    let filter = doc! {
        "_id": id,
        "active_operation_id": Bson::Null,
        "operation_seq": int(expected_seq)?,
    };
    let update = doc! {
        "$set": {"active_operation_id": operation_id},
        "$inc": {"operation_seq": 1_i64},
    };
    Ok((filter, update))
}

/// The update that sets `update`'s observed fields and pushes its events.
fn observed_update(update: &ObservedUpdate) -> Result<Document> {
    let mut set = Document::new();
    if let Some(s) = update.current_size {
        set.insert("current_size", s.as_str());
    }
    if let Some(r) = update.current_replicas {
        set.insert("current_replicas", i64::from(r));
    }
    if let Some(g) = update.current_storage_gb {
        set.insert("current_storage_gb", i64::from(g));
    }
    if let Some(v) = &update.current_version {
        set.insert("current_version", v.as_str());
    }
    if let Some(p) = update.current_deletion_policy {
        set.insert("current_deletion_policy", p.as_str());
    }
    if let Some(p) = update.current_paused {
        set.insert("current_paused", p);
    }
    if let Some(c) = &update.connection {
        set.insert("connection", bson::to_bson(c).map_err(bson_err)?);
    }
    if let Some(g) = update.observed_generation {
        set.insert("observed_generation", int(g)?);
    }
    if let Some(s) = update.status {
        set.insert("status", s.as_str());
    }
    if let Some(c) = &update.conditions {
        let docs: Vec<ConditionDoc> = c.iter().map(ConditionDoc::from).collect();
        set.insert("conditions", bson::to_bson(&docs).map_err(bson_err)?);
    }
    // Counts KubeDB carried out only grow: a late writer of an older
    // count changes nothing.
    let mut max = Document::new();
    if let Some(n) = update.current_auth_rotation {
        max.insert("current_auth_rotation", int(n)?);
    }
    if let Some(n) = update.current_restarts {
        max.insert("current_restarts", int(n)?);
    }
    let mut ops = doc! {"$set": set};
    if !max.is_empty() {
        ops.insert("$max", max);
    }
    with_events(ops, &update.events)
}

/// `update` that also sets `updated_at` to now: taken under the lock, so
/// the writes to one record carry increasing times.
fn stamped(mut update: Document) -> Result<Document> {
    let now = bdate(Utc::now());
    match update.get_document_mut("$set") {
        Ok(set) => {
            set.insert("updated_at", now);
        }
        Err(bson::document::ValueAccessError::NotPresent) => {
            update.insert("$set", doc! {"updated_at": now});
        }
        Err(e) => return Err(bson_err(e)),
    }
    Ok(update)
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.database
            .run_command(doc! {"ping": 1})
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.ensure_indexes().await?;
        self.tenants
            .insert_one(TenantDoc {
                id: tenant.id.clone(),
                name: tenant.name.clone(),
                created_at: bdate(tenant.created_at),
            })
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.tenants
            .find_one(doc! {"_id": id})
            .await
            .map_err(store_err)?
            .map(|t| {
                Ok(Tenant {
                    id: t.id,
                    name: t.name,
                    created_at: cdate(t.created_at)?,
                })
            })
            .transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.api_keys
            .insert_one(ApiKeyDoc {
                key_hash: key.key_hash.clone(),
                prefix: key.prefix.clone(),
                tenant_id: key.tenant_id.clone(),
                created_at: bdate(key.created_at),
            })
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.api_keys
            .find_one(doc! {"_id": key_hash})
            .await
            .map_err(store_err)?
            .map(|k| {
                Ok(ApiKeyRecord {
                    key_hash: k.key_hash,
                    prefix: k.prefix,
                    tenant_id: k.tenant_id,
                    created_at: cdate(k.created_at)?,
                })
            })
            .transpose()
    }

    async fn insert_database(&self, db: &Database, events: &[Event]) -> Result<()> {
        self.ensure_indexes().await?;
        let mut doc = DatabaseDoc::from_domain(db)?;
        // The events go in with the record, in the same insert.
        doc.pending_events = events.iter().map(EventDoc::from_domain).collect();
        self.databases.insert_one(doc).await.map_err(store_err)?;
        Ok(())
    }

    async fn get_database(&self, id: &str) -> Result<Option<Database>> {
        if holds_nul(id) {
            return Ok(None);
        }
        self.databases
            .find_one(doc! {"_id": id})
            .projection(without_outbox())
            .await
            .map_err(store_err)?
            .map(DatabaseDoc::into_domain)
            .transpose()
    }

    async fn list_databases(&self, query: &DatabaseQuery) -> Result<Vec<Database>> {
        let mut filter = Document::new();
        if let Some(t) = &query.tenant_id {
            filter.insert("tenant_id", t.as_str());
        }
        if let Some(e) = query.engine {
            filter.insert("engine", e.as_str());
        }
        match (query.status, query.exclude_deleted) {
            (Some(DatabaseStatus::Deleted), true) => return Ok(Vec::new()),
            (Some(s), _) => {
                filter.insert("status", s.as_str());
            }
            (None, true) => {
                filter.insert("status", doc! {"$ne": DatabaseStatus::Deleted.as_str()});
            }
            (None, false) => {}
        }
        if let Some(after) = &query.after_id {
            filter.insert("_id", doc! {"$gt": after.as_str()});
        }
        let mut find = self
            .databases
            .find(filter)
            .projection(without_outbox())
            .sort(doc! {"_id": 1});
        if let Some(limit) = query.limit {
            find = find.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let docs: Vec<DatabaseDoc> = find
            .await
            .map_err(store_err)?
            .try_collect()
            .await
            .map_err(store_err)?;
        docs.into_iter().map(DatabaseDoc::into_domain).collect()
    }

    async fn update_desired(
        &self,
        id: &str,
        expected_generation: u64,
        change: &DesiredChange,
    ) -> Result<Option<Database>> {
        let mut set = Document::new();
        if let Some(s) = change.size {
            set.insert("size", s.as_str());
        }
        if let Some(r) = change.replicas {
            set.insert("replicas", i64::from(r));
        }
        if let Some(g) = change.storage_gb {
            set.insert("storage_gb", i64::from(g));
        }
        if let Some(v) = &change.version {
            set.insert("version", v.as_str());
        }
        if let Some(n) = change.auth_rotation {
            set.insert("auth_rotation", int(n)?);
        }
        if let Some(p) = change.paused {
            set.insert("paused", p);
        }
        if let Some(p) = change.deletion_protection {
            set.insert("deletion_protection", p);
        }
        if let Some(p) = change.deletion_policy {
            set.insert("deletion_policy", p.as_str());
        }
        if let Some(n) = change.restarts {
            set.insert("restarts", int(n)?);
        }
        if change.delete {
            set.insert("deletion_requested", true);
        }
        if let Some(s) = change.status {
            set.insert("status", s.as_str());
        }
        let filter = doc! {
            "_id": id,
            "generation": int(expected_generation)?,
            "deletion_requested": false,
        };
        let update = with_events(
            doc! {"$set": set, "$inc": {"generation": 1_i64}},
            &change.events,
        )?;
        self.modify_database(id, filter, update).await
    }

    async fn update_observed(&self, id: &str, update: &ObservedUpdate) -> Result<bool> {
        let ops = observed_update(update)?;
        let updated = self.modify_database(id, doc! {"_id": id}, ops).await?;
        Ok(updated.is_some())
    }

    async fn update_observed_many(&self, updates: &[(String, ObservedUpdate)]) -> Result<()> {
        let statements = updates
            .iter()
            .map(|(id, update)| Ok((id.as_str(), doc! {"_id": id}, observed_update(update)?)))
            .collect::<Result<Vec<_>>>()?;
        self.update_databases(&statements).await?;
        Ok(())
    }

    async fn begin_operation(
        &self,
        id: &str,
        operation_id: &str,
        expected_seq: u64,
    ) -> Result<bool> {
        let (filter, update) = begin_statement(id, operation_id, expected_seq)?;
        Ok(self.modify_database(id, filter, update).await?.is_some())
    }

    async fn begin_operations(&self, begins: &[BeginOperation]) -> Result<Vec<bool>> {
        let statements = begins
            .iter()
            .map(|b| {
                let (filter, update) =
                    begin_statement(&b.database_id, &b.operation_id, b.expected_seq)?;
                Ok((b.database_id.as_str(), filter, update))
            })
            .collect::<Result<Vec<_>>>()?;
        let matched = self.update_databases(&statements).await?;
        // Some record of a command did not match: read which, a few at once.
        // Boxed: async-trait needs the futures' type nameable for any lifetime.
        let reads: Vec<futures::future::BoxFuture<'_, Result<bool>>> = begins
            .iter()
            .zip(matched)
            .map(|(b, matched)| {
                async move {
                    Ok(match matched {
                        Some(matched) => matched,
                        None => {
                            self.active_operation_of(&b.database_id).await?.as_deref()
                                == Some(b.operation_id.as_str())
                        }
                    })
                }
                .boxed()
            })
            .collect();
        futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await
    }

    async fn end_operation(&self, id: &str, operation_id: &str) -> Result<bool> {
        let filter = doc! {"_id": id, "active_operation_id": operation_id};
        let update = doc! {"$set": {"active_operation_id": Bson::Null}};
        Ok(self.modify_database(id, filter, update).await?.is_some())
    }

    async fn finalize_deletion(&self, id: &str, events: &[Event]) -> Result<bool> {
        // Tenant and name never change, so reading them first cannot race.
        let Some(db) = self
            .databases
            .find_one(doc! {"_id": id})
            .projection(without_outbox())
            .await
            .map_err(store_err)?
        else {
            return Ok(false);
        };
        let deleted = DatabaseStatus::Deleted.as_str();
        if db.status == DatabaseStatus::Deleted {
            // Finalized before: nothing to do, no second event.
            return Ok(true);
        }
        let update = with_events(
            doc! {"$set": {
                "status": deleted,
                "name_key": deleted_name_key(&db.tenant_id, &db.name, &db.id),
            }},
            events,
        )?;
        // Only the first finalization writes (and pushes the events); one
        // that lost a race finds it finalized, which is what it wanted.
        let filter = doc! {"_id": id, "status": {"$ne": deleted}};
        self.modify_database(id, filter, update).await?;
        Ok(true)
    }

    async fn insert_operation(&self, op: &Operation, events: &[Event]) -> Result<bool> {
        let mut doc = OperationDoc::from_domain(op)?;
        // The events go in with the operation: written only if it is new.
        doc.pending_events = events.iter().map(EventDoc::from_domain).collect();
        match self.operations.insert_one(doc).await {
            Ok(_) => Ok(true),
            Err(e) => match store_err(e) {
                // The only unique key is `_id`: the operation already exists.
                Error::Conflict(_) => Ok(false),
                e => Err(e),
            },
        }
    }

    async fn insert_operations(&self, ops: &[(Operation, Vec<Event>)]) -> Result<Vec<bool>> {
        let mut inserted = vec![true; ops.len()];
        for (c, chunk) in ops.chunks(BATCH).enumerate() {
            let docs = chunk
                .iter()
                .map(|(op, events)| {
                    let mut doc = OperationDoc::from_domain(op)?;
                    doc.pending_events = events.iter().map(EventDoc::from_domain).collect();
                    Ok(doc)
                })
                .collect::<Result<Vec<_>>>()?;
            if let Err(e) = self.operations.insert_many(docs).ordered(false).await {
                // The only unique key is `_id`: those operations exist.
                for i in duplicate_key_indexes(&e).ok_or_else(|| store_err(e))? {
                    inserted[c * BATCH + i] = false;
                }
            }
        }
        Ok(inserted)
    }

    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        if holds_nul(id) {
            return Ok(None);
        }
        self.operations
            .find_one(doc! {"_id": id})
            .projection(without_outbox())
            .await
            .map_err(store_err)?
            .map(OperationDoc::into_domain)
            .transpose()
    }

    async fn list_operations(&self, query: &OperationQuery) -> Result<Vec<Operation>> {
        let mut filter = Document::new();
        if let Some(t) = &query.tenant_id {
            filter.insert("tenant_id", t.as_str());
        }
        if let Some(d) = &query.database_id {
            filter.insert("database_id", d.as_str());
        }
        if !query.statuses.is_empty() {
            let s: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
            filter.insert("status", doc! {"$in": s});
        }
        if let Some((at, id)) = &query.before {
            let at = bdate(*at);
            filter.insert(
                "$or",
                vec![
                    doc! {"created_at": {"$lt": at}},
                    doc! {"created_at": at, "_id": {"$lt": id.as_str()}},
                ],
            );
        }
        let mut find = self
            .operations
            .find(filter)
            .projection(without_outbox())
            .sort(doc! {"created_at": -1, "_id": -1});
        if let Some(limit) = query.limit {
            find = find.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let docs: Vec<OperationDoc> = find
            .await
            .map_err(store_err)?
            .try_collect()
            .await
            .map_err(store_err)?;
        docs.into_iter().map(OperationDoc::into_domain).collect()
    }

    async fn insert_event(&self, event: &Event) -> Result<()> {
        self.insert_event_doc(EventDoc::from_domain(event)).await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        // Outboxes first, then the collection: a flush copies an event into
        // the collection before it removes it from the outbox, so an event
        // missing from the outboxes read here is in the collection by then.
        let older = |e: &Event| {
            query
                .before
                .as_ref()
                .is_none_or(|(at, id)| (e.at, e.id.as_str()) < (*at, id.as_str()))
        };
        let mut merged = std::collections::HashMap::new();
        for e in self.outbox_events(&query.database_id).await? {
            let e = e.into_domain()?;
            if e.database_id == query.database_id && older(&e) {
                merged.insert(e.id.clone(), e);
            }
        }
        let mut filter = doc! {"database_id": query.database_id.as_str()};
        if let Some((at, id)) = &query.before {
            let at = bdate(*at);
            filter.insert(
                "$or",
                vec![
                    doc! {"at": {"$lt": at}},
                    doc! {"at": at, "_id": {"$lt": id.as_str()}},
                ],
            );
        }
        let mut find = self.events.find(filter).sort(doc! {"at": -1, "_id": -1});
        if let Some(limit) = query.limit {
            find = find.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let docs: Vec<EventDoc> = find
            .await
            .map_err(store_err)?
            .try_collect()
            .await
            .map_err(store_err)?;
        for d in docs {
            // By id: an event both moved and not yet taken out of its
            // outbox is listed once.
            let e = d.into_domain()?;
            merged.insert(e.id.clone(), e);
        }
        let mut events: Vec<Event> = merged.into_values().collect();
        events.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        if let Some(limit) = query.limit {
            events.truncate(limit);
        }
        Ok(events)
    }

    async fn flush_events(&self) -> Result<usize> {
        Ok(self.flush_outboxes("databases").await? + self.flush_outboxes("operations").await?)
    }

    async fn update_operation(
        &self,
        id: &str,
        expected: &[OperationStatus],
        update: &OperationUpdate,
    ) -> Result<Option<Operation>> {
        if expected.is_empty() {
            return Ok(None);
        }
        let statuses: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
        let filter = doc! {"_id": id, "status": {"$in": statuses}};
        self.modify_operation(id, filter, operation_update(update)?)
            .await
    }

    async fn update_claimed_operation(
        &self,
        id: &str,
        claim: &str,
        update: &OperationUpdate,
    ) -> Result<Option<Operation>> {
        let filter = doc! {
            "_id": id,
            "status": OperationStatus::Running.as_str(),
            "claimed_by": claim,
        };
        self.modify_operation(id, filter, operation_update(update)?)
            .await
    }

    async fn claim_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim: &str,
    ) -> Result<Option<Operation>> {
        let running = OperationStatus::Running.as_str();
        // A running operation without a claim has no worker either.
        let filter = doc! {
            "_id": id,
            "$or": [
                {"status": OperationStatus::Pending.as_str()},
                {"status": running, "claimed_until": {"$lt": bdate(now)}},
                {"status": running, "claimed_until": Bson::Null},
            ],
        };
        let update =
            doc! {"$set": {"status": running, "claimed_until": bdate(until), "claimed_by": claim}};
        self.modify_operation(id, filter, update).await
    }

    async fn cancel_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        events: &[Event],
    ) -> Result<Option<Operation>> {
        // The precondition is in the filter, applied under the record's
        // lock like every update: a worker recording `ops_request_name`
        // (also a conditional update under the lock) and a cancel cannot
        // both succeed.
        let filter = doc! {
            "_id": id,
            "$or": [
                {
                    "status": {"$in": [
                        OperationStatus::Pending.as_str(),
                        OperationStatus::Running.as_str(),
                    ]},
                    "ops_request_name": Bson::Null,
                },
                {"status": OperationStatus::Failed.as_str()},
            ],
        };
        let update = with_events(
            doc! {"$set": {
                "status": OperationStatus::Cancelled.as_str(),
                "finished_at": bdate(now),
                "claimed_until": Bson::Null,
            }},
            events,
        )?;
        self.modify_operation(id, filter, update).await
    }

    async fn add_to_counter(&self, name: &str, by: f64) -> Result<f64> {
        let counter = self
            .locked("counters", name, async {
                self.counters
                    .find_one_and_update(doc! {"_id": name}, doc! {"$inc": {"value": by}})
                    .upsert(true)
                    .return_document(ReturnDocument::After)
                    .await
                    .map_err(store_err)
            })
            .await?
            .ok_or_else(|| Error::Store(format!("counter {name} missing after upsert").into()))?;
        match counter.get("value") {
            Some(Bson::Double(v)) => Ok(*v),
            Some(Bson::Int32(v)) => Ok(f64::from(*v)),
            other => Err(Error::Store(
                format!("counter {name} holds {other:?}").into(),
            )),
        }
    }
}
