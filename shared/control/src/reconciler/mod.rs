//! One reconciliation pass: observe, record, compare, plan, enqueue.
//!
//! A pass holds a Kubernetes Lease for its whole run, so two passes never
//! overlap even when the CronJob starts two pods for one tick. It reads the
//! cluster with a fixed number of calls: one paginated LIST of database CRs
//! and one of OpsRequests per engine kind, whatever the number of
//! databases. It then walks the store's databases once, in batches of
//! [`WRITE_BATCH`], settling up to [`ReconcilerConfig::settle_concurrency`]
//! of a batch at a time (each one's writes are conditional on its own
//! record, so they never contend), then writing what the batch decided
//! together: observed fields in one bulk update, planned operations in one
//! insert and one bulk update that makes them active. So a pass's round
//! trips grow with the number of batches, not of databases; the rarer
//! writes (releasing, retrying, superseding an operation) stay single.
//!
//! 1. records what the CR shows as `current_*` (only fields that changed);
//! 2. settles the database's active operation: a finished one is released,
//!    a failed one is retried after its backoff or left failed past the
//!    bound, a pending one planned for an older generation is superseded;
//! 3. with no active operation, plans at most one with [`drift::assess`]
//!    and records it under a deterministic id, then makes it the database's
//!    active one, before enqueueing it, so a crash anywhere in between
//!    (even part way through a batch) re-plans the same operation, never a
//!    second.
//!
//! Finally it repairs the queue from the store, which is the source of
//! truth: pending operations missing from Redis are enqueued again, and ids
//! stuck in the processing list of a dead worker go back to pending.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};
use tracing::{info, warn};

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::{Database, Event, Operation, OperationStatus};
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::error::Result;
use dbaas_core::kubedb::{ObservedDatabase, ObservedOpsRequest};
use dbaas_queue::Queue;
use dbaas_store::{BeginOperation, DatabaseQuery, ObservedUpdate, OperationQuery, Store};

use self::metrics::PassMetrics;

mod metrics;
mod queue_repair;
mod record;
mod settle;

/// Settings of a pass.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Namespace of the database CRs, OpsRequests and the Lease.
    pub namespace: String,
    pub lease_name: String,
    /// This pass's identity in the Lease (the pod name in a cluster).
    pub holder: String,
    /// How long the Lease stays valid without renewal; longer than a pass.
    pub lease_ttl: Duration,
    /// Attempts of one operation before the database shows it failed (the
    /// worker schedules each retry's time; the pass starts it when due).
    pub max_attempts: u32,
    /// An id in the processing list this long, with no live worker claim,
    /// goes back to the pending list.
    pub processing_deadline: Duration,
    /// Where to push metrics; None disables pushing.
    pub pushgateway_url: Option<String>,
    /// Databases settled at once.
    pub settle_concurrency: usize,
}

/// What one pass saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// Another pass held the Lease: this one did nothing.
    pub skipped: bool,
    pub databases_seen: usize,
    /// Drifted fields, by field name.
    pub drifts: BTreeMap<&'static str, u64>,
    pub operations_created: u64,
    pub retries: u64,
    pub superseded: u64,
    pub requeued: u64,
    pub finalized: u64,
    pub kube_calls: u64,
    pub duration: Duration,
    /// Of `duration`: reading every database and unfinished operation.
    pub store_read: Duration,
    /// Of `duration`: the LISTs of every kind.
    pub cluster_read: Duration,
    /// Databases whose desired and current state differ, and since when.
    pub drifted: Vec<(String, &'static str, DateTime<Utc>)>,
    pub pending_depth: usize,
    pub processing_depth: usize,
    /// Seconds each drift resolved in this pass had lasted.
    pub resolved_drift_seconds: Vec<f64>,
}

