//! Fault injection at the boundaries of a role: every call a reconciler or
//! worker makes to the store, the queue or the cluster goes through an
//! [`Injector`], which numbers it.
//!
//! A *crash* at call `n` makes that call (before it is sent, or after it
//! took effect but before its answer is seen) never return; the test then
//! drops the role's future, so no line of the role runs after that point.
//! That is what a SIGKILL does to a process between two I/O calls; a crash
//! inside one call is, for the server, either "not sent" or "done". After a
//! crash every further call through the injector hangs as well.
//!
//! A *hook* runs a side effect just before the `nth` call of a method (stop
//! a server in the middle of a pass), then lets the call proceed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::Result;
use dbaas_core::domain::{ApiKeyRecord, Database, Event, Operation, OperationStatus, Tenant};
use dbaas_queue::{InProcess, Queue};
use dbaas_store::{
    BeginOperation, DatabaseQuery, DesiredChange, EventQuery, ObservedUpdate, OperationQuery,
    OperationUpdate, Store,
};
use dbaas_testkit::control_loop::Parts;
use serde_json::Value;
use tokio::sync::watch;

/// Where to crash: the `at`-th call (1-based), before it is made or after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashAt {
    pub at: u64,
    pub after: bool,
}

type HookFn = Box<dyn FnOnce() + Send>;

struct Hook {
    name: &'static str,
    nth: u32,
    run: Option<HookFn>,
}

