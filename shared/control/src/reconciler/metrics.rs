//! What a pass pushes: typed metrics, one field per family.

use std::collections::HashSet;

use chrono::Utc;
use dbaas_core::drift::Field;
use dbaas_core::error::Result;
use dbaas_store::Store;
use prometheus::{Counter, CounterVec, Gauge, GaugeVec, Opts, Registry};

use super::PassReport;
use crate::metrics::{DurableHistogram, durable_total, register};

/// The families of one pass, in a registry of their own.
pub struct PassMetrics {
    pub registry: Registry,
    cycles: Counter,
    cycle_duration: Gauge,
    last_success: Gauge,
    drift_detected: CounterVec,
    operations_created: CounterVec,
    drift_resolution: DurableHistogram,
    state_drift: GaugeVec,
    databases_drifted: Gauge,
    databases: Gauge,
    oldest_drift_age: Gauge,
    queue_depth: GaugeVec,
    kube_calls: Gauge,
}

impl Default for PassMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let counter =
            |name: &str, help: &str| register(r, &Counter::new(name, help).expect("valid metric"));
        let gauge =
            |name: &str, help: &str| register(r, &Gauge::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                &CounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                &GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        PassMetrics {
            cycles: counter(
                "dbaas_reconciliation_cycle_total",
                "Reconciliation passes run.",
            ),
            cycle_duration: gauge(
                "dbaas_reconciliation_cycle_duration_seconds",
                "Duration of the last pass.",
            ),
            last_success: gauge(
                "dbaas_reconciliation_last_success_timestamp_seconds",
                "When the last pass finished.",
            ),
            drift_detected: counter_vec(
                "dbaas_drift_detected_total",
                "Drifted fields detected, by type.",
                &["type"],
            ),
            operations_created: counter_vec(
                "dbaas_operations_created_total",
                "Operations created.",
                &["source"],
            ),
            drift_resolution: register(
                r,
                &DurableHistogram::new(
                    "dbaas_drift_resolution_seconds",
                    "Time from detecting a database's drift to its desired and current state agreeing.",
                    &[],
                ),
            ),
            state_drift: gauge_vec(
                "dbaas_state_drift",
                "1 for each drifted field of a database.",
                &["database_id", "field"],
            ),
            databases_drifted: gauge(
                "dbaas_databases_drifted",
                "Databases whose desired and current state differ.",
            ),
            databases: gauge("dbaas_databases", "Databases seen by the last pass."),
            oldest_drift_age: gauge(
                "dbaas_oldest_drift_age_seconds",
                "Age of the oldest unresolved drift.",
            ),
            queue_depth: gauge_vec(
                "dbaas_queue_depth",
                "Operation ids in the queue lists.",
                &["list"],
            ),
            kube_calls: gauge(
                "dbaas_reconciliation_kube_calls",
                "Kubernetes API calls made by the last pass.",
            ),
            registry,
        }
    }
}

impl PassMetrics {
    /// Sets every family from the pass's report, adding its increments to
    /// the durable totals in `store`.
    pub async fn record(&self, store: &dyn Store, report: &PassReport) -> Result<()> {
        self.cycles
            .inc_by(durable_total(store, "dbaas_reconciliation_cycle_total", &[], 1.0).await?);
        self.cycle_duration.set(report.duration.as_secs_f64());
        self.last_success
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        for field in Field::ALL {
            let labels = [("type", field.as_str())];
            let n = report.drifts.get(field.as_str()).copied().unwrap_or(0) as f64;
            let total = durable_total(store, "dbaas_drift_detected_total", &labels, n).await?;
            self.drift_detected
                .with_label_values(&[field.as_str()])
                .inc_by(total);
        }
        let created = durable_total(
            store,
            "dbaas_operations_created_total",
            &[("source", "reconciler")],
            report.operations_created as f64,
        )
        .await?;
        self.operations_created
            .with_label_values(&["reconciler"])
            .inc_by(created);
        self.drift_resolution
            .observe(store, &[], &report.resolved_drift_seconds)
            .await?;
        for (id, field, _) in &report.drifted {
            self.state_drift
                .with_label_values(&[id.as_str(), field])
                .set(1.0);
        }
        let drifted: HashSet<&str> = report
            .drifted
            .iter()
            .map(|(id, _, _)| id.as_str())
            .collect();
        self.databases_drifted.set(drifted.len() as f64);
        self.databases.set(report.databases_seen as f64);
        let oldest = report.drifted.iter().map(|(_, _, since)| *since).min();
        self.oldest_drift_age
            .set(oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0));
        self.queue_depth
            .with_label_values(&["pending"])
            .set(report.pending_depth as f64);
        self.queue_depth
            .with_label_values(&["processing"])
            .set(report.processing_depth as f64);
        self.kube_calls.set(report.kube_calls as f64);
        Ok(())
    }
}
