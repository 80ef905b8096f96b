//! The store: source of truth for tenants, keys, databases and operations.
//!
//! Two adapters implement [`Store`]: MongoDB (the official driver; FerretDB
//! in tests) and an embedded SQLite file for the one-command local mode.
//! Both pass the same conformance suite (`dbaas-testkit`'s `store_suite`).
//! Each adapter is behind a cargo feature (`mongo`, `sqlite`), so a binary
//! compiles only the driver it uses.
//!
//! Neither relies on multi-document transactions (FerretDB has none): every
//! method is one single-document update (the batch methods, many of them
//! sent together), and every compare-and-set encodes its precondition in
//! the update's filter. FerretDB 1.x applies such an
//! update as read-modify-write in its own process, so it is not atomic there;
//! the MongoDB adapter therefore takes a short per-record lock (a unique
//! insert, which FerretDB does make atomic) around each update. See
//! `mongo` for the details and the one race left after a crash. Desired fields and
//! observed fields are set field by field, never by saving a whole document,
//! so the API and the reconciler never overwrite each other's writes.
//!
//! History events ride with the write that causes them (`events` on
//! [`DesiredChange`], [`ObservedUpdate`] and [`OperationUpdate`], and the
//! event arguments of the other writes), so a crash never leaves a change
//! without its event or an event without its change. SQLite writes them in
//! the same transaction; MongoDB, with no multi-document transactions,
//! pushes them into the written document itself (an outbox), which the
//! adapter moves to the events collection a few events at a time (a crash
//! in between leaves them in the outbox, where readers still see them).
//! Readers see both at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use dbaas_core::domain::{
    ApiKeyRecord, Condition, Connection, Database, DatabaseStatus, DesiredState, Event, OnDelete,
    Operation, OperationStatus, Size, Tenant,
};
use dbaas_core::engine::Engine;
use dbaas_core::error::Result;

mod args;
#[cfg(feature = "sqlite")]
pub mod embedded;
#[cfg(feature = "mongo")]
pub mod mongo;

pub use args::{StoreArgs, WriteLocks};

/// Filters and page of a database listing, ordered by id.
#[derive(Debug, Clone, Default)]
pub struct DatabaseQuery {
    /// Only this tenant's databases (None: all tenants, for the reconciler).
    pub tenant_id: Option<String>,
    pub engine: Option<Engine>,
    pub status: Option<DatabaseStatus>,
    /// Only ids greater than this (the cursor).
    pub after_id: Option<String>,
    /// Leave out databases whose deletion is finished.
    pub exclude_deleted: bool,
    pub limit: Option<usize>,
}

/// Filters and page of an operation listing, newest first
/// (`created_at` descending, then `id` descending).
#[derive(Debug, Clone, Default)]
pub struct OperationQuery {
    pub tenant_id: Option<String>,
    pub database_id: Option<String>,
    /// Only operations in one of these states (empty: any).
    pub statuses: Vec<OperationStatus>,
    /// Only operations strictly older than this `(created_at, id)` (the cursor).
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: Option<usize>,
}

/// A page of one database's events, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub database_id: String,
    /// Only events strictly older than this `(at, id)` (the cursor).
    pub before: Option<(DateTime<Utc>, String)>,
    pub limit: Option<usize>,
}

/// A change to desired state; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredChange {
    pub size: Option<Size>,
    pub replicas: Option<u32>,
    pub storage_gb: Option<u32>,
    /// The catalog version to move to (validated by the caller).
    pub version: Option<String>,
    /// The new desired rotation count (one more than before).
    pub auth_rotation: Option<u64>,
    pub paused: Option<bool>,
    pub deletion_protection: Option<bool>,
    pub deletion_policy: Option<OnDelete>,
    /// The new desired restart count (one more than before).
    pub restarts: Option<u64>,
    /// Request deletion (never un-requested).
    pub delete: bool,
    /// Status to show with the change (`updating`, `deleting`).
    pub status: Option<DatabaseStatus>,
    /// History events written with the change, atomically.
    pub events: Vec<Event>,
}