#[derive(Default)]
struct State {
    calls: u64,
    per_name: HashMap<&'static str, u32>,
    trace: Vec<&'static str>,
    crash: Option<CrashAt>,
    /// Crash at the `nth` call of a name, before it or after it.
    named_crash: Option<(&'static str, u32, bool)>,
    hooks: Vec<Hook>,
}

/// Counts calls and injects crashes and hooks; shared by the wrappers of
/// one role run.
pub struct Injector {
    state: Mutex<State>,
    fired: watch::Sender<Option<String>>,
}

impl Injector {
    pub fn new() -> Arc<Injector> {
        Arc::new(Injector {
            state: Mutex::new(State::default()),
            fired: watch::channel(None).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets counts, crash and hooks: ready for the next role run.
    pub fn reset(&self) {
        *self.lock() = State::default();
        self.fired.send_replace(None);
    }

    pub fn arm_crash(&self, crash: CrashAt) {
        self.lock().crash = Some(crash);
    }

    /// Crashes at the `nth` (1-based) call of `name`, before or after it.
    pub fn arm_crash_at(&self, name: &'static str, nth: u32, after: bool) {
        self.lock().named_crash = Some((name, nth, after));
    }

    /// Runs `f` just before the `nth` (1-based) call of `name`
    /// (`"store.update_operation"`, `"queue.ack"`, `"cluster.get"`...).
    pub fn on(&self, name: &'static str, nth: u32, f: impl FnOnce() + Send + 'static) {
        self.lock().hooks.push(Hook {
            name,
            nth,
            run: Some(Box::new(f)),
        });
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// The names of the calls made so far, in order.
    pub fn trace(&self) -> Vec<&'static str> {
        self.lock().trace.clone()
    }

    /// Where the crash happened (`"after store.claim_operation"`), if it did.
    pub fn fired(&self) -> Option<String> {
        self.fired.borrow().clone()
    }

    /// Resolves once the crash has happened.
    pub fn crashed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.fired.subscribe();
        async move {
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// Numbers the call and runs its hooks; true if it must crash before.
    fn before(&self, name: &'static str) -> (u64, bool) {
        let mut hooks = Vec::new();
        let out = {
            let mut s = self.lock();
            if self.fired.borrow().is_some() {
                return (0, true);
            }
            s.calls += 1;
            let n = s.per_name.entry(name).or_default();
            *n += 1;
            let nth = *n;
            s.trace.push(name);
            for h in s
                .hooks
                .iter_mut()
                .filter(|h| h.name == name && h.nth == nth)
            {
                hooks.extend(h.run.take());
            }
            let idx = s.calls;
            if let Some((n, k, after)) = s.named_crash
                && n == name
                && k == nth
            {
                s.crash = Some(CrashAt { at: idx, after });
            }
            (
                idx,
                s.crash
                    == Some(CrashAt {
                        at: idx,
                        after: false,
                    }),
            )
        };
        for h in hooks {
            h();
        }
        if out.1 {
            self.fired.send_replace(Some(format!("before {name}")));
        }
        out
    }

    fn after(&self, idx: u64, name: &'static str) -> bool {
        let hit = self.lock().crash
            == Some(CrashAt {
                at: idx,
                after: true,
            });
        if hit {
            self.fired.send_replace(Some(format!("after {name}")));
        }
        hit
    }

    /// Runs one call through the injector.
    pub async fn call<T>(&self, name: &'static str, fut: impl Future<Output = T>) -> T {
        let (idx, crash) = self.before(name);
        if crash {
            std::future::pending::<()>().await;
        }
        let out = fut.await;
        if self.after(idx, name) {
            std::future::pending::<()>().await;
        }
        out
    }
}

/// A [`Store`] whose calls go through an [`Injector`].
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    pub inj: Arc<Injector>,
}

#[async_trait]
impl Store for FaultyStore {
    async fn ping(&self) -> Result<()> {
        self.inj.call("store.ping", self.inner.ping()).await
    }
    async fn insert_event(&self, event: &Event) -> Result<()> {
        self.inj
            .call("store.insert_event", self.inner.insert_event(event))
            .await
    }
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        self.inj
            .call("store.list_events", self.inner.list_events(query))
            .await
    }
    async fn flush_events(&self) -> Result<usize> {
        self.inj
            .call("store.flush_events", self.inner.flush_events())
            .await
    }
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.inj
            .call("store.insert_tenant", self.inner.insert_tenant(tenant))
            .await
    }
    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.inj
            .call("store.get_tenant", self.inner.get_tenant(id))
            .await
    }
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.inj
            .call("store.insert_api_key", self.inner.insert_api_key(key))
            .await
    }
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.inj
            .call("store.find_api_key", self.inner.find_api_key(key_hash))
            .await
    }
    async fn insert_database(&self, db: &Database, events: &[Event]) -> Result<()> {
        self.inj
            .call(
                "store.insert_database",
                self.inner.insert_database(db, events),
            )
            .await
    }
    async fn get_database(&self, id: &str) -> Result<Option<Database>> {
        self.inj
            .call("store.get_database", self.inner.get_database(id))
            .await
    }
    async fn list_databases(&self, query: &DatabaseQuery) -> Result<Vec<Database>> {
        self.inj
            .call("store.list_databases", self.inner.list_databases(query))
            .await
    }
    async fn update_desired(
        &self,
        id: &str,
        expected_generation: u64,
        change: &DesiredChange,
    ) -> Result<Option<Database>> {
        self.inj
            .call(
                "store.update_desired",
                self.inner.update_desired(id, expected_generation, change),
            )
            .await
    }
    async fn update_observed(&self, id: &str, update: &ObservedUpdate) -> Result<bool> {
        self.inj
            .call(
                "store.update_observed",
                self.inner.update_observed(id, update),
            )
            .await
    }
    async fn update_observed_many(&self, updates: &[(String, ObservedUpdate)]) -> Result<()> {
        self.inj
            .call(
                "store.update_observed_many",
                self.inner.update_observed_many(updates),
            )
            .await
    }
    async fn begin_operations(&self, begins: &[BeginOperation]) -> Result<Vec<bool>> {
        self.inj
            .call(
                "store.begin_operations",
                self.inner.begin_operations(begins),
            )
            .await
    }
    async fn insert_operations(&self, ops: &[(Operation, Vec<Event>)]) -> Result<Vec<bool>> {
        self.inj
            .call("store.insert_operations", self.inner.insert_operations(ops))
            .await
    }
    async fn begin_operation(
        &self,
        id: &str,
        operation_id: &str,
        expected_seq: u64,
    ) -> Result<bool> {
        self.inj
            .call(
                "store.begin_operation",
                self.inner.begin_operation(id, operation_id, expected_seq),
            )
            .await
    }
    async fn end_operation(&self, id: &str, operation_id: &str) -> Result<bool> {
        self.inj
            .call(
                "store.end_operation",
                self.inner.end_operation(id, operation_id),
            )
            .await
    }
    async fn finalize_deletion(&self, id: &str, events: &[Event]) -> Result<bool> {
        self.inj
            .call(
                "store.finalize_deletion",
                self.inner.finalize_deletion(id, events),
            )
            .await
    }
    async fn insert_operation(&self, op: &Operation, events: &[Event]) -> Result<bool> {
        self.inj
            .call(
                "store.insert_operation",
                self.inner.insert_operation(op, events),
            )
            .await
    }
    async fn cancel_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        events: &[Event],
    ) -> Result<Option<Operation>> {
        self.inj
            .call(
                "store.cancel_operation",
                self.inner.cancel_operation(id, now, events),
            )
            .await
    }
    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        self.inj
            .call("store.get_operation", self.inner.get_operation(id))
            .await
    }
    async fn list_operations(&self, query: &OperationQuery) -> Result<Vec<Operation>> {
        self.inj
            .call("store.list_operations", self.inner.list_operations(query))
            .await
    }
    async fn update_operation(
        &self,
        id: &str,
        expected: &[OperationStatus],
        update: &OperationUpdate,
    ) -> Result<Option<Operation>> {
        self.inj
            .call(
                "store.update_operation",
                self.inner.update_operation(id, expected, update),
            )
            .await
    }
    async fn update_claimed_operation(
        &self,
        id: &str,
        claim: &str,
        update: &OperationUpdate,
    ) -> Result<Option<Operation>> {
        self.inj
            .call(
                "store.update_claimed_operation",
                self.inner.update_claimed_operation(id, claim, update),
            )
            .await
    }
    async fn claim_operation(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim: &str,
    ) -> Result<Option<Operation>> {
        self.inj
            .call(
                "store.claim_operation",
                self.inner.claim_operation(id, now, until, claim),
            )
            .await
    }
    async fn add_to_counter(&self, name: &str, by: f64) -> Result<f64> {
        self.inj
            .call("store.add_to_counter", self.inner.add_to_counter(name, by))
            .await
    }
}