impl PassReport {
    /// Adds what settling one database saw and did.
    fn absorb(&mut self, part: PassReport) {
        self.databases_seen += part.databases_seen;
        for (field, n) in part.drifts {
            *self.drifts.entry(field).or_default() += n;
        }
        self.operations_created += part.operations_created;
        self.retries += part.retries;
        self.superseded += part.superseded;
        self.finalized += part.finalized;
        self.drifted.extend(part.drifted);
        self.resolved_drift_seconds
            .extend(part.resolved_drift_seconds);
    }
}

/// Databases whose writes a pass makes together.
pub const WRITE_BATCH: usize = 500;

/// One database settled: what it saw and did, and what is left to write
/// with the rest of its batch.
#[derive(Default)]
struct Settled {
    database_id: String,
    report: PassReport,
    /// An operation recorded before, to enqueue.
    enqueue: Option<String>,
    /// Observed fields that changed.
    observed: Option<ObservedUpdate>,
    /// The deletion to finalize (after `observed`), with its event.
    finalize: Option<Event>,
    planned: Option<Planned>,
}

/// An operation planned for a database with no active one.
struct Planned {
    operation: Operation,
    event: Event,
    /// The database's `operation_seq` when it was read.
    expected_seq: u64,
}

/// Everything a pass reads from the cluster, indexed.
struct ClusterView {
    /// Database CRs by the database id label.
    databases: HashMap<String, ObservedDatabase>,
    /// Unfinished OpsRequests' targets by database CR name.
    in_flight: HashMap<String, Vec<Change>>,
}

/// The reconciler role.
pub struct Reconciler<'a> {
    pub store: &'a dyn Store,
    pub queue: &'a dyn Queue,
    pub cluster: &'a dyn Cluster,
    pub config: &'a ReconcilerConfig,
}