impl DesiredChange {
    /// Sets the desired fields `values` names (what a cancel takes back).
    pub fn setting(values: DesiredState) -> DesiredChange {
        DesiredChange {
            size: values.size,
            replicas: values.replicas,
            storage_gb: values.storage_gb,
            version: values.version,
            auth_rotation: values.auth_rotation,
            paused: values.paused,
            deletion_policy: values.deletion_policy,
            restarts: values.restarts,
            ..Default::default()
        }
    }
}

/// Observed-state fields to set; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedUpdate {
    pub current_size: Option<Size>,
    pub current_replicas: Option<u32>,
    pub current_storage_gb: Option<u32>,
    pub current_version: Option<String>,
    /// Raises the recorded rotation count (never lowers it: a late writer
    /// of an older rotation changes nothing).
    pub current_auth_rotation: Option<u64>,
    pub current_paused: Option<bool>,
    pub current_deletion_policy: Option<OnDelete>,
    /// Raises the recorded restart count (never lowers it).
    pub current_restarts: Option<u64>,
    pub connection: Option<Connection>,
    pub observed_generation: Option<u64>,
    pub status: Option<DatabaseStatus>,
    pub conditions: Option<Vec<Condition>>,
    /// History events written with the update, atomically.
    pub events: Vec<Event>,
}

/// Operation fields to set; `None` leaves a field as it is, `Some(None)`
/// clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationUpdate {
    pub status: Option<OperationStatus>,
    pub attempts: Option<u32>,
    pub error: Option<Option<String>>,
    pub ops_request_name: Option<Option<String>>,
    pub ops_request_phase: Option<Option<String>>,
    pub claimed_until: Option<Option<DateTime<Utc>>>,
    pub next_attempt_at: Option<Option<DateTime<Utc>>>,
    pub finished_at: Option<Option<DateTime<Utc>>>,
    /// History events written with the update, atomically (only when the
    /// update's precondition holds).
    pub events: Vec<Event>,
}

/// One database's move to an active operation, as in
/// [`Store::begin_operation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginOperation {
    pub database_id: String,
    pub operation_id: String,
    pub expected_seq: u64,
}

