//! The worker: one operation, start to finish.
//!
//! It takes one id from the queue (BLMOVE to the processing list), claims
//! the operation in the store with compare-and-set, and makes the change:
//! creates the database CR, deletes it, or creates the OpsRequest. Every
//! object it creates is named after the operation (and attempt), so a
//! worker that replaces a dead one finds the object (AlreadyExists) and
//! follows it instead of creating a second. It follows the object to a
//! final phase or a deadline, records the outcome and the new current
//! state field by field, and only then removes the id from the processing
//! list. A worker stopped by SIGTERM gives its claim up and puts the id
//! back, so the next worker adopts the same object.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::{info, warn};

use crate::cluster::{Cluster, Kind};
use crate::domain::{Database, Operation, OperationStatus, OperationType};
use crate::error::{Error, Result};
use crate::kubedb::{
    self, DATABASE_ID_LABEL, DatabaseManifest, DeletionPolicy, ObservedDatabase,
    ObservedOpsRequest, OpsChange, OpsPhase,
};
use crate::naming;
use crate::queue::Queue;
use crate::reconciler::is_ready;
use crate::store::{ObservedUpdate, OperationUpdate, Store};
use crate::telemetry::{self, PushBody};

/// Settings of one worker run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub namespace: String,
    /// How long to wait for an id before exiting.
    pub dequeue_timeout: Duration,
    /// How long a claim lasts; renewed while following.
    pub claim_ttl: Duration,
    /// How often the object is polled.
    pub poll_interval: Duration,
    /// Give up following after this long and record a failure.
    pub operation_deadline: Duration,
    /// Delay before the first retry; doubles with every attempt.
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    pub deletion_policy: DeletionPolicy,
    pub pushgateway_url: Option<String>,
}

impl WorkerConfig {
    /// The delay after failed attempt number `attempts` (1-based): the
    /// backoff doubles with every attempt, up to the maximum.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.max_retry_backoff)
    }
}

/// How a run ended; the binary maps it to an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The queue was empty.
    Idle,
    /// The id named no operation this worker may run (done, taken,
    /// superseded); it was dropped from the queue.
    Dropped(String),
    Succeeded(String),
    /// Recorded as failed; the reconciler retries it after a backoff.
    Failed(String),
    /// Stopped by a signal: claim released, id back in the queue.
    Interrupted(String),
}

/// How following an object ended.
enum Followed {
    Done,
    Failed(String),
}

pub struct Worker<'a> {
    pub store: &'a dyn Store,
    pub queue: &'a dyn Queue,
    pub cluster: &'a dyn Cluster,
    pub config: &'a WorkerConfig,
}

