//! OpsRequests: Pending → Progressing → Successful | Failed, or Skipped.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::database::auth_secret_name;
use super::{
    FAIL_ANNOTATION, Standin, StepReport, condition, conditions, created, elapsed, generation,
    set_condition,
};
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::catalog::CatalogVersion;
use dbaas_core::domain::random_token;
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::error::{Error, Result};
use dbaas_core::kubedb::{
    DatabasePhase, ObservedOpsRequest, OpsPhase, name_of, namespace_of, resources_value,
    storage_of, timestamp,
};
use dbaas_core::quantity;

impl Standin {
    /// Advances one OpsRequest. `all` is this pass's list of the same kind;
    /// `busy` holds the `(namespace, database)` pairs with a request in
    /// progress (KubeDB works on one request per database at a time).
    pub(super) async fn ops_request(
        &self,
        engine: Engine,
        obj: &Value,
        all: &[Value],
        busy: &mut HashSet<(String, String)>,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let kind = Kind::ops_request(engine);
        let op = ObservedOpsRequest::from_value(obj).ok_or_else(|| {
            Error::Invalid("unreadable OpsRequest (no spec.databaseRef.name?)".into())
        })?;
        let generation = generation(obj);
        match op.phase {
            None => {
                let queued = condition(
                    "Pending",
                    true,
                    "OpsRequestQueued",
                    "The request is queued",
                    now,
                    generation,
                );
                self.set_phase(&kind, obj, OpsPhase::Pending, vec![queued], report)
                    .await
            }
            Some(OpsPhase::Pending) => {
                if let Some(newer) = newer_of_same_type(&op, all) {
                    let mut list = conditions(obj);
                    list.push(condition(
                        "Skipped",
                        true,
                        "NewerOpsRequestExists",
                        &format!("Superseded by the newer {} request {newer}", op.ops_type),
                        now,
                        generation,
                    ));
                    return self
                        .set_phase(&kind, obj, OpsPhase::Skipped, list, report)
                        .await;
                }
                if !elapsed(phase_since(obj), self.config.phase_delay, now) {
                    return Ok(());
                }
                let Some(db) = self
                    .cluster
                    .get(&Kind::database(engine), &op.namespace, &op.database_name)
                    .await?
                else {
                    return self
                        .fail(
                            &kind,
                            obj,
                            "DatabaseNotFound",
                            "The database does not exist",
                            now,
                            report,
                        )
                        .await;
                };
                if let Some((reason, message)) = invalid(engine, &op, &db) {
                    return self.fail(&kind, obj, reason, &message, now, report).await;
                }
                if let Some(Change::Version(v)) = op.change
                    && let Some(why) = self.unusable_version(engine, v.as_str()).await?
                {
                    return self
                        .fail(&kind, obj, "InvalidTargetVersion", &why, now, report)
                        .await;
                }
                let if_ready = obj["spec"]["apply"].as_str() != Some("Always");
                let db_ready = db["status"]["phase"]
                    .as_str()
                    .and_then(DatabasePhase::parse)
                    == Some(DatabasePhase::Ready);
                let key = (op.namespace.clone(), op.database_name.clone());
                // A halted database has nothing to work on: even `apply:
                // Always` waits for the resume.
                if (if_ready && !db_ready) || is_halted(&db) || busy.contains(&key) {
                    return Ok(());
                }
                busy.insert(key);
                let mut list = conditions(obj);
                list.push(condition(
                    &op.ops_type,
                    true,
                    &op.ops_type,
                    &format!("{} of {} started", op.ops_type, op.database_name),
                    now,
                    generation,
                ));
                self.set_phase(&kind, obj, OpsPhase::Progressing, list, report)
                    .await
            }
            Some(OpsPhase::Progressing) => {
                if !elapsed(phase_since(obj), self.config.phase_delay, now) {
                    return Ok(());
                }
                let db_kind = Kind::database(engine);
                let Some(db) = self
                    .cluster
                    .get(&db_kind, &op.namespace, &op.database_name)
                    .await?
                else {
                    return self
                        .fail(
                            &kind,
                            obj,
                            "DatabaseNotFound",
                            "The database disappeared",
                            now,
                            report,
                        )
                        .await;
                };
                if db["metadata"]["annotations"][FAIL_ANNOTATION].as_str() == Some("true") {
                    let message = format!(
                        "Failure forced by the {FAIL_ANNOTATION} annotation on the database"
                    );
                    return self
                        .fail(&kind, obj, "ForcedFailure", &message, now, report)
                        .await;
                }
                if self.random_failure(obj["metadata"]["uid"].as_str().unwrap_or_default()) {
                    let message = "Failure injected at random by the stand-in (failure ratio)";
                    return self
                        .fail(&kind, obj, "InjectedFailure", message, now, report)
                        .await;
                }
                if is_halted(&db) {
                    // Halted under a running request: its pods are gone.
                    return self
                        .fail(
                            &kind,
                            obj,
                            "DatabaseHalted",
                            "The database was halted while the request ran",
                            now,
                            report,
                        )
                        .await;
                }
                if op.ops_type == "Restart" {
                    // KubeDB restarts the pods one by one; nothing in the
                    // database spec changes.
                    return self.succeed(&kind, obj, now, report).await;
                }
                if op.ops_type == "RotateAuth" {
                    // KubeDB generates a new password into the auth Secret
                    // (no `authentication.secretRef` given).
                    rotate_password(&*self.cluster, &op.namespace, &db).await?;
                    return self.succeed(&kind, obj, now, report).await;
                }
                let Some(change) = op.change else {
                    return self
                        .fail(
                            &kind,
                            obj,
                            "UnsupportedOpsRequest",
                            "Unreadable change",
                            now,
                            report,
                        )
                        .await;
                };
                // Only now does the database spec take the new value, as in
                // KubeDB. The precondition keeps a concurrent spec edit.
                let mut patch = spec_patch(engine, &db, change);
                patch["metadata"] = json!({"resourceVersion": db["metadata"]["resourceVersion"]});
                let db = self
                    .cluster
                    .merge_patch(&db_kind, &op.namespace, &op.database_name, &patch)
                    .await?;
                if let Change::Replicas(n) = change {
                    // The standby Service exists only with replicas.
                    if n > 1 {
                        self.ensure_services(engine, &db).await?;
                    } else {
                        let standby = format!("{}-standby", op.database_name);
                        self.cluster
                            .delete(&Kind::service(), &op.namespace, &standby)
                            .await?;
                    }
                }
                self.succeed(&kind, obj, now, report).await
            }
            Some(_) => Ok(()),
        }
    }

