//! One reconciliation pass: observe, record, compare, plan, enqueue.
//!
//! A pass holds a Kubernetes Lease for its whole run, so two passes never
//! overlap even when the CronJob starts two pods for one tick. It reads the
//! cluster with a fixed number of calls: one paginated LIST of database CRs
//! and one of OpsRequests per engine kind, whatever the number of
//! databases. It then walks the store's databases once:
//!
//! 1. records what the CR shows as `current_*` (only fields that changed);
//! 2. settles the database's active operation: a finished one is released,
//!    a failed one is retried after its backoff or left failed past the
//!    bound, a pending one planned for an older generation is superseded;
//! 3. with no active operation, plans at most one with [`drift::assess`]
//!    and records it under a deterministic id before enqueueing it, so a
//!    crash anywhere in between re-plans the same operation, never a second.
//!
//! Finally it repairs the queue from the store, which is the source of
//! truth: pending operations missing from Redis are enqueued again, and ids
//! stuck in the processing list of a dead worker go back to pending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::cluster::{Cluster, Kind};
use crate::domain::{
    Condition, Database, DatabaseStatus, Operation, OperationStatus, OperationType,
};
use crate::drift::{self, Assessment, Change, Desired, Observed, Plan};
use crate::engine::Engine;
use crate::error::Result;
use crate::kubedb::{DatabasePhase, ObservedDatabase, ObservedOpsRequest, OpsChange};
use crate::queue::Queue;
use crate::store::{DatabaseQuery, ObservedUpdate, OperationQuery, OperationUpdate, Store};
use crate::telemetry::{self, PushBody};

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
        let mut to_enqueue: Vec<String> = Vec::new();
        let mut ops_by_database: HashMap<&str, Vec<&Operation>> = HashMap::new();
        for op in ops.values() {
            ops_by_database
                .entry(op.database_id.as_str())
                .or_default()
                .push(op);
        }
        for db in &databases {
            report.databases_seen += 1;
            let own = ops_by_database
                .get(db.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if let Some(id) = self
                .reconcile_database(db, &view, &ops, own, now, &mut report)
                .await?
            {
                to_enqueue.push(id);
            }
        }
        self.repair_queue(&ops, to_enqueue, now, &mut report)
            .await?;
        Ok(report)
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
                Ok::<_, crate::error::Error>(
                    objects
                        .iter()
                        .filter_map(ObservedDatabase::from_value)
                        .collect::<Vec<_>>(),
                )
            })),
            futures::future::try_join_all(Engine::ALL.map(|e| async move {
                let objects = self.cluster.list(&Kind::ops_request(e), ns).await?;
                Ok::<_, crate::error::Error>(
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
                    .push(change.into());
            }
        }
        Ok(view)
    }

    /// Settles one database, given its unfinished operations (`own_ops`);
    /// returns an operation id to enqueue, if any.
    async fn reconcile_database(
        &self,
        db: &Database,
        view: &ClusterView,
        ops: &HashMap<String, Operation>,
        own_ops: &[&Operation],
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Option<String>> {
        let cr = view.databases.get(&db.id);
        let observed = cr.map(observed_of);
        let in_flight = cr
            .and_then(|c| view.in_flight.get(&c.name))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let desired = Desired {
            size: db.size,
            replicas: db.replicas,
            storage_gb: db.storage_gb,
            deletion_requested: db.deletion_requested,
        };
        // An unfinished operation that is not the active one is either a
        // stray, recorded by a pass that died before making it active
        // (nothing would ever run or end it: supersede it, unless it is the
        // very operation this pass would plan again), or one that finished
        // while this pass read the records and the cluster: the CR read may
        // predate its change, so wait for the next pass rather than plan
        // that change again.
        // (A running one counts only while its worker's claim holds: one
        // whose worker died is no evidence of anything.)
        let mut ended_meanwhile = false;
        for op in own_ops.iter().filter(|o| {
            db.active_operation_id.as_deref() != Some(o.id.as_str())
                && o.id != Operation::id_for(&db.id, o.type_, db.generation, db.operation_seq)
        }) {
            match op.status {
                OperationStatus::Pending => {
                    if self.supersede(db, op).await? {
                        report.superseded += 1;
                    } else {
                        ended_meanwhile = true;
                    }
                }
                OperationStatus::Running if op.claimed_until.is_some_and(|t| t > now) => {
                    ended_meanwhile = true;
                }
                _ => {}
            }
        }
        if ended_meanwhile {
            debug!(database_id = %db.id, "an operation ended during this pass's reads; next pass");
            return Ok(None);
        }
        let assessment = drift::assess(&desired, observed.as_ref(), in_flight);
        for d in &assessment.drifts {
            *report.drifts.entry(d.field.as_str()).or_default() += 1;
        }

        // Settle the active operation first: at most one per database.
        let mut failed_past_bound: Option<&Operation> = None;
        if let Some(op_id) = &db.active_operation_id {
            match ops.get(op_id) {
                Some(op) if op.status == OperationStatus::Running => {
                    self.record(db, cr, &assessment, None, now, report).await?;
                    // A claim that expired means its worker died; make sure
                    // the id is queued somewhere so another worker adopts it
                    // (the queue may have lost it, say in a Redis restart).
                    let orphaned = op.claimed_until.is_none_or(|t| t <= now);
                    return Ok(orphaned.then(|| op.id.clone()));
                }
                Some(op) if op.status == OperationStatus::Pending => {
                    if op.target_generation < db.generation && self.supersede(db, op).await? {
                        report.superseded += 1;
                    } else {
                        self.record(db, cr, &assessment, None, now, report).await?;
                        return Ok(Some(op.id.clone()));
                    }
                }
                Some(op) if op.status == OperationStatus::Failed => {
                    if op.target_generation < db.generation {
                        if self.supersede(db, op).await? {
                            report.superseded += 1;
                        }
                    } else if op.attempts < self.config.max_attempts {
                        self.record(db, cr, &assessment, None, now, report).await?;
                        if op.next_attempt_at.is_none_or(|t| t <= now) && self.retry(op).await? {
                            report.retries += 1;
                            return Ok(Some(op.id.clone()));
                        }
                        return Ok(None);
                    } else {
                        failed_past_bound = Some(op);
                    }
                }
                // Finished (or vanished): release the database.
                _ => {
                    self.store.end_operation(&db.id, op_id).await?;
                }
            }
        }
        self.record(db, cr, &assessment, failed_past_bound, now, report)
            .await?;
        if failed_past_bound.is_some() {
            // Stays failed until the user changes desired state.
            return Ok(None);
        }
        match assessment.plan {
            Plan::Finalize => {
                if self.store.finalize_deletion(&db.id).await? {
                    report.finalized += 1;
                    info!(database_id = %db.id, "deletion finalized");
                }
                Ok(None)
            }
            plan => match plan.operation_type() {
                Some(type_) => self.plan_operation(db, type_, plan, now, report).await,
                None => Ok(None),
            },
        }
    }

    /// Records the operation under its deterministic id, then makes it the
    /// database's active operation; both steps are idempotent.
    async fn plan_operation(
        &self,
        db: &Database,
        type_: OperationType,
        plan: Plan,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Option<String>> {
        let desired_state = match plan {
            Plan::Fix(change) => change.desired_state(),
            Plan::Provision => crate::domain::DesiredState {
                size: Some(db.size),
                replicas: Some(db.replicas),
                storage_gb: Some(db.storage_gb),
            },
            _ => Default::default(),
        };
        let op = Operation::planned(db, type_, desired_state, now);
        self.store.insert_operation(&op).await?;
        if !self
            .store
            .begin_operation(&db.id, &op.id, db.operation_seq)
            .await?
        {
            // The database changed under us (an API write or another pass):
            // the next pass plans again from fresh state.
            return Ok(None);
        }
        report.operations_created += 1;
        info!(database_id = %db.id, operation_id = %op.id, r#type = type_.as_str(), desired = ?op.desired_state, "drift: operation planned");
        Ok(Some(op.id))
    }

    async fn supersede(&self, db: &Database, op: &Operation) -> Result<bool> {
        let done = self
            .store
            .update_operation(
                &op.id,
                &[OperationStatus::Pending, OperationStatus::Failed],
                &OperationUpdate {
                    status: Some(OperationStatus::Superseded),
                    finished_at: Some(Some(Utc::now())),
                    ..Default::default()
                },
            )
            .await?
            .is_some();
        if done {
            self.store.end_operation(&db.id, &op.id).await?;
            info!(database_id = %db.id, operation_id = %op.id, "operation superseded by a newer desired state");
        }
        Ok(done)
    }

    /// Moves a failed operation back to pending as its next attempt; the
    /// worker names that attempt's OpsRequest after the new count.
    async fn retry(&self, op: &Operation) -> Result<bool> {
        let updated = self
            .store
            .update_operation(
                &op.id,
                &[OperationStatus::Failed],
                &OperationUpdate {
                    status: Some(OperationStatus::Pending),
                    attempts: Some(op.attempts + 1),
                    ops_request_name: Some(None),
                    ops_request_phase: Some(None),
                    claimed_until: Some(None),
                    next_attempt_at: Some(None),
                    ..Default::default()
                },
            )
            .await?;
        if updated.is_some() {
            info!(operation_id = %op.id, attempt = op.attempts + 1, "retrying failed operation");
        }
        Ok(updated.is_some())
    }

    /// Writes observed fields, status and conditions, where they changed.
    async fn record(
        &self,
        db: &Database,
        cr: Option<&ObservedDatabase>,
        assessment: &Assessment,
        failed: Option<&Operation>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<()> {
        let ready = cr.is_some_and(is_ready);
        let in_sync = assessment.plan == Plan::InSync;
        let status = if db.deletion_requested {
            DatabaseStatus::Deleting
        } else if failed.is_some() {
            DatabaseStatus::Failed
        } else if !ready {
            DatabaseStatus::Provisioning
        } else if in_sync {
            DatabaseStatus::Ready
        } else {
            DatabaseStatus::Updating
        };
        let drift_text = assessment
            .drifts
            .iter()
            .map(|d| d.field.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut conditions = vec![
            condition(
                db,
                "Ready",
                ready,
                if ready { "Ready" } else { "NotReady" },
                &cr.and_then(|c| c.phase)
                    .map_or("no database resource yet".to_string(), |p| {
                        format!("KubeDB phase {}", p.as_str())
                    }),
                now,
            ),
            condition(
                db,
                "Synced",
                in_sync,
                if in_sync { "InSync" } else { "Drift" },
                &if in_sync {
                    "current state matches desired state".to_string()
                } else if drift_text.is_empty() {
                    "waiting for the cluster".to_string()
                } else {
                    format!("drift in {drift_text}")
                },
                now,
            ),
        ];
        if let Some(op) = failed {
            conditions.push(condition(
                db,
                "Failed",
                true,
                "OperationFailed",
                &format!(
                    "{} failed after {} attempts: {}",
                    op.type_.as_str(),
                    op.attempts,
                    op.error.as_deref().unwrap_or("unknown error")
                ),
                now,
            ));
        }
        let was_drifting = db
            .conditions
            .iter()
            .find(|c| c.type_ == "Synced" && c.status == "False");
        if let (true, Some(drifting)) = (in_sync, was_drifting) {
            report
                .resolved_drift_seconds
                .push((now - drifting.last_transition_time).num_milliseconds() as f64 / 1000.0);
        }
        if !in_sync && !db.deletion_requested {
            let since = conditions[1].last_transition_time;
            for d in &assessment.drifts {
                report
                    .drifted
                    .push((db.id.clone(), d.field.as_str(), since));
            }
        }
        let mut update = ObservedUpdate::default();
        if let Some(cr) = cr {
            if cr.size.is_some() && cr.size != db.current_size {
                update.current_size = cr.size;
            }
            if cr.replicas.is_some() && cr.replicas != db.current_replicas {
                update.current_replicas = cr.replicas;
            }
            if cr.storage_gb.is_some() && cr.storage_gb != db.current_storage_gb {
                update.current_storage_gb = cr.storage_gb;
            }
        }
        if in_sync && db.observed_generation != db.generation {
            update.observed_generation = Some(db.generation);
        }
        if status != db.status {
            update.status = Some(status);
        }
        if conditions != db.conditions {
            update.conditions = Some(conditions);
        }
        if update != ObservedUpdate::default() {
            self.store.update_observed(&db.id, &update).await?;
        }
        Ok(())
    }

    /// Makes the queue agree with the store.
    async fn repair_queue(
        &self,
        ops: &HashMap<String, Operation>,
        planned: Vec<String>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<()> {
        let pending: HashSet<String> = self.queue.pending().await?.into_iter().collect();
        let processing = self.queue.processing(now).await?;
        let deadline =
            chrono::Duration::from_std(self.config.processing_deadline).unwrap_or_default();
        let mut queued: HashSet<String> = pending.clone();
        for item in &processing {
            let op = ops.get(&item.operation_id);
            let worker_alive = op.is_some_and(|op| {
                op.status == OperationStatus::Running && op.claimed_until.is_some_and(|t| t > now)
            });
            let stale = item.since.is_none_or(|t| now - t > deadline);
            if stale && !worker_alive {
                self.queue.requeue(&item.operation_id).await?;
                report.requeued += 1;
                info!(operation_id = %item.operation_id, "returned a stuck id to the queue");
            }
            queued.insert(item.operation_id.clone());
        }
        for id in planned {
            if !queued.contains(&id) {
                self.queue.enqueue(&id).await?;
                queued.insert(id);
            }
        }
        report.pending_depth = self.queue.pending().await?.len();
        report.processing_depth = processing.len() - report.requeued as usize;
        Ok(())
    }

    async fn push_metrics(&self, url: &str, report: &PassReport) -> Result<()> {
        let store = self.store;
        let mut body = PushBody::default();
        let cycles =
            telemetry::durable_total(store, "dbaas_reconciliation_cycle_total", &[], 1.0).await?;
        body.family(
            "dbaas_reconciliation_cycle_total",
            "counter",
            "Reconciliation passes run.",
        )
        .sample("dbaas_reconciliation_cycle_total", &[], cycles);
        body.family(
            "dbaas_reconciliation_cycle_duration_seconds",
            "gauge",
            "Duration of the last pass.",
        )
        .sample(
            "dbaas_reconciliation_cycle_duration_seconds",
            &[],
            report.duration.as_secs_f64(),
        );
        body.family(
            "dbaas_reconciliation_last_success_timestamp_seconds",
            "gauge",
            "When the last pass finished.",
        )
        .sample(
            "dbaas_reconciliation_last_success_timestamp_seconds",
            &[],
            Utc::now().timestamp_millis() as f64 / 1000.0,
        );
        body.family(
            "dbaas_drift_detected_total",
            "counter",
            "Drifted fields detected, by type.",
        );
        for field in drift::Field::ALL {
            let n = report.drifts.get(field.as_str()).copied().unwrap_or(0) as f64;
            let total = telemetry::durable_total(
                store,
                "dbaas_drift_detected_total",
                &[("type", field.as_str())],
                n,
            )
            .await?;
            body.sample(
                "dbaas_drift_detected_total",
                &[("type", field.as_str())],
                total,
            );
        }
        let created = telemetry::durable_total(
            store,
            "dbaas_operations_created_total",
            &[("source", "reconciler")],
            report.operations_created as f64,
        )
        .await?;
        body.family(
            "dbaas_operations_created_total",
            "counter",
            "Operations created.",
        )
        .sample(
            "dbaas_operations_created_total",
            &[("source", "reconciler")],
            created,
        );
        telemetry::durable_histogram(
            store,
            &mut body,
            "dbaas_drift_resolution_seconds",
            "Time from detecting a database's drift to its desired and current state agreeing.",
            &[],
            &report.resolved_drift_seconds,
        )
        .await?;
        body.family(
            "dbaas_state_drift",
            "gauge",
            "1 for each drifted field of a database.",
        );
        for (id, field, _) in &report.drifted {
            body.sample(
                "dbaas_state_drift",
                &[("database_id", id), ("field", field)],
                1.0,
            );
        }
        let drifted: HashSet<&str> = report
            .drifted
            .iter()
            .map(|(id, _, _)| id.as_str())
            .collect();
        body.family(
            "dbaas_databases_drifted",
            "gauge",
            "Databases whose desired and current state differ.",
        )
        .sample("dbaas_databases_drifted", &[], drifted.len() as f64);
        body.family(
            "dbaas_databases",
            "gauge",
            "Databases seen by the last pass.",
        )
        .sample("dbaas_databases", &[], report.databases_seen as f64);
        let oldest = report.drifted.iter().map(|(_, _, since)| *since).min();
        body.family(
            "dbaas_oldest_drift_age_seconds",
            "gauge",
            "Age of the oldest unresolved drift.",
        )
        .sample(
            "dbaas_oldest_drift_age_seconds",
            &[],
            oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0),
        );
        body.family(
            "dbaas_queue_depth",
            "gauge",
            "Operation ids in the queue lists.",
        )
        .sample(
            "dbaas_queue_depth",
            &[("list", "pending")],
            report.pending_depth as f64,
        )
        .sample(
            "dbaas_queue_depth",
            &[("list", "processing")],
            report.processing_depth as f64,
        );
        body.family(
            "dbaas_reconciliation_kube_calls",
            "gauge",
            "Kubernetes API calls made by the last pass.",
        )
        .sample(
            "dbaas_reconciliation_kube_calls",
            &[],
            report.kube_calls as f64,
        );
        telemetry::push(url, "dbaas-reconciler", None, &body).await
    }
}

impl From<OpsChange> for Change {
    fn from(c: OpsChange) -> Self {
        match c {
            OpsChange::Vertical(s) => Change::Size(s),
            OpsChange::Horizontal(n) => Change::Replicas(n),
            OpsChange::VolumeExpansion(g) => Change::StorageGb(g),
        }
    }
}

impl From<Change> for OpsChange {
    fn from(c: Change) -> Self {
        match c {
            Change::Size(s) => OpsChange::Vertical(s),
            Change::Replicas(n) => OpsChange::Horizontal(n),
            Change::StorageGb(g) => OpsChange::VolumeExpansion(g),
        }
    }
}

/// KubeDB reports the database reachable, and it is not being deleted.
pub fn is_ready(cr: &ObservedDatabase) -> bool {
    !cr.deleting
        && matches!(
            cr.phase,
            Some(DatabasePhase::Ready | DatabasePhase::Critical)
        )
}

fn observed_of(cr: &ObservedDatabase) -> Observed {
    Observed {
        size: cr.size,
        replicas: cr.replicas.unwrap_or(0),
        storage_gb: cr.storage_gb.unwrap_or(0),
        ready: is_ready(cr),
        deleting: cr.deleting,
    }
}

/// A condition that keeps its transition time while its status holds.
fn condition(
    db: &Database,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = db
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(now, |c| c.last_transition_time);
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: since,
    }
}

/// `f`'s result with the time it took.
async fn timed<T>(f: impl Future<Output = Result<T>>) -> Result<(T, Duration)> {
    let started = Instant::now();
    f.await.map(|v| (v, started.elapsed()))
}
