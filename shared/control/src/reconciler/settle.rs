//! Settling one database: its active operation first (release, retry,
//! supersede), then at most one new operation from the drift plan.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dbaas_core::catalog::VersionName;
use dbaas_core::domain::{Action, Database, Operation, OperationStatus};
use dbaas_core::drift::{self, Desired, Plan};
use dbaas_core::error::Result;
use dbaas_store::OperationUpdate;
use tracing::{debug, info};

use super::{ClusterView, PassReport, Reconciler};

impl Reconciler<'_> {
    /// Settles one database, given its unfinished operations (`own_ops`);
    /// returns an operation id to enqueue, if any.
    pub(super) async fn reconcile_database(
        &self,
        db: &Database,
        view: &ClusterView,
        ops: &HashMap<String, Operation>,
        own_ops: &[&Operation],
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Option<String>> {
        let cr = view.databases.get(&db.id);
        let observed = cr.map(|c| c.observed(db.current_auth_rotation));
        let in_flight = cr
            .and_then(|c| view.in_flight.get(&c.name))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let desired = Desired {
            size: db.size,
            replicas: db.replicas,
            storage_gb: db.storage_gb,
            // The API admits only names that fit; anything else is left as
            // the CR runs it.
            version: VersionName::new(&db.version)
                .or(observed.and_then(|o| o.version))
                .or_else(|| VersionName::new(db.engine.spec().default_version))
                .expect("engine default versions are short"),
            auth_rotation: db.auth_rotation,
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
                && o.id != Operation::id_for(&db.id, o.type_(), db.generation, db.operation_seq)
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
            plan => match plan.action(&desired) {
                Some(action) => self.plan_operation(db, action, now, report).await,
                None => Ok(None),
            },
        }
    }

    /// Records the operation under its deterministic id, then makes it the
    /// database's active operation; both steps are idempotent.
    async fn plan_operation(
        &self,
        db: &Database,
        action: Action,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Option<String>> {
        let op = Operation::planned(db, action, now);
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
        info!(database_id = %db.id, operation_id = %op.id, r#type = op.type_().as_str(), action = ?op.action, "drift: operation planned");
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
}