impl Reconciler<'_> {
    /// Runs one pass under the Lease, then releases it and pushes metrics.
    pub async fn run_pass(&self) -> Result<PassReport> {
        let started = Instant::now();
        let calls_before = self.cluster.api_calls();
        let cfg = self.config;
        let ttl = u32::try_from(cfg.lease_ttl.as_secs()).unwrap_or(u32::MAX);
        self.cluster.ensure_namespace(&cfg.namespace).await?;
        if !self
            .cluster
            .try_acquire_lease(
                &cfg.namespace,
                &cfg.lease_name,
                &cfg.holder,
                ttl,
                Utc::now(),
            )
            .await?
        {
            info!(lease = %cfg.lease_name, "another reconciler holds the lease; exiting");
            return Ok(PassReport {
                skipped: true,
                ..Default::default()
            });
        }
        let result = self.pass().await;
        if let Err(e) = self
            .cluster
            .release_lease(&cfg.namespace, &cfg.lease_name, &cfg.holder)
            .await
        {
            warn!(error = %e, "could not release the lease; it expires by itself");
        }
        let mut report = result?;
        report.duration = started.elapsed();
        report.kube_calls = self.cluster.api_calls() - calls_before;
        info!(
            databases = report.databases_seen,
            drifts = ?report.drifts,
            operations_created = report.operations_created,
            retries = report.retries,
            superseded = report.superseded,
            requeued = report.requeued,
            finalized = report.finalized,
            kube_calls = report.kube_calls,
            duration_ms = report.duration.as_millis() as u64,
            store_read_ms = report.store_read.as_millis() as u64,
            cluster_read_ms = report.cluster_read.as_millis() as u64,
            "reconciliation pass done"
        );
        if let Some(url) = &cfg.pushgateway_url
            && let Err(e) = self.push_metrics(url, &report).await
        {
            warn!(error = %e, "could not push metrics");
        }
        Ok(report)
    }

    async fn pass(&self) -> Result<PassReport> {
        let now = Utc::now();
        let mut report = PassReport::default();
        // Unfinished operations first, then the records and the cluster at
        // once. An operation that finishes meanwhile shows as unfinished
        // here: its database then waits a pass (see `reconcile_database`),
        // so a change is never planned again against a CR read before the
        // change landed.
        let started = Instant::now();
        let ops = self
            .store
            .list_operations(&OperationQuery {
                statuses: vec![
                    OperationStatus::Pending,
                    OperationStatus::Running,
                    OperationStatus::Failed,
                ],
                ..Default::default()
            })
            .await?;
        let ops: HashMap<String, Operation> =
            ops.into_iter().map(|op| (op.id.clone(), op)).collect();
        let ops_read = started.elapsed();
        let ((databases, databases_read), (view, cluster_read)) =
            futures::try_join!(timed(self.all_databases()), timed(self.observe_cluster()))?;
        report.store_read = ops_read + databases_read;
        report.cluster_read = cluster_read;
        let mut ops_by_database: HashMap<&str, Vec<&Operation>> = HashMap::new();
        for op in ops.values() {
            ops_by_database
                .entry(op.database_id.as_str())
                .or_default()
                .push(op);
        }
        let mut to_enqueue: Vec<String> = Vec::new();
        for batch in databases.chunks(WRITE_BATCH) {
            // In the databases' order (`buffered`), so the queue gets the
            // ids in the same order whatever finishes first.
            // Boxed: the futures borrow the pass's reads, and a spawned pass
            // (local mode) needs their type to be nameable for any lifetime.
            let settling: Vec<BoxFuture<'_, Result<Settled>>> = batch
                .iter()
                .map(|db| {
                    let own = ops_by_database
                        .get(db.id.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    let (view, ops) = (&view, &ops);
                    async move {
                        let mut settled = Settled {
                            database_id: db.id.clone(),
                            report: PassReport {
                                databases_seen: 1,
                                ..Default::default()
                            },
                            ..Default::default()
                        };
                        settled.enqueue = self
                            .reconcile_database(db, view, ops, own, now, &mut settled)
                            .await?;
                        Ok(settled)
                    }
                    .boxed()
                })
                .collect();
            let settled: Vec<Settled> = stream::iter(settling)
                .buffered(self.config.settle_concurrency.max(1))
                .try_collect()
                .await?;
            to_enqueue.extend(self.write_batch(settled, &mut report).await?);
        }
        self.repair_queue(&ops, to_enqueue, now, &mut report)
            .await?;
        Ok(report)
    }

    /// Writes what a batch of settled databases left, in an order that
    /// keeps the crash-safety rules: observed fields, then finalized
    /// deletions, then planned operations (recorded, then made active).
    /// Returns the ids to enqueue, in the databases' order.
    async fn write_batch(
        &self,
        settled: Vec<Settled>,
        report: &mut PassReport,
    ) -> Result<Vec<String>> {
        let observed: Vec<(String, ObservedUpdate)> = settled
            .iter()
            .filter_map(|s| Some((s.database_id.clone(), s.observed.clone()?)))
            .collect();
        if !observed.is_empty() {
            self.store.update_observed_many(&observed).await?;
        }
        // Boxed, as the settling futures are.
        let finalizing: Vec<BoxFuture<'_, Result<bool>>> = settled
            .iter()
            .filter_map(|s| {
                let event = s.finalize.as_ref()?;
                Some(
                    async move {
                        let done = self
                            .store
                            .finalize_deletion(&s.database_id, std::slice::from_ref(event))
                            .await?;
                        if done {
                            info!(database_id = %s.database_id, "deletion finalized");
                        }
                        Ok(done)
                    }
                    .boxed(),
                )
            })
            .collect();
        let finalized: Vec<bool> = stream::iter(finalizing)
            .buffered(self.config.settle_concurrency.max(1))
            .try_collect()
            .await?;
        report.finalized += finalized.iter().filter(|f| **f).count() as u64;
        let planned: Vec<&Planned> = settled.iter().filter_map(|s| s.planned.as_ref()).collect();
        let mut begun = Vec::new();
        if !planned.is_empty() {
            let records: Vec<(Operation, Vec<Event>)> = planned
                .iter()
                .map(|p| (p.operation.clone(), vec![p.event.clone()]))
                .collect();
            // Inserted or there already (re-planned after a crash): the
            // same operation either way, so each is made active.
            self.store.insert_operations(&records).await?;
            let begins: Vec<BeginOperation> = planned
                .iter()
                .map(|p| BeginOperation {
                    database_id: p.operation.database_id.clone(),
                    operation_id: p.operation.id.clone(),
                    expected_seq: p.expected_seq,
                })
                .collect();
            begun = self.store.begin_operations(&begins).await?;
        }
        let mut begun = begun.into_iter();
        let mut to_enqueue = Vec::new();
        for s in settled {
            report.absorb(s.report);
            to_enqueue.extend(s.enqueue);
            let Some(p) = s.planned else { continue };
            // Not begun: the database changed under us (an API write or
            // another pass); the next pass plans again from fresh state.
            if begun.next().unwrap_or(false) {
                let op = p.operation;
                report.operations_created += 1;
                info!(database_id = %op.database_id, operation_id = %op.id, r#type = op.type_().as_str(), action = ?op.action, "drift: operation planned");
                to_enqueue.push(op.id);
            }
        }
        Ok(to_enqueue)
    }

    /// Every database not yet finalized, in one query: the driver streams
    /// it in batches, and FerretDB scans the collection once per query, so
    /// pages of `_id > cursor` would cost a scan each (quadratic in the
    /// number of databases, measured by `just bench`).
    async fn all_databases(&self) -> Result<Vec<Database>> {
        self.store
            .list_databases(&DatabaseQuery {
                exclude_deleted: true,
                ..Default::default()
            })
            .await
    }

    /// Two LISTs per engine kind, database CRs and OpsRequests, all at
    /// once: the API server encodes pages on its cores while this process
    /// decodes others, so the pass waits for the slowest kind rather than
    /// the sum of them.
    async fn observe_cluster(&self) -> Result<ClusterView> {
        let ns = &self.config.namespace;
        // Each list is reduced to what the pass needs as soon as it
        // arrives, so the raw objects of every kind are never all held.
        let (crs, requests) = futures::try_join!(
            futures::future::try_join_all(Engine::ALL.map(|e| async move {
                let objects = self.cluster.list(&Kind::database(e), ns).await?;
                Ok::<_, dbaas_core::error::Error>(
                    objects
                        .iter()
                        .filter_map(ObservedDatabase::from_value)
                        .collect::<Vec<_>>(),
                )
            })),
            futures::future::try_join_all(Engine::ALL.map(|e| async move {
                let objects = self.cluster.list(&Kind::ops_request(e), ns).await?;
                Ok::<_, dbaas_core::error::Error>(
                    objects
                        .iter()
                        .filter_map(ObservedOpsRequest::from_value)
                        .filter(|r| !r.phase.is_some_and(|p| p.is_final()))
                        .collect::<Vec<_>>(),
                )
            })),
        )?;
        let mut view = ClusterView {
            databases: HashMap::new(),
            in_flight: HashMap::new(),
        };
        for db in crs.into_iter().flatten() {
            if let Some(id) = db.database_id.clone() {
                view.databases.insert(id, db);
            }
        }
        for req in requests.into_iter().flatten() {
            if let Some(change) = req.change {
                view.in_flight
                    .entry(req.database_name)
                    .or_default()
                    .push(change);
            }
        }
        Ok(view)
    }

    async fn push_metrics(&self, url: &str, report: &PassReport) -> Result<()> {
        let metrics = PassMetrics::default();
        metrics.record(self.store, report).await?;
        crate::metrics::push(url, "dbaas-reconciler", None, &metrics.registry).await
    }
}

/// `f`'s result with the time it took.
async fn timed<T>(f: impl Future<Output = Result<T>>) -> Result<(T, Duration)> {
    let started = Instant::now();
    f.await.map(|v| (v, started.elapsed()))
}