    /// Why KubeDB would refuse to move a database to `version`: absent
    /// from the catalog or deprecated.
    async fn unusable_version(&self, engine: Engine, version: &str) -> Result<Option<String>> {
        let entry = self
            .cluster
            .get(&Kind::catalog(engine), "", version)
            .await?
            .and_then(|obj| CatalogVersion::from_value(&obj));
        Ok(match entry {
            None => Some(format!(
                "{} {version} is not in the catalog",
                engine.spec().version_kind
            )),
            Some(v) if v.deprecated => Some(format!(
                "{} {version} is deprecated",
                engine.spec().version_kind
            )),
            Some(_) => None,
        })
    }

    async fn succeed(
        &self,
        kind: &Kind,
        obj: &Value,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let mut list = conditions(obj);
        list.push(condition(
            "Successful",
            true,
            "Successful",
            "Successfully completed the modification process",
            now,
            generation(obj),
        ));
        self.set_phase(kind, obj, OpsPhase::Successful, list, report)
            .await
    }

    async fn set_phase(
        &self,
        kind: &Kind,
        obj: &Value,
        phase: OpsPhase,
        conditions: Vec<Value>,
        report: &mut StepReport,
    ) -> Result<()> {
        let patch = json!({"status": {
            "phase": phase.as_str(),
            "observedGeneration": generation(obj),
            "conditions": conditions,
        }});
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        self.cluster
            .merge_patch_status(kind, ns, name, &patch)
            .await?;
        report.record(kind, obj, phase.as_str());
        Ok(())
    }

    async fn fail(
        &self,
        kind: &Kind,
        obj: &Value,
        reason: &str,
        message: &str,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let ops_type = obj["spec"]["type"].as_str().unwrap_or("Unknown");
        let mut list = conditions(obj);
        set_condition(
            &mut list,
            condition(ops_type, false, reason, message, now, generation(obj)),
        );
        // The changed condition must read as the latest one.
        if let Some(i) = list.iter().position(|c| c["type"] == ops_type) {
            let c = list.remove(i);
            list.push(c);
        }
        self.set_phase(kind, obj, OpsPhase::Failed, list, report)
            .await
    }
}

