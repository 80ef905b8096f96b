//! The worker: one operation, start to finish.
//!
//! It takes one id from the queue (BLMOVE to the processing list), claims
//! the operation in the store with compare-and-set under a claim token of
//! its own, and makes the change: creates the database CR, deletes it, or
//! creates the OpsRequest (or, for a pause, a resume or a deletion policy,
//! patches the CR). Every object it creates is named after the
//! operation (and attempt), so a worker that replaces a dead one finds the
//! object (AlreadyExists) and follows it instead of creating a second. It
//! follows the object to a final phase or a deadline, records the outcome
//! and the new current state field by field, and only then removes the id
//! from the processing list. A worker stopped by SIGTERM gives its claim up
//! and puts the id back, so the next worker adopts the same object.
//!
//! Every write to the running operation is conditional on the claim token,
//! and the claim is checked again before each cluster write. A worker that
//! was paused past its claim (a GC pause, SIGSTOP, a frozen node) while
//! another took the operation over finds its claim gone at its next write:
//! it stops there, touching neither the operation, the queue nor the
//! cluster ([`Outcome::Lost`]).
//!
//! Before its first cluster write the worker records the name of the object
//! it is about to create, under its claim: a cancel, which succeeds only
//! while no name is recorded, and that write exclude each other, so a
//! cancelled operation never gets an OpsRequest.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::{
    Action, Database, Event, EventType, OnDelete, Operation, OperationStatus, random_token,
};
use dbaas_core::drift::Change;
use dbaas_core::error::{Error, Result};
use dbaas_core::kubedb::{
    self, DATABASE_ID_LABEL, DatabaseManifest, DatabasePhase, ObservedDatabase, ObservedOpsRequest,
    OpsOutcome,
};
use dbaas_core::naming;
use dbaas_queue::Queue;
use dbaas_store::{ObservedUpdate, OperationUpdate, Store};
use serde_json::Value;
use tracing::{info, warn};

use self::metrics::OperationMetrics;

mod metrics;

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
    /// The claim expired and another worker took the operation over: this
    /// one stopped without writing anything.
    Lost(String),
}

/// How following an object ended.
enum Followed {
    Done,
    Failed(String),
    /// The claim is gone: stop without writing.
    Lost,
}

/// The object an operation follows, and how to judge it.
enum Target {
    /// A database CR being created: done once KubeDB reports it ready.
    Database { kind: Kind, name: String },
    /// A database CR being deleted: done once it is gone.
    Gone { kind: Kind, name: String },
    /// An OpsRequest: done when KubeDB reports it successful.
    OpsRequest { kind: Kind, name: String },
    /// A database CR being halted: done once KubeDB reports it Halted.
    Halted { kind: Kind, name: String },
}

impl Target {
    fn kind_and_name(&self) -> (&Kind, &str) {
        match self {
            Target::Database { kind, name }
            | Target::Gone { kind, name }
            | Target::OpsRequest { kind, name }
            | Target::Halted { kind, name } => (kind, name),
        }
    }

    /// The object's phase to show, and its final state if it reached one.
    fn judge(&self, obj: Option<&Value>) -> (Option<String>, Option<Followed>) {
        match self {
            Target::Database { .. } => {
                let cr = obj.and_then(ObservedDatabase::from_value);
                let phase = cr.as_ref().and_then(|c| c.phase).map(|p| p.as_str().into());
                let state = match &cr {
                    Some(c) if c.is_ready() => Some(Followed::Done),
                    None => Some(Followed::Failed("database resource disappeared".into())),
                    _ => None,
                };
                (phase, state)
            }
            Target::Halted { .. } => {
                let cr = obj.and_then(ObservedDatabase::from_value);
                let phase = cr.as_ref().and_then(|c| c.phase).map(|p| p.as_str().into());
                let state = match &cr {
                    Some(c) if c.phase == Some(DatabasePhase::Halted) => Some(Followed::Done),
                    None => Some(Followed::Failed("database resource disappeared".into())),
                    _ => None,
                };
                (phase, state)
            }
            Target::Gone { .. } => match obj {
                None => (Some("Deleted".into()), Some(Followed::Done)),
                Some(_) => (Some("Terminating".into()), None),
            },
            Target::OpsRequest { .. } => {
                let Some(req) = obj.and_then(ObservedOpsRequest::from_value) else {
                    return (
                        None,
                        Some(Followed::Failed("OpsRequest disappeared".into())),
                    );
                };
                let state = match req.outcome() {
                    OpsOutcome::Succeeded => Some(Followed::Done),
                    OpsOutcome::Failed(why) => Some(Followed::Failed(why)),
                    OpsOutcome::Running => None,
                };
                (req.phase.map(|p| p.as_str().to_string()), state)
            }
        }
    }
}

