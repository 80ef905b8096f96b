//! Repairing the queue from the store, the source of truth: pending
//! operations missing from Redis are enqueued again, and ids stuck in the
//! processing list of a dead worker go back to pending.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use dbaas_core::domain::{Operation, OperationStatus};
use dbaas_core::error::Result;
use tracing::info;

use super::{PassReport, Reconciler};

impl Reconciler<'_> {
    /// Makes the queue agree with the store.
    pub(super) async fn repair_queue(
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
}