/// When the request entered its current phase: its latest condition.
fn phase_since(obj: &Value) -> Option<DateTime<Utc>> {
    conditions(obj)
        .iter()
        .filter_map(|c| timestamp(&c["lastTransitionTime"]))
        .max()
        .or_else(|| created(obj))
}

/// The name of a newer, unfinished request of the same type for the same
/// database (later creationTimestamp; equal timestamps are ordered by name).
/// A finished request replaces nothing: only queued work is superseded.
fn newer_of_same_type(op: &ObservedOpsRequest, all: &[Value]) -> Option<String> {
    all.iter()
        .filter_map(ObservedOpsRequest::from_value)
        .filter(|o| {
            o.namespace == op.namespace
                && o.database_name == op.database_name
                && o.ops_type == op.ops_type
                && !o.phase.is_some_and(OpsPhase::is_final)
                && (o.created_at, &o.name) > (op.created_at, &op.name)
        })
        .map(|o| o.name)
        .max()
}

/// Why KubeDB would refuse this change to `db`, if it would.
fn invalid(engine: Engine, op: &ObservedOpsRequest, db: &Value) -> Option<(&'static str, String)> {
    match op.change? {
        Change::StorageGb(gb) => {
            let current = storage_of(db)?;
            (gb < current).then(|| {
                (
                    "VolumeShrinkNotAllowed",
                    format!("Storage cannot shrink: requested {gb}Gi, current {current}Gi"),
                )
            })
        }
        Change::Replicas(n) => {
            let current = db["spec"]["replicas"]
                .as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(1);
            engine
                .replicas_error(n)
                .or_else(|| engine.replica_change_error(current, n))
                .map(|m| ("InvalidReplicas", format!("Invalid replica count {n}: {m}")))
        }
        Change::Size(_)
        | Change::Version(_)
        | Change::AuthRotation(_)
        | Change::Restart(_)
        | Change::Paused(_)
        | Change::DeletionPolicy(_) => None,
    }
}

/// Whether the database is halted, or about to be (`spec.halted`).
fn is_halted(db: &Value) -> bool {
    db["spec"]["halted"].as_bool() == Some(true)
        || db["status"]["phase"]
            .as_str()
            .and_then(DatabasePhase::parse)
            == Some(DatabasePhase::Halted)
}

/// Writes a new generated password into the database's auth Secret.
async fn rotate_password(cluster: &dyn Cluster, namespace: &str, db: &Value) -> Result<()> {
    let secret = auth_secret_name(db);
    let patch = json!({"data": {"password": B64.encode(random_token(24))}});
    cluster
        .merge_patch(&Kind::secret(), namespace, &secret, &patch)
        .await?;
    Ok(())
}

/// The merge patch that writes `change` into the database spec.
fn spec_patch(engine: Engine, db: &Value, change: Change) -> Value {
    match change {
        Change::Version(v) => json!({"spec": {"version": v.as_str()}}),
        // Nothing in the spec: the Secret changes (see `rotate_password`),
        // or the pods restart.
        Change::AuthRotation(_) | Change::Restart(_) => json!({}),
        // Edits of the CR itself, never an OpsRequest.
        Change::Paused(_) | Change::DeletionPolicy(_) => {
            dbaas_core::kubedb::database_patch(&change).unwrap_or_else(|| json!({}))
        }
        Change::Replicas(n) => json!({"spec": {"replicas": n}}),
        Change::StorageGb(gb) => {
            json!({"spec": {"storage": {"resources": {"requests": {"storage": quantity::storage_quantity(gb)}}}}})
        }
        Change::Size(size) => {
            let container = engine.spec().container;
            // A merge patch replaces arrays whole: send every container.
            let mut containers = db["spec"]["podTemplate"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match containers
                .iter_mut()
                .find(|c| c["name"].as_str() == Some(container))
            {
                Some(c) => c["resources"] = resources_value(size),
                None => {
                    containers.push(json!({"name": container, "resources": resources_value(size)}))
                }
            }
            json!({"spec": {"podTemplate": {"spec": {"containers": containers}}}})
        }
    }
}