pub struct Worker<'a> {
    pub store: &'a dyn Store,
    pub queue: &'a dyn Queue,
    pub cluster: &'a dyn Cluster,
    pub config: &'a WorkerConfig,
}

/// One claimed operation: what every write is conditional on.
struct Claimed<'a> {
    op: &'a Operation,
    token: &'a str,
}

impl Worker<'_> {
    /// Takes one id and runs its operation; `shutdown` resolving stops it
    /// cleanly.
    pub async fn run_once(&self, shutdown: impl Future<Output = ()>) -> Result<Outcome> {
        let Some(id) = self.queue.dequeue(self.config.dequeue_timeout).await? else {
            return Ok(Outcome::Idle);
        };
        let dequeued = Instant::now();
        let token = claim_token();
        let now = Utc::now();
        let Some(op) = self
            .store
            .claim_operation(&id, now, self.claim_deadline(), &token)
            .await?
        else {
            // Finished, superseded, or held by a live worker: not ours. A
            // live worker's id is still in the processing list under it.
            self.queue.ack(&id).await?;
            return Ok(Outcome::Dropped(id));
        };
        let claimed = Claimed {
            op: &op,
            token: &token,
        };
        let Some(db) = self.store.get_database(&op.database_id).await? else {
            self.finish(
                &claimed,
                OperationStatus::Cancelled,
                Some("database record is gone".into()),
            )
            .await?;
            self.queue.ack(&id).await?;
            return Ok(Outcome::Dropped(id));
        };
        if db.active_operation_id.as_deref() != Some(op.id.as_str()) {
            self.finish(&claimed, OperationStatus::Superseded, None)
                .await?;
            self.queue.ack(&id).await?;
            return Ok(Outcome::Dropped(id));
        }
        info!(operation_id = %op.id, database_id = %db.id, r#type = op.type_().as_str(), attempt = op.attempts, claim = %token, "operation claimed");
        let work = self.execute(&claimed, &db, dequeued);
        tokio::pin!(work);
        tokio::pin!(shutdown);
        let result = tokio::select! {
            r = &mut work => r,
            () = &mut shutdown => {
                // Release the claim so the next worker may take over at once.
                let released = self.store.update_claimed_operation(&op.id, &token, &OperationUpdate {
                    claimed_until: Some(Some(Utc::now())),
                    ..Default::default()
                }).await?;
                if released.is_some() {
                    self.queue.requeue(&op.id).await?;
                }
                warn!(operation_id = %op.id, "stopped by signal; operation returned to the queue");
                return Ok(Outcome::Interrupted(op.id.clone()));
            }
        };
        let outcome = match result {
            Ok(Followed::Done) => self.record_success(&claimed, &db).await?,
            Ok(Followed::Failed(reason)) => self.record_failure(&claimed, &reason).await?,
            Ok(Followed::Lost) => None,
            Err(e @ Error::Invalid(_)) => {
                // The API server rejected what we built: retrying the same
                // body cannot help, but the bound on attempts still applies.
                self.record_failure(&claimed, &e.to_string()).await?
            }
            Err(e) => return Err(e),
        };
        let Some(outcome) = outcome else {
            // Another worker holds the operation now, and its id in the
            // processing list is that worker's: leave both alone.
            warn!(operation_id = %op.id, claim = %token, "claim lost to another worker; stopping without writing");
            return Ok(Outcome::Lost(op.id.clone()));
        };
        self.queue.ack(&op.id).await?;
        if let Some(url) = &self.config.pushgateway_url
            && let Err(e) = self.push_metrics(url, &op, &outcome).await
        {
            warn!(error = %e, "could not push metrics");
        }
        Ok(outcome)
    }

    fn claim_deadline(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.config.claim_ttl).unwrap_or_default()
    }

    /// Makes the operation's change in the cluster (creates the CR or the
    /// OpsRequest, patches or deletes the CR), then follows it. The name of
    /// what it follows is recorded first, under the claim (so the claim is
    /// checked, and a cancel can no longer succeed), before the cluster
    /// write.
    async fn execute(
        &self,
        claimed: &Claimed<'_>,
        db: &Database,
        dequeued: Instant,
    ) -> Result<Followed> {
        let op = claimed.op;
        let ns = &self.config.namespace;
        let cr_name = naming::cr_name(&db.name, &db.id);
        let kind = Kind::database(db.engine);
        let target = match op.action {
            Action::Deprovision => Target::Gone {
                kind: kind.clone(),
                name: cr_name.clone(),
            },
            Action::Change(Change::Paused(true)) => Target::Halted {
                kind: kind.clone(),
                name: cr_name.clone(),
            },
            Action::Change(c) if c.ops_type().is_some() => Target::OpsRequest {
                kind: Kind::ops_request(db.engine),
                name: op.ops_request_name_for_attempt(),
            },
            Action::Provision(_) | Action::Change(_) => Target::Database {
                kind: kind.clone(),
                name: cr_name.clone(),
            },
        };
        let (_, name) = target.kind_and_name();
        let started = OperationUpdate {
            ops_request_name: Some(Some(name.to_string())),
            events: vec![Event::of_operation(
                op,
                EventType::OperationStarted,
                format!("attempt {} started: {name}", op.attempts),
                Utc::now(),
            )],
            ..Default::default()
        };
        if !self.renew(claimed, Some(started)).await? {
            return Ok(Followed::Lost);
        }
        match op.action {
            Action::Provision(spec) => {
                let manifest = DatabaseManifest {
                    engine: db.engine,
                    name: cr_name.clone(),
                    namespace: ns.clone(),
                    version: db.version.clone(),
                    size: spec.size,
                    replicas: spec.replicas,
                    storage_gb: spec.storage_gb,
                    database_id: db.id.clone(),
                    tenant_id: db.tenant_id.clone(),
                    deletion_policy: db.deletion_policy.kubedb(),
                };
                self.cluster.ensure_namespace(ns).await?;
                self.create(
                    op,
                    &kind,
                    &kubedb::database_object(&manifest),
                    "database resource",
                )
                .await?;
            }
            Action::Deprovision => {
                self.apply_deletion_policy(db, &kind, &cr_name).await?;
                self.cluster.delete(&kind, ns, &cr_name).await?;
            }
            Action::Change(change) => match kubedb::database_patch(&change) {
                Some(patch) => {
                    self.cluster
                        .merge_patch(&kind, ns, &cr_name, &patch)
                        .await?;
                    info!(operation_id = %op.id, name = %cr_name, patch = %patch, "database resource patched");
                }
                None => {
                    let body = kubedb::ops_request_object(
                        db.engine,
                        name,
                        ns,
                        &cr_name,
                        &change,
                        &[
                            (DATABASE_ID_LABEL, db.id.as_str()),
                            ("dbaas.io/operation-id", op.id.as_str()),
                        ],
                    );
                    let ops_kind = Kind::ops_request(db.engine);
                    self.create(op, &ops_kind, &body, "OpsRequest").await?;
                }
            },
        }
        info!(operation_id = %op.id, object = name, since_dequeue_ms = dequeued.elapsed().as_millis() as u64, "following");
        self.follow(claimed, &target).await
    }

    /// Puts the user's deletion policy on the CR before it is deleted.
    /// KubeDB forces `Halt` on a halted database, so a paused one is
    /// resumed first unless `halt` is what the user chose.
    async fn apply_deletion_policy(&self, db: &Database, kind: &Kind, name: &str) -> Result<()> {
        let ns = &self.config.namespace;
        let Some(cr) = self
            .cluster
            .get(kind, ns, name)
            .await?
            .as_ref()
            .and_then(ObservedDatabase::from_value)
        else {
            return Ok(());
        };
        let wanted = db.deletion_policy.kubedb();
        if cr.deleting || cr.deletion_policy == Some(wanted) {
            return Ok(());
        }
        if cr.halted && db.deletion_policy != OnDelete::Halt {
            let resume = kubedb::database_patch(&Change::Paused(false)).expect("a CR patch");
            self.cluster.merge_patch(kind, ns, name, &resume).await?;
        }
        let policy = kubedb::database_patch(&Change::DeletionPolicy(db.deletion_policy))
            .expect("a CR patch");
        self.cluster.merge_patch(kind, ns, name, &policy).await?;
        Ok(())
    }

    /// Creates `object`, or adopts it when a previous worker of this
    /// attempt created it already.
    async fn create(&self, op: &Operation, kind: &Kind, object: &Value, what: &str) -> Result<()> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match self
            .cluster
            .create(kind, &self.config.namespace, object)
            .await
        {
            Ok(_) => info!(operation_id = %op.id, name, "{what} created"),
            Err(Error::AlreadyExists(_)) => {
                info!(operation_id = %op.id, name, "{what} exists; adopting it")
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Extends the claim (with `also` set in the same write); false when
    /// the claim was lost.
    async fn renew(&self, claimed: &Claimed<'_>, also: Option<OperationUpdate>) -> Result<bool> {
        let update = OperationUpdate {
            claimed_until: Some(Some(self.claim_deadline())),
            ..also.unwrap_or_default()
        };
        Ok(self
            .store
            .update_claimed_operation(&claimed.op.id, claimed.token, &update)
            .await?
            .is_some())
    }

    /// Polls the object until it is judged final or the deadline passes,
    /// renewing the claim and recording phase changes.
    async fn follow(&self, claimed: &Claimed<'_>, target: &Target) -> Result<Followed> {
        let op = claimed.op;
        let (kind, name) = target.kind_and_name();
        let started = Instant::now();
        let mut last_phase: Option<String> = None;
        loop {
            let obj = self.cluster.get(kind, &self.config.namespace, name).await?;
            let (phase, state) = target.judge(obj.as_ref());
            let mut update = OperationUpdate::default();
            if phase != last_phase {
                info!(operation_id = %op.id, object = name, phase = phase.as_deref().unwrap_or("none"), "phase changed");
                update.ops_request_phase = Some(phase.clone());
                last_phase = phase;
            }
            if !self.renew(claimed, Some(update)).await? {
                return Ok(Followed::Lost);
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

    /// Records the new current state and the success; `None` when the
    /// claim was lost before anything was written.
    async fn record_success(
        &self,
        claimed: &Claimed<'_>,
        db: &Database,
    ) -> Result<Option<Outcome>> {
        let op = claimed.op;
        if !self.renew(claimed, None).await? {
            return Ok(None);
        }
        if op.action != Action::Deprovision {
            // What the action set is what the cluster now runs.
            let target = op.action.desired_state();
            let update = ObservedUpdate {
                current_size: target.size,
                current_replicas: target.replicas,
                current_storage_gb: target.storage_gb,
                current_version: target.version,
                current_auth_rotation: target.auth_rotation,
                current_paused: target.paused,
                current_restarts: target.restarts,
                current_deletion_policy: target.deletion_policy,
                ..Default::default()
            };
            self.store.update_observed(&db.id, &update).await?;
        }
        if !self
            .finish(claimed, OperationStatus::Succeeded, None)
            .await?
        {
            return Ok(None);
        }
        self.store.end_operation(&db.id, &op.id).await?;
        info!(operation_id = %op.id, database_id = %db.id, r#type = op.type_().as_str(), "operation succeeded");
        Ok(Some(Outcome::Succeeded(op.id.clone())))
    }

    /// Records the failure and when to retry; `None` when the claim was
    /// lost.
    async fn record_failure(&self, claimed: &Claimed<'_>, reason: &str) -> Result<Option<Outcome>> {
        let op = claimed.op;
        let delay = self.config.retry_delay(op.attempts);
        let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let recorded = self
            .store
            .update_claimed_operation(
                &op.id,
                claimed.token,
                &OperationUpdate {
                    status: Some(OperationStatus::Failed),
                    error: Some(Some(reason.to_string())),
                    claimed_until: Some(None),
                    next_attempt_at: Some(Some(next)),
                    finished_at: Some(Some(Utc::now())),
                    events: vec![Event::of_operation(
                        op,
                        EventType::OperationFailed,
                        format!("attempt {} failed: {reason}", op.attempts),
                        Utc::now(),
                    )],
                    ..Default::default()
                },
            )
            .await?;
        if recorded.is_none() {
            return Ok(None);
        }
        warn!(operation_id = %op.id, attempt = op.attempts, retry_in_ms = delay.as_millis() as u64, error = reason, "operation failed");
        Ok(Some(Outcome::Failed(op.id.clone())))
    }

    /// Ends the claimed operation with `status`; false when the claim was
    /// lost.
    async fn finish(
        &self,
        claimed: &Claimed<'_>,
        status: OperationStatus,
        error: Option<String>,
    ) -> Result<bool> {
        Ok(self
            .store
            .update_claimed_operation(
                &claimed.op.id,
                claimed.token,
                &OperationUpdate {
                    status: Some(status),
                    claimed_until: Some(None),
                    finished_at: Some(Some(Utc::now())),
                    events: vec![Event::of_operation(
                        claimed.op,
                        match status {
                            OperationStatus::Succeeded => EventType::OperationSucceeded,
                            OperationStatus::Cancelled => EventType::OperationCancelled,
                            _ => EventType::OperationSuperseded,
                        },
                        error.clone().unwrap_or_else(|| status.as_str().to_string()),
                        Utc::now(),
                    )],
                    error: Some(error),
                    ..Default::default()
                },
            )
            .await?
            .is_some())
    }

    async fn push_metrics(&self, url: &str, op: &Operation, outcome: &Outcome) -> Result<()> {
        let result = match outcome {
            Outcome::Succeeded(_) => "succeeded",
            Outcome::Failed(_) => "failed",
            _ => return Ok(()),
        };
        let metrics = OperationMetrics::default();
        metrics.record(self.store, op, result).await?;
        // One group per type and outcome, so concurrent workers do not
        // replace each other's series.
        crate::metrics::push(
            url,
            "dbaas-worker",
            Some(&format!("{}-{result}", op.type_().as_str())),
            &metrics.registry,
        )
        .await
    }
}

/// A claim token: this process and a random part, so two claims of one
/// operation (even by one process) never share a token.
fn claim_token() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_string());
    format!("{host}-{}-{}", std::process::id(), random_token(8))
}