impl Worker<'_> {
    /// Takes one id and runs its operation; `shutdown` resolving stops it
    /// cleanly.
    pub async fn run_once(&self, shutdown: impl Future<Output = ()>) -> Result<Outcome> {
        let Some(id) = self.queue.dequeue(self.config.dequeue_timeout).await? else {
            return Ok(Outcome::Idle);
        };
        let dequeued = Instant::now();
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.config.claim_ttl).unwrap_or_default();
        let Some(op) = self.store.claim_operation(&id, now, until).await? else {
            // Finished, superseded, or held by a live worker: not ours. A
            // live worker's id is still in the processing list under it.
            self.queue.ack(&id).await?;
            return Ok(Outcome::Dropped(id));
        };
        let Some(db) = self.store.get_database(&op.database_id).await? else {
            self.finish(
                &op,
                OperationStatus::Cancelled,
                Some("database record is gone".into()),
            )
            .await?;
            self.queue.ack(&id).await?;
            return Ok(Outcome::Dropped(id));
        };
        if db.active_operation_id.as_deref() != Some(op.id.as_str()) {
            self.finish(&op, OperationStatus::Superseded, None).await?;
            self.queue.ack(&id).await?;
            return Ok(Outcome::Dropped(id));
        }
        info!(operation_id = %op.id, database_id = %db.id, r#type = op.type_.as_str(), attempt = op.attempts, "operation claimed");
        let work = self.execute(&op, &db, dequeued);
        tokio::pin!(work);
        tokio::pin!(shutdown);
        let result = tokio::select! {
            r = &mut work => r,
            () = &mut shutdown => {
                // Release the claim so the next worker may take over at once.
                self.store.update_operation(&op.id, &[OperationStatus::Running], &OperationUpdate {
                    claimed_until: Some(Some(Utc::now())),
                    ..Default::default()
                }).await?;
                self.queue.requeue(&op.id).await?;
                warn!(operation_id = %op.id, "stopped by signal; operation returned to the queue");
                return Ok(Outcome::Interrupted(op.id.clone()));
            }
        };
        let outcome = match result {
            Ok(Followed::Done) => {
                self.record_success(&op, &db).await?;
                Outcome::Succeeded(op.id.clone())
            }
            Ok(Followed::Failed(reason)) => {
                self.record_failure(&op, &reason).await?;
                Outcome::Failed(op.id.clone())
            }
            Err(e @ Error::Invalid(_)) => {
                // The API server rejected what we built: retrying the same
                // body cannot help, but the bound on attempts still applies.
                self.record_failure(&op, &e.to_string()).await?;
                Outcome::Failed(op.id.clone())
            }
            Err(e) => return Err(e),
        };
        self.queue.ack(&op.id).await?;
        if let Some(url) = &self.config.pushgateway_url
            && let Err(e) = self.push_metrics(url, &op, &outcome).await
        {
            warn!(error = %e, "could not push metrics");
        }
        Ok(outcome)
    }

    async fn execute(&self, op: &Operation, db: &Database, dequeued: Instant) -> Result<Followed> {
        let ns = &self.config.namespace;
        let cr_name = naming::cr_name(&db.name, &db.id);
        let kind = Kind::database(db.engine);
        match op.type_ {
            OperationType::Provision => {
                let manifest = DatabaseManifest {
                    engine: db.engine,
                    name: cr_name.clone(),
                    namespace: ns.clone(),
                    version: db.version.clone(),
                    size: op.desired_state.size.unwrap_or(db.size),
                    replicas: op.desired_state.replicas.unwrap_or(db.replicas),
                    storage_gb: op.desired_state.storage_gb.unwrap_or(db.storage_gb),
                    database_id: db.id.clone(),
                    tenant_id: db.tenant_id.clone(),
                    deletion_policy: self.config.deletion_policy,
                };
                self.cluster.ensure_namespace(ns).await?;
                match self
                    .cluster
                    .create(&kind, ns, &kubedb::database_object(&manifest))
                    .await
                {
                    Ok(_) => {
                        info!(operation_id = %op.id, name = %cr_name, "database resource created")
                    }
                    Err(Error::AlreadyExists(_)) => {
                        info!(operation_id = %op.id, name = %cr_name, "database resource exists; adopting it")
                    }
                    Err(e) => return Err(e),
                }
                self.note_object(op, &cr_name, dequeued).await?;
                self.follow(
                    op,
                    |obj| {
                        let cr = obj.and_then(ObservedDatabase::from_value);
                        let phase = cr
                            .as_ref()
                            .and_then(|c| c.phase)
                            .map(|p| p.as_str().to_string());
                        let state = match &cr {
                            Some(c) if is_ready(c) => Some(Followed::Done),
                            None => Some(Followed::Failed("database resource disappeared".into())),
                            _ => None,
                        };
                        (phase, state)
                    },
                    &kind,
                    &cr_name,
                )
                .await
            }
            OperationType::Deprovision => {
                self.cluster.delete(&kind, ns, &cr_name).await?;
                self.note_object(op, &cr_name, dequeued).await?;
                self.follow(
                    op,
                    |obj| match obj {
                        None => (Some("Deleted".into()), Some(Followed::Done)),
                        Some(_) => (Some("Terminating".into()), None),
                    },
                    &kind,
                    &cr_name,
                )
                .await
            }
            OperationType::ScaleVertical
            | OperationType::ScaleHorizontal
            | OperationType::ExpandStorage => {
                let change = ops_change(op)
                    .ok_or_else(|| Error::Invalid(format!("operation {} has no target", op.id)))?;
                let name = op.ops_request_name_for_attempt();
                let ops_kind = Kind::ops_request(db.engine);
                let body = kubedb::ops_request_object(
                    db.engine,
                    &name,
                    ns,
                    &cr_name,
                    &change,
                    &[
                        (DATABASE_ID_LABEL, db.id.as_str()),
                        ("dbaas.io/operation-id", op.id.as_str()),
                    ],
                );
                match self.cluster.create(&ops_kind, ns, &body).await {
                    Ok(_) => {
                        info!(operation_id = %op.id, ops_request = %name, "OpsRequest created")
                    }
                    Err(Error::AlreadyExists(_)) => {
                        info!(operation_id = %op.id, ops_request = %name, "OpsRequest exists; adopting it")
                    }
                    Err(e) => return Err(e),
                }
                self.note_object(op, &name, dequeued).await?;
                self.follow(
                    op,
                    |obj| {
                        let Some(req) = obj.and_then(ObservedOpsRequest::from_value) else {
                            return (
                                None,
                                Some(Followed::Failed("OpsRequest disappeared".into())),
                            );
                        };
                        let why = || {
                            req.message
                                .clone()
                                .or(req.reason.clone())
                                .unwrap_or_default()
                        };
                        let state = match req.phase {
                            Some(OpsPhase::Successful) => Some(Followed::Done),
                            Some(OpsPhase::Failed) => {
                                Some(Followed::Failed(format!("OpsRequest failed: {}", why())))
                            }
                            Some(OpsPhase::Skipped) => Some(Followed::Failed(
                                "OpsRequest skipped by a newer request".into(),
                            )),
                            Some(OpsPhase::Denied) => {
                                Some(Followed::Failed(format!("OpsRequest denied: {}", why())))
                            }
                            _ => None,
                        };
                        (req.phase.map(|p| p.as_str().to_string()), state)
                    },
                    &ops_kind,
                    &name,
                )
                .await
            }
        }
    }

    /// Records the object's name on the operation.
    async fn note_object(&self, op: &Operation, name: &str, dequeued: Instant) -> Result<()> {
        info!(operation_id = %op.id, object = name, since_dequeue_ms = dequeued.elapsed().as_millis() as u64, "following");
        self.store
            .update_operation(
                &op.id,
                &[OperationStatus::Running],
                &OperationUpdate {
                    ops_request_name: Some(Some(name.to_string())),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// Polls the object until `judge` gives a final state or the deadline
    /// passes, renewing the claim and recording phase changes.
    async fn follow(
        &self,
        op: &Operation,
        judge: impl Fn(Option<&serde_json::Value>) -> (Option<String>, Option<Followed>),
        kind: &Kind,
        name: &str,
    ) -> Result<Followed> {
        let started = Instant::now();
        let mut last_phase: Option<String> = None;
        loop {
            let obj = self.cluster.get(kind, &self.config.namespace, name).await?;
            let (phase, state) = judge(obj.as_ref());
            let now = Utc::now();
            let renew = now + chrono::Duration::from_std(self.config.claim_ttl).unwrap_or_default();
            let mut update = OperationUpdate {
                claimed_until: Some(Some(renew)),
                ..Default::default()
            };
            if phase != last_phase {
                info!(operation_id = %op.id, object = name, phase = phase.as_deref().unwrap_or("none"), "phase changed");
                update.ops_request_phase = Some(phase.clone());
                last_phase = phase;
            }
            if self
                .store
                .update_operation(&op.id, &[OperationStatus::Running], &update)
                .await?
                .is_none()
            {
                return Ok(Followed::Failed(
                    "operation was taken over by another worker".into(),
                ));
            }
            if let Some(state) = state {
                return Ok(state);
            }
            if started.elapsed() > self.config.operation_deadline {
                return Ok(Followed::Failed(format!(
                    "no final phase within {:?} (last phase {})",
                    self.config.operation_deadline,
                    last_phase.as_deref().unwrap_or("none")
                )));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    async fn record_success(&self, op: &Operation, db: &Database) -> Result<()> {
        let ds = &op.desired_state;
        let update = ObservedUpdate {
            current_size: ds.size,
            current_replicas: ds.replicas,
            current_storage_gb: ds.storage_gb,
            ..Default::default()
        };
        if op.type_ != OperationType::Deprovision {
            self.store.update_observed(&db.id, &update).await?;
        }
        self.finish(op, OperationStatus::Succeeded, None).await?;
        self.store.end_operation(&db.id, &op.id).await?;
        info!(operation_id = %op.id, database_id = %db.id, r#type = op.type_.as_str(), "operation succeeded");
        Ok(())
    }

    async fn record_failure(&self, op: &Operation, reason: &str) -> Result<()> {
        let delay = self.config.retry_delay(op.attempts);
        let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.store
            .update_operation(
                &op.id,
                &[OperationStatus::Running],
                &OperationUpdate {
                    status: Some(OperationStatus::Failed),
                    error: Some(Some(reason.to_string())),
                    claimed_until: Some(None),
                    next_attempt_at: Some(Some(next)),
                    finished_at: Some(Some(Utc::now())),
                    ..Default::default()
                },
            )
            .await?;
        warn!(operation_id = %op.id, attempt = op.attempts, retry_in_ms = delay.as_millis() as u64, error = reason, "operation failed");
        Ok(())
    }

    async fn finish(
        &self,
        op: &Operation,
        status: OperationStatus,
        error: Option<String>,
    ) -> Result<()> {
        self.store
            .update_operation(
                &op.id,
                &[OperationStatus::Running, OperationStatus::Pending],
                &OperationUpdate {
                    status: Some(status),
                    error: Some(error),
                    claimed_until: Some(None),
                    finished_at: Some(Some(Utc::now())),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    async fn push_metrics(&self, url: &str, op: &Operation, outcome: &Outcome) -> Result<()> {
        let result = match outcome {
            Outcome::Succeeded(_) => "succeeded",
            Outcome::Failed(_) => "failed",
            _ => return Ok(()),
        };
        let labels = [("type", op.type_.as_str()), ("outcome", result)];
        let mut body = PushBody::default();
        let total =
            telemetry::durable_total(self.store, "dbaas_operations_total", &labels, 1.0).await?;
        body.family(
            "dbaas_operations_total",
            "counter",
            "Operations finished, by type and outcome.",
        )
        .sample("dbaas_operations_total", &labels, total);
        let seconds = (Utc::now() - op.created_at).num_milliseconds() as f64 / 1000.0;
        telemetry::durable_histogram(
            self.store,
            &mut body,
            "dbaas_operation_duration_seconds",
            "Time from planning an operation to its end.",
            &labels,
            &[seconds],
        )
        .await?;
        // One group per type and outcome, so concurrent workers do not
        // replace each other's series.
        telemetry::push(
            url,
            "dbaas-worker",
            Some(&format!("{}-{result}", op.type_.as_str())),
            &body,
        )
        .await
    }
}

fn ops_change(op: &Operation) -> Option<OpsChange> {
    let ds = &op.desired_state;
    match op.type_ {
        OperationType::ScaleVertical => ds.size.map(OpsChange::Vertical),
        OperationType::ScaleHorizontal => ds.replicas.map(OpsChange::Horizontal),
        OperationType::ExpandStorage => ds.storage_gb.map(OpsChange::VolumeExpansion),
        OperationType::Provision | OperationType::Deprovision => None,
    }
}
