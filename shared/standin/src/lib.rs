//! A stand-in for the KubeDB operator: it moves database CRs and
//! OpsRequests through the phases KubeDB would, without running databases.
//!
//! It is generic over [`Cluster`], so the same logic drives a real API server
//! (the `kubedb-standin` binary in the test rig) and the embedded cluster of
//! the local mode. Each [`Standin::step`] is one pass that advances every
//! object by at most one state once its delay has elapsed. All timing is
//! read back from the objects (condition `lastTransitionTime`s and
//! `creationTimestamp`), so the stand-in keeps no state and can restart at
//! any point.
//!
//! What it mimics (see `shared/design/field-notes.md`):
//! - databases: no phase → `Provisioning` (finalizer `kubedb.com` added) →
//!   after `provision_delay` the auth Secret exists and the phase is `Ready`;
//! - OpsRequests: no phase → `Pending` → `Progressing` (for `apply: IfReady`
//!   only while the database is `Ready`, and one at a time per database) →
//!   `Successful`, writing the new value into the database spec only then,
//!   or `Failed`; a `Pending` request with a newer one of the same type for
//!   the same database becomes `Skipped`; a `Restart` request changes no
//!   spec (the database stays `Ready`, as for every other request);
//! - `spec.halted: true`: the Services go (the stand-in runs no pods), the
//!   auth Secret stays, the phase is `Halted` and `spec.deletionPolicy` is
//!   forced to `Halt`; a `DoNotTerminate` database is not halted (KubeDB's
//!   webhook refuses the write: the stand-in undoes it). Requests wait while
//!   the database is halted. Back to `false`: `Provisioning`, then `Ready`
//!   with the Services again after `provision_delay`; the policy stays
//!   `Halt`;
//! - deletion by `spec.deletionPolicy` (`DoNotTerminate` blocks it).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::engine::Engine;
use dbaas_core::error::{Error, Result};
use dbaas_core::kubedb::timestamp;

pub mod catalog;
mod database;
mod ops;

/// Annotation on a database CR that makes all its OpsRequests fail.
pub const FAIL_ANNOTATION: &str = "standin.dbaas.io/fail";

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    /// Time from `Provisioning` to `Ready`.
    pub provision_delay: Duration,
    /// Time an OpsRequest spends in each of `Pending` and `Progressing`.
    pub phase_delay: Duration,
    /// Share of OpsRequests that fail at random (0.0 to 1.0).
    pub failure_ratio: f64,
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Seed of the random failures: the same seed fails the same requests.
    pub seed: u64,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            provision_delay: Duration::from_secs(5),
            phase_delay: Duration::from_secs(2),
            failure_ratio: 0.0,
            namespaces: Vec::new(),
            seed: 0,
        }
    }
}

/// One state change made by a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Kind of the object (`MongoDB`, `PostgresOpsRequest`, ...).
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The new phase, or what happened (`Deleted`, `DeletionBlocked`, ...).
    pub to: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub transitions: Vec<Transition>,
    /// Per-object failures; the pass carried on with the other objects.
    pub errors: Vec<String>,
}

impl StepReport {
    fn record(&mut self, kind: &Kind, obj: &Value, to: impl Into<String>) {
        self.transitions.push(Transition {
            kind: kind.kind,
            namespace: dbaas_core::kubedb::namespace_of(obj).to_string(),
            name: dbaas_core::kubedb::name_of(obj)
                .unwrap_or_default()
                .to_string(),
            to: to.into(),
        });
    }
}

/// The KubeDB operator stand-in.
pub struct Standin {
    cluster: Arc<dyn Cluster>,
    config: StandinConfig,
}

impl Standin {
    pub fn new(cluster: Arc<dyn Cluster>, config: StandinConfig) -> Standin {
        Standin { cluster, config }
    }

