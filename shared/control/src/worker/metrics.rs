//! What a worker pushes after an operation: typed metrics, one field per
//! family.

use chrono::Utc;
use dbaas_core::domain::Operation;
use dbaas_core::error::Result;
use dbaas_store::Store;
use prometheus::{CounterVec, Opts, Registry};

use crate::metrics::{DurableHistogram, durable_total, register};

/// The families of one worker run, in a registry of their own.
pub struct OperationMetrics {
    pub registry: Registry,
    operations: CounterVec,
    duration: DurableHistogram,
}

impl Default for OperationMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        OperationMetrics {
            operations: register(
                &registry,
                &CounterVec::new(
                    Opts::new(
                        "dbaas_operations_total",
                        "Operations finished, by type and outcome.",
                    ),
                    &["type", "outcome"],
                )
                .expect("valid metric"),
            ),
            duration: register(
                &registry,
                &DurableHistogram::new(
                    "dbaas_operation_duration_seconds",
                    "Time from planning an operation to its end.",
                    &["type", "outcome"],
                ),
            ),
            registry,
        }
    }
}

impl OperationMetrics {
    /// Counts `op` as finished with `outcome` and observes its duration,
    /// adding both to the durable totals in `store`.
    pub async fn record(&self, store: &dyn Store, op: &Operation, outcome: &str) -> Result<()> {
        let type_ = op.type_().as_str();
        let labels = [("type", type_), ("outcome", outcome)];
        let total = durable_total(store, "dbaas_operations_total", &labels, 1.0).await?;
        self.operations
            .with_label_values(&[type_, outcome])
            .inc_by(total);
        let seconds = (Utc::now() - op.created_at).num_milliseconds() as f64 / 1000.0;
        self.duration.observe(store, &labels, &[seconds]).await
    }
}
