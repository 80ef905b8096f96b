//! Recording what a pass saw: observed fields, status and conditions,
//! written only where they changed.

use chrono::{DateTime, Utc};
use dbaas_core::domain::{
    Condition, Database, DatabaseStatus, Event, EventType, OnDelete, Operation,
};
use dbaas_core::drift::{Assessment, Plan};
use dbaas_core::kubedb::ObservedDatabase;
use dbaas_store::ObservedUpdate;

use super::{PassReport, Reconciler};

impl Reconciler<'_> {
    /// Observed fields, status and conditions to write, where they changed.
    pub(super) fn record(
        &self,
        db: &Database,
        cr: Option<&ObservedDatabase>,
        assessment: &Assessment,
        failed: Option<&Operation>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Option<ObservedUpdate> {
        let ready = cr.is_some_and(ObservedDatabase::is_ready);
        let halted = cr.is_some_and(|c| c.halted);
        let in_sync = assessment.plan == Plan::InSync
            || (assessment.plan == Plan::Paused && assessment.drifts.is_empty());
        let status = if db.deletion_requested {
            DatabaseStatus::Deleting
        } else if failed.is_some() {
            DatabaseStatus::Failed
        } else if halted && db.paused {
            DatabaseStatus::Paused
        } else if halted {
            // Being resumed.
            DatabaseStatus::Updating
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
                } else if assessment.plan == Plan::Paused {
                    format!("paused: drift in {drift_text} is applied after the resume")
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
                    op.type_().as_str(),
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
            if cr.version.is_some() && cr.version != db.current_version {
                update.current_version = cr.version.clone();
            }
            if cr.halted != db.current_paused {
                update.current_paused = Some(cr.halted);
            }
            let policy = cr.deletion_policy.and_then(OnDelete::from_kubedb);
            if policy.is_some() && policy != db.current_deletion_policy {
                update.current_deletion_policy = policy;
            }
            // KubeDB has made the Services and the Secret once the database
            // is ready.
            let connection = ready.then(|| cr.connection());
            if connection.is_some() && connection != db.connection {
                update.connection = connection;
            }
        }
        if in_sync && db.observed_generation != db.generation {
            update.observed_generation = Some(db.generation);
        }
        if status != db.status {
            update.status = Some(status);
            update.events.push(Event::new(
                db,
                EventType::StatusChanged,
                None,
                format!("{} → {}", db.status.as_str(), status.as_str()),
                now,
            ));
        }
        if conditions != db.conditions {
            update.conditions = Some(conditions);
        }
        (update != ObservedUpdate::default()).then_some(update)
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