    /// One pass over every database and OpsRequest kind in the configured
    /// namespaces. Fails only if objects cannot be listed; a kind whose CRD
    /// is not installed is skipped.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<StepReport> {
        let mut report = StepReport::default();
        for engine in Engine::ALL {
            let kind = Kind::database(engine);
            for obj in self.list(&kind).await? {
                if let Err(e) = self.database(engine, &obj, now, &mut report).await {
                    report.errors.push(describe(&kind, &obj, &e));
                }
            }
        }
        for engine in Engine::ALL {
            let kind = Kind::ops_request(engine);
            let all = self.list(&kind).await?;
            // Databases with a request in flight: KubeDB runs one at a time.
            let mut busy: HashSet<(String, String)> = all
                .iter()
                .filter_map(dbaas_core::kubedb::ObservedOpsRequest::from_value)
                .filter(|o| o.phase == Some(dbaas_core::kubedb::OpsPhase::Progressing))
                .map(|o| (o.namespace, o.database_name))
                .collect();
            for obj in &all {
                if let Err(e) = self
                    .ops_request(engine, obj, &all, &mut busy, now, &mut report)
                    .await
                {
                    report.errors.push(describe(&kind, obj, &e));
                }
            }
        }
        Ok(report)
    }

    /// Runs passes every `poll_interval` until `shutdown` completes.
    pub async fn run(&self, poll_interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.step(Utc::now()).await {
                Ok(report) => {
                    for t in &report.transitions {
                        tracing::info!(kind = t.kind, namespace = %t.namespace, name = %t.name, to = %t.to, "transition");
                    }
                    for e in &report.errors {
                        tracing::warn!(error = %e, "stand-in could not advance an object");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "stand-in pass failed"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(poll_interval) => {}
            }
        }
    }

    async fn list(&self, kind: &Kind) -> Result<Vec<Value>> {
        let all = [String::new()];
        let namespaces = if self.config.namespaces.is_empty() {
            &all[..]
        } else {
            &self.config.namespaces[..]
        };
        let mut out = Vec::new();
        for ns in namespaces {
            match self.cluster.list(kind, ns).await {
                Ok(objs) => out.extend(objs),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Whether the request with this uid fails at random: a hash of seed
    /// and uid, so the verdict survives restarts and ignores ordering.
    fn random_failure(&self, uid: &str) -> bool {
        if self.config.failure_ratio <= 0.0 {
            return false;
        }
        let digest = Sha256::digest(format!("{}/{uid}", self.config.seed));
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) as f64 / u64::MAX as f64) < self.config.failure_ratio
    }
}

fn describe(kind: &Kind, obj: &Value, e: &Error) -> String {
    format!(
        "{} {}/{}: {e}",
        kind.kind,
        dbaas_core::kubedb::namespace_of(obj),
        dbaas_core::kubedb::name_of(obj).unwrap_or_default()
    )
}

/// Timestamps the stand-in writes: RFC 3339 with milliseconds, so that
/// sub-second delays are measured accurately.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A status condition as KubeDB writes them.
fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
    generation: u64,
) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now),
        "observedGeneration": generation,
    })
}

fn conditions(obj: &Value) -> Vec<Value> {
    obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Replaces the condition of the same type, or appends it.
fn set_condition(list: &mut Vec<Value>, c: Value) {
    match list.iter_mut().find(|x| x["type"] == c["type"]) {
        Some(slot) => *slot = c,
        None => list.push(c),
    }
}

fn generation(obj: &Value) -> u64 {
    obj["metadata"]["generation"].as_u64().unwrap_or(0)
}

fn created(obj: &Value) -> Option<DateTime<Utc>> {
    timestamp(&obj["metadata"]["creationTimestamp"])
}

/// Whether `delay` has passed since `since` (unknown start: it has).
fn elapsed(since: Option<DateTime<Utc>>, delay: Duration, now: DateTime<Utc>) -> bool {
    match (since, chrono::Duration::from_std(delay)) {
        (Some(t), Ok(d)) => now - t >= d,
        (None, _) => true,
        (Some(_), Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbaas_cluster::embedded::EmbeddedCluster;

    fn with_ratio(ratio: f64, seed: u64) -> Standin {
        let config = StandinConfig {
            failure_ratio: ratio,
            seed,
            ..Default::default()
        };
        Standin::new(Arc::new(EmbeddedCluster::in_memory()), config)
    }

    #[test]
    fn random_failures_follow_seed_and_ratio() {
        let uids: Vec<String> = (0..2000).map(|i| format!("uid-{i}")).collect();
        let verdicts = |s: &Standin| uids.iter().map(|u| s.random_failure(u)).collect::<Vec<_>>();
        let half = verdicts(&with_ratio(0.5, 1));
        assert_eq!(
            half,
            verdicts(&with_ratio(0.5, 1)),
            "same seed, same verdicts"
        );
        assert_ne!(
            half,
            verdicts(&with_ratio(0.5, 2)),
            "another seed, other verdicts"
        );
        let failed = half.iter().filter(|f| **f).count();
        assert!((800..1200).contains(&failed), "about half fail: {failed}");
        assert!(!verdicts(&with_ratio(0.0, 1)).contains(&true));
        assert!(!verdicts(&with_ratio(1.0, 1)).contains(&false));
    }

    #[test]
    fn delays_are_measured_from_the_given_start() {
        let t0 = Utc::now();
        let d = Duration::from_millis(1500);
        assert!(!elapsed(
            Some(t0),
            d,
            t0 + chrono::Duration::milliseconds(1499)
        ));
        assert!(elapsed(
            Some(t0),
            d,
            t0 + chrono::Duration::milliseconds(1500)
        ));
        assert!(elapsed(None, d, t0));
    }
}
