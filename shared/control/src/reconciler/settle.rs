//! Settling one database: its active operation first (release, retry,
//! supersede), then at most one new operation from the drift plan.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dbaas_core::domain::{
    Action, Database, Event, EventType, OnDelete, Operation, OperationStatus,
};
use dbaas_core::drift::{self, Plan};
use dbaas_core::error::Result;
use dbaas_store::{DesiredChange, OperationUpdate};
use tracing::{debug, info};

use super::{ClusterView, Planned, Reconciler, Settled};

impl Reconciler<'_> {
    /// Settles one database, given its unfinished operations (`own_ops`):
    /// makes the rarer writes itself and leaves in `out` what the pass
    /// writes with the rest of the batch. Returns an operation id to
    /// enqueue, if any.
    pub(super) async fn reconcile_database(
        &self,
        db: &Database,
        view: &ClusterView,
        ops: &HashMap<String, Operation>,
        own_ops: &[&Operation],
        now: DateTime<Utc>,
        out: &mut Settled,
    ) -> Result<Option<String>> {
        let report = &mut out.report;
        let cr = view.databases.get(&db.id);
        let observed = cr.map(|c| c.observed(db.current_auth_rotation, db.current_restarts));
        let in_flight = cr
            .and_then(|c| view.in_flight.get(&c.name))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let desired = db.desired(observed.as_ref());
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
                    out.observed = self.record(db, cr, &assessment, None, now, report);
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
                        out.observed = self.record(db, cr, &assessment, None, now, report);
                        return Ok(Some(op.id.clone()));
                    }
                }
                Some(op) if op.status == OperationStatus::Failed => {
                    if op.target_generation < db.generation {
                        if self.supersede(db, op).await? {
                            report.superseded += 1;
                        }
                    } else if op.attempts < self.config.max_attempts {
                        out.observed = self.record(db, cr, &assessment, None, now, report);
                        if op.next_attempt_at.is_none_or(|t| t <= now) && self.retry(op).await? {
                            report.retries += 1;
                            return Ok(Some(op.id.clone()));
                        }
                        return Ok(None);
                    } else {
                        failed_past_bound = Some(op);
                    }
                }
                // Finished (or vanished): release the database, unless it
                // was cancelled and its change is still to be taken back.
                _ => {
                    let ended = self.store.get_operation(op_id).await?;
                    if let Some(op) = ended.filter(|o| o.status == OperationStatus::Cancelled)
                        && self.take_back(db, &op, now).await?
                    {
                        // Re-read next pass, with the new generation.
                        return Ok(None);
                    }
                    self.store.end_operation(&db.id, op_id).await?;
                }
            }
        }
        out.observed = self.record(db, cr, &assessment, failed_past_bound, now, report);
        if failed_past_bound.is_some() {
            // Stays failed until the user changes desired state.
            return Ok(None);
        }
        match assessment.plan {
            Plan::Finalize => {
                let message = match db.deletion_policy {
                    OnDelete::Halt => {
                        "deleted; its volumes and Secret were kept (deletion policy halt)"
                    }
                    OnDelete::Delete => "deleted with its volumes; the Secret was kept",
                    OnDelete::Wipeout => "deleted with its volumes and Secret",
                };
                out.finalize = Some(Event::new(db, EventType::Deleted, None, message, now));
                Ok(None)
            }
            plan => match plan.action(&desired) {
                Some(action) => {
                    out.planned = Some(plan_operation(db, action, now));
                    Ok(None)
                }
                None => Ok(None),
            },
        }
    }

    /// The API takes a cancelled operation's change back right after the
    /// cancel; if it died in between, this does it (or the change would be
    /// planned again). Only while no newer desired change landed. True when
    /// it wrote.
    async fn take_back(&self, db: &Database, op: &Operation, now: DateTime<Utc>) -> Result<bool> {
        let Some(back) = db
            .taken_back(op)
            .filter(|_| op.target_generation == db.generation)
        else {
            return Ok(false);
        };
        let change = DesiredChange {
            events: vec![Event::of_operation(
                op,
                EventType::DesiredChanged,
                "the cancelled change was taken back",
                now,
            )],
            ..DesiredChange::setting(back)
        };
        Ok(self
            .store
            .update_desired(&db.id, db.generation, &change)
            .await?
            .is_some())
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
                    events: vec![Event::of_operation(
                        op,
                        EventType::OperationSuperseded,
                        "superseded by a newer desired state",
                        Utc::now(),
                    )],
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
        let next = Operation {
            attempts: op.attempts + 1,
            ..op.clone()
        };
        let retried = Event::of_operation(
            &next,
            EventType::OperationRetried,
            format!(
                "attempt {} after: {}",
                next.attempts,
                op.error.as_deref().unwrap_or("a failure")
            ),
            Utc::now(),
        );
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
                    events: vec![retried],
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

/// The operation for `action` under its deterministic id, with its event;
/// the pass records it, then makes it the database's active one (both
/// idempotent).
fn plan_operation(db: &Database, action: Action, now: DateTime<Utc>) -> Planned {
    let operation = Operation::planned(db, action, now);
    let event = Event::of_operation(
        &operation,
        EventType::OperationPlanned,
        format!(
            "{} planned: {}",
            operation.type_().as_str(),
            describe(action)
        ),
        now,
    );
    Planned {
        operation,
        event,
        expected_seq: db.operation_seq,
    }
}

/// The target of an action, for people: `size db.t3.large, replicas 3`.
pub(crate) fn describe(action: Action) -> String {
    match serde_json::to_value(action.desired_state()) {
        Ok(serde_json::Value::Object(fields)) if !fields.is_empty() => fields
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k} {s}"),
                v => format!("{k} {v}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "the database resource".to_string(),
    }
}