/// A [`Queue`] whose calls go through an [`Injector`].
pub struct FaultyQueue {
    pub inner: Arc<dyn Queue>,
    pub inj: Arc<Injector>,
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn enqueue(&self, operation_id: &str) -> Result<()> {
        self.inj
            .call("queue.enqueue", self.inner.enqueue(operation_id))
            .await
    }
    async fn dequeue(&self, timeout: Duration) -> Result<Option<String>> {
        self.inj
            .call("queue.dequeue", self.inner.dequeue(timeout))
            .await
    }
    async fn ack(&self, operation_id: &str) -> Result<()> {
        self.inj
            .call("queue.ack", self.inner.ack(operation_id))
            .await
    }
    async fn requeue(&self, operation_id: &str) -> Result<()> {
        self.inj
            .call("queue.requeue", self.inner.requeue(operation_id))
            .await
    }
    async fn pending(&self) -> Result<Vec<String>> {
        self.inj.call("queue.pending", self.inner.pending()).await
    }
    async fn processing(&self, now: DateTime<Utc>) -> Result<Vec<InProcess>> {
        self.inj
            .call("queue.processing", self.inner.processing(now))
            .await
    }
    async fn ping(&self) -> Result<()> {
        self.inj.call("queue.ping", self.inner.ping()).await
    }
}

/// A [`Cluster`] whose calls go through an [`Injector`].
pub struct FaultyCluster {
    pub inner: Arc<dyn Cluster>,
    pub inj: Arc<Injector>,
}

#[async_trait]
impl Cluster for FaultyCluster {
    async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>> {
        self.inj
            .call("cluster.list", self.inner.list(kind, namespace))
            .await
    }
    async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>> {
        self.inj
            .call("cluster.get", self.inner.get(kind, namespace, name))
            .await
    }
    async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value> {
        self.inj
            .call("cluster.create", self.inner.create(kind, namespace, object))
            .await
    }
    async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.inj
            .call(
                "cluster.merge_patch",
                self.inner.merge_patch(kind, namespace, name, patch),
            )
            .await
    }
    async fn merge_patch_status(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.inj
            .call(
                "cluster.merge_patch_status",
                self.inner.merge_patch_status(kind, namespace, name, patch),
            )
            .await
    }
    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool> {
        self.inj
            .call("cluster.delete", self.inner.delete(kind, namespace, name))
            .await
    }
    async fn ensure_namespace(&self, namespace: &str) -> Result<()> {
        self.inj
            .call(
                "cluster.ensure_namespace",
                self.inner.ensure_namespace(namespace),
            )
            .await
    }
    async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.inj
            .call(
                "cluster.try_acquire_lease",
                self.inner
                    .try_acquire_lease(namespace, name, holder, ttl_seconds, now),
            )
            .await
    }
    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        self.inj
            .call(
                "cluster.release_lease",
                self.inner.release_lease(namespace, name, holder),
            )
            .await
    }
    fn api_calls(&self) -> u64 {
        self.inner.api_calls()
    }
}

/// The three wrappers around one injector.
pub struct Faulty {
    pub inj: Arc<Injector>,
    /// The wrapped parts, for the roles to use.
    pub parts: Parts,
}

impl Faulty {
    pub fn new(inner: &Parts) -> Faulty {
        let inj = Injector::new();
        Faulty {
            parts: Parts {
                store: Arc::new(FaultyStore {
                    inner: inner.store.clone(),
                    inj: inj.clone(),
                }),
                queue: Arc::new(FaultyQueue {
                    inner: inner.queue.clone(),
                    inj: inj.clone(),
                }),
                cluster: Arc::new(FaultyCluster {
                    inner: inner.cluster.clone(),
                    inj: inj.clone(),
                }),
            },
            inj,
        }
    }
}