/// Persistent state of the control plane.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;

    /// `Error::Conflict` if a tenant with this name exists.
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>>;
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;

    /// `Error::Conflict` if the tenant already has a database of this name
    /// that is not deleted.
    async fn insert_database(&self, db: &Database, events: &[Event]) -> Result<()>;
    async fn get_database(&self, id: &str) -> Result<Option<Database>>;
    async fn list_databases(&self, query: &DatabaseQuery) -> Result<Vec<Database>>;

    /// Applies `change` and bumps `generation` by one, only if the database
    /// exists, its generation is `expected_generation`, and its deletion was
    /// not requested. Returns the updated database, or `None` when the
    /// precondition failed.
    async fn update_desired(
        &self,
        id: &str,
        expected_generation: u64,
        change: &DesiredChange,
    ) -> Result<Option<Database>>;

    /// Sets observed fields. Returns false if the database does not exist.
    async fn update_observed(&self, id: &str, update: &ObservedUpdate) -> Result<bool>;

    /// [`Store::update_observed`] for many databases, in as few round trips
    /// as the adapter can (the pass records what it saw in batches). A call
    /// cut off part way may have written some and not others.
    async fn update_observed_many(&self, updates: &[(String, ObservedUpdate)]) -> Result<()> {
        for (id, update) in updates {
            self.update_observed(id, update).await?;
        }
        Ok(())
    }

    /// Records `operation_id` as the database's active operation, only if it
    /// has none and its `operation_seq` is `expected_seq`; bumps the seq.
    async fn begin_operation(
        &self,
        id: &str,
        operation_id: &str,
        expected_seq: u64,
    ) -> Result<bool>;
    /// [`Store::begin_operation`] for many databases, in as few round trips
    /// as the adapter can (the pass begins what it planned in batches).
    /// Element `i` is true when database `i`'s active operation is
    /// `operation_id` after the call: begun by it, or by the same begin
    /// before (a batch cut off part way and made again; operation ids are
    /// unique per database and seq). Each begin is on its own record.
    async fn begin_operations(&self, begins: &[BeginOperation]) -> Result<Vec<bool>> {
        let mut begun = Vec::with_capacity(begins.len());
        for b in begins {
            let held = self
                .begin_operation(&b.database_id, &b.operation_id, b.expected_seq)
                .await?
                || self.get_database(&b.database_id).await?.is_some_and(|d| {
                    d.active_operation_id.as_deref() == Some(b.operation_id.as_str())
                });
            begun.push(held);
        }
        Ok(begun)
    }
    /// Clears the active operation, only if it is `operation_id`.
    async fn end_operation(&self, id: &str, operation_id: &str) -> Result<bool>;

    /// Marks the database deleted and frees its name for reuse, with
    /// `events` (written only if it was not finalized before).
    async fn finalize_deletion(&self, id: &str, events: &[Event]) -> Result<bool>;

    /// Inserts the operation, with `events`, unless one with its id exists:
    /// returns false then (a re-planned operation is the same operation).
    async fn insert_operation(&self, op: &Operation, events: &[Event]) -> Result<bool>;
    /// [`Store::insert_operation`] for many operations, in as few round
    /// trips as the adapter can. Element `i` is false when operation `i`
    /// existed already. A call cut off part way may have inserted some.
    async fn insert_operations(&self, ops: &[(Operation, Vec<Event>)]) -> Result<Vec<bool>> {
        let mut inserted = Vec::with_capacity(ops.len());
        for (op, events) in ops {
            inserted.push(self.insert_operation(op, events).await?);
        }
        Ok(inserted)
    }
    async fn get_operation(&self, id: &str) -> Result<Option<Operation>>;
    async fn list_operations(&self, query: &OperationQuery) -> Result<Vec<Operation>>;

    /// Sets fields of the operation only if its status is one of `expected`.
    /// Returns the updated operation, or `None` when the precondition failed.
    async fn update_operation(
        &self,
        id: &str,
        expected: &[OperationStatus],
        update: &OperationUpdate,
    ) -> Result<Option<Operation>>;

    /// Sets fields of a running operation only while the worker whose
    /// claim token is `claim` holds it. `None` when the claim was lost (it
    /// expired and another worker claimed the operation, or it ended).
    async fn update_claimed_operation(
        &self,
        id: &str,
        claim: &str,
        update: &OperationUpdate,
    ) -> Result<Option<Operation>>;

    /// Claims the operation for the worker with token `claim` until
    /// `until`: only if it is pending, or running with a claim that expired
    /// before `now`.
    async fn claim_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim: &str,
    ) -> Result<Option<Operation>>;

    /// Ends the operation `cancelled` (with `events`), only while no
    /// KubeDB object exists for its current attempt: it is pending or
    /// running with no `ops_request_name` recorded (a worker records the
    /// name before it creates the object), or it failed (its object is
    /// final). `finished_at` is set to `now` and the claim cleared. `None`
    /// when the precondition failed.
    async fn cancel_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        events: &[Event],
    ) -> Result<Option<Operation>>;

    /// Appends an event to its database's history (idempotent by id).
    async fn insert_event(&self, event: &Event) -> Result<()>;
    /// A page of a database's history: events written with other writes
    /// are included whether or not they were flushed yet.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>>;
    /// Moves events written alongside other records into the history
    /// (idempotent; a no-op where they are written there directly).
    /// Returns how many moved. A sweep of every record, costly at scale;
    /// the roles never need it (adapters move full outboxes on their own),
    /// readers see the same history before and after.
    async fn flush_events(&self) -> Result<usize>;

    /// Adds `by` to the named durable counter and returns the new total
    /// (running totals behind monotonic Prometheus counters).
    async fn add_to_counter(&self, name: &str, by: f64) -> Result<f64>;
}
