//! Database CRs: provisioning, observed generation and deletion.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    Standin, StepReport, condition, conditions, created, elapsed, generation, set_condition,
};
use dbaas_cluster::Kind;
use dbaas_core::domain::random_token;
use dbaas_core::engine::Engine;
use dbaas_core::error::{Error, Result};
use dbaas_core::kubedb::{
    DatabasePhase, DeletionPolicy, KUBEDB_FINALIZER, name_of, namespace_of, timestamp,
};
use dbaas_core::naming;

/// The condition that marks the start of provisioning; its time is when
/// the provisioning delay started.
const PROVISIONING_STARTED: &str = "ProvisioningStarted";
/// The condition KubeDB sets on a halted database.
const HALTED: &str = "Halted";

impl Standin {
    pub(super) async fn database(
        &self,
        engine: Engine,
        obj: &Value,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let kind = Kind::database(engine);
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            return self.deleting(&kind, obj, now, report).await;
        }
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        let phase = obj["status"]["phase"]
            .as_str()
            .and_then(DatabasePhase::parse);
        let halted = obj["spec"]["halted"].as_bool() == Some(true);
        match phase {
            // A new database is taken in first (finalizer, Provisioning),
            // halted or not.
            Some(phase) if halted => {
                return self.halt(engine, &kind, obj, phase, now, report).await;
            }
            Some(DatabasePhase::Halted) => return self.resume(&kind, obj, now, report).await,
            None => {
                let mut finalizers = finalizers(obj);
                if !finalizers.iter().any(|f| f == KUBEDB_FINALIZER) {
                    finalizers.push(KUBEDB_FINALIZER.to_string());
                    let patch = json!({"metadata": {
                        "finalizers": finalizers,
                        "resourceVersion": obj["metadata"]["resourceVersion"],
                    }});
                    self.cluster.merge_patch(&kind, ns, name, &patch).await?;
                }
                let started = condition(
                    PROVISIONING_STARTED,
                    true,
                    "DatabaseProvisioningStartedSuccessfully",
                    "The KubeDB operator has started the provisioning",
                    now,
                    generation(obj),
                );
                let patch = json!({"status": {"phase": "Provisioning", "conditions": [started]}});
                self.cluster
                    .merge_patch_status(&kind, ns, name, &patch)
                    .await?;
                report.record(&kind, obj, "Provisioning");
            }
            Some(DatabasePhase::Provisioning) => {
                let since = conditions(obj)
                    .iter()
                    .find(|c| c["type"] == PROVISIONING_STARTED)
                    .and_then(|c| timestamp(&c["lastTransitionTime"]))
                    .or_else(|| created(obj));
                if !elapsed(since, self.config.provision_delay, now) {
                    return Ok(());
                }
                let obj = self.ensure_auth_secret(engine, &kind, obj).await?;
                self.ensure_services(engine, &obj).await?;
                let mut list = conditions(&obj);
                let generation = generation(&obj);
                for (type_, reason, message) in [
                    (
                        "ReplicaReady",
                        "AllReplicasReady",
                        "All desired replicas are ready.",
                    ),
                    (
                        "AcceptingConnection",
                        "DatabaseAcceptingConnectionRequest",
                        "The database is accepting connections",
                    ),
                    ("Ready", "AllReplicasReady", "The database is ready"),
                    (
                        "Provisioned",
                        "DatabaseSuccessfullyProvisioned",
                        "The database has been provisioned",
                    ),
                ] {
                    set_condition(
                        &mut list,
                        condition(type_, true, reason, message, now, generation),
                    );
                }
                let patch = json!({"status": {
                    "phase": "Ready",
                    "observedGeneration": generation,
                    "conditions": list,
                    "authSecret": {"lastUpdateTimestamp": rfc3339_secs(now)},
                }});
                self.cluster
                    .merge_patch_status(&kind, ns, name, &patch)
                    .await?;
                report.record(&kind, &obj, "Ready");
            }
            Some(_) => {
                // KubeDB reconciles spec edits (its own, after a successful
                // OpsRequest, included) and reports them observed.
                let generation = generation(obj);
                if obj["status"]["observedGeneration"].as_u64() != Some(generation) {
                    let patch = json!({"status": {"observedGeneration": generation}});
                    self.cluster
                        .merge_patch_status(&kind, ns, name, &patch)
                        .await?;
                    report.record(&kind, obj, format!("ObservedGeneration {generation}"));
                }
            }
        }
        Ok(())
    }

    /// A database with `spec.halted: true`. KubeDB's mutating webhook
    /// refuses to halt a `DoNotTerminate` database and forces `Halt` on any
    /// other; the stand-in sees the write only after the API server took it,
    /// so it undoes what the webhook would have refused and applies what it
    /// would have forced. Then, as the operator does, it removes the
    /// workload (the Services: the stand-in runs no pods) and keeps the
    /// volumes and the auth Secret, with the phase `Halted`.
    async fn halt(
        &self,
        engine: Engine,
        kind: &Kind,
        obj: &Value,
        phase: DatabasePhase,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        let policy = obj["spec"]["deletionPolicy"]
            .as_str()
            .and_then(DeletionPolicy::parse)
            .unwrap_or(DeletionPolicy::Delete);
        let precondition = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        if policy == DeletionPolicy::DoNotTerminate {
            // "Can't halt, since termination policy is 'DoNotTerminate'":
            // the write that made halted and DoNotTerminate meet is the one
            // refused. On a running database that is the halt; on a halted
            // one, the change of policy.
            let (patch, to) = if phase == DatabasePhase::Halted {
                (
                    json!({"metadata": precondition, "spec": {"deletionPolicy": DeletionPolicy::Halt.as_str()}}),
                    "DeletionPolicy Halt (DoNotTerminate refused while halted)",
                )
            } else {
                (
                    json!({"metadata": precondition, "spec": {"halted": false}}),
                    "HaltRefused (DoNotTerminate)",
                )
            };
            self.cluster.merge_patch(kind, ns, name, &patch).await?;
            report.record(kind, obj, to);
            return Ok(());
        }
        let obj = if policy == DeletionPolicy::Halt {
            obj.clone()
        } else {
            let patch = json!({"metadata": precondition, "spec": {"deletionPolicy": DeletionPolicy::Halt.as_str()}});
            let obj = self.cluster.merge_patch(kind, ns, name, &patch).await?;
            report.record(kind, &obj, "DeletionPolicy Halt");
            obj
        };
        let generation = generation(&obj);
        if phase != DatabasePhase::Halted {
            self.delete_services(&obj).await?;
            let mut list = conditions(&obj);
            for (type_, reason, message) in [
                (
                    "ReplicaReady",
                    "DatabaseHalted",
                    "The database is halted: it has no replicas",
                ),
                (
                    "AcceptingConnection",
                    "DatabaseHalted",
                    "The database is halted",
                ),
                ("Ready", "DatabaseHalted", "The database is halted"),
            ] {
                set_condition(
                    &mut list,
                    condition(type_, false, reason, message, now, generation),
                );
            }
            let message = format!("{} {ns}/{name} successfully halted.", engine.spec().kind);
            set_condition(
                &mut list,
                condition(
                    HALTED,
                    true,
                    "DatabaseHaltedSuccessfully",
                    &message,
                    now,
                    generation,
                ),
            );
            let patch = json!({"status": {
                "phase": "Halted",
                "observedGeneration": generation,
                "conditions": list,
            }});
            self.cluster
                .merge_patch_status(kind, ns, name, &patch)
                .await?;
            report.record(kind, &obj, "Halted");
        } else if obj["status"]["observedGeneration"].as_u64() != Some(generation) {
            let patch = json!({"status": {"observedGeneration": generation}});
            self.cluster
                .merge_patch_status(kind, ns, name, &patch)
                .await?;
            report.record(kind, &obj, format!("ObservedGeneration {generation}"));
        }
        Ok(())
    }

    /// A halted database whose `spec.halted` went back to false: KubeDB
    /// drops the `Halted` condition and provisions the workload again
    /// (Provisioning, then Ready after the provisioning delay, with the
    /// Services back). The deletion policy stays `Halt`.
    async fn resume(
        &self,
        kind: &Kind,
        obj: &Value,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        let generation = generation(obj);
        let mut list: Vec<Value> = conditions(obj)
            .into_iter()
            .filter(|c| c["type"] != HALTED)
            .collect();
        // The provisioning delay runs from here.
        set_condition(
            &mut list,
            condition(
                PROVISIONING_STARTED,
                true,
                "DatabaseProvisioningStartedSuccessfully",
                "The KubeDB operator has started the provisioning",
                now,
                generation,
            ),
        );
        let patch = json!({"status": {
            "phase": "Provisioning",
            "observedGeneration": generation,
            "conditions": list,
        }});
        self.cluster
            .merge_patch_status(kind, ns, name, &patch)
            .await?;
        report.record(kind, obj, "Provisioning");
        Ok(())
    }

    /// Removes the Services [`Self::ensure_services`] makes (whichever exist).
    async fn delete_services(&self, obj: &Value) -> Result<()> {
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        for service in [
            name.to_string(),
            format!("{name}-pods"),
            format!("{name}-standby"),
        ] {
            self.cluster.delete(&Kind::service(), ns, &service).await?;
        }
        Ok(())
    }

    /// Creates the `<name>-auth` Secret (or the one `spec.authSecret` names)
    /// if missing and records its name in the spec, as KubeDB does. Returns
    /// the database as it is afterwards.
    async fn ensure_auth_secret(&self, engine: Engine, kind: &Kind, obj: &Value) -> Result<Value> {
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        let secret_name = auth_secret_name(obj);
        let username = match engine {
            Engine::Postgres => "postgres",
            Engine::Redis => "default",
            Engine::Mongodb | Engine::Mysql | Engine::Mariadb => "root",
        };
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "namespace": ns,
                "labels": {
                    "app.kubernetes.io/instance": name,
                    "app.kubernetes.io/managed-by": "kubedb.com",
                    "app.kubernetes.io/name": format!("{}.kubedb.com", kind.plural),
                },
            },
            "type": "kubernetes.io/basic-auth",
            "data": {
                "username": B64.encode(username),
                "password": B64.encode(random_token(24)),
            },
        });
        match self.cluster.create(&Kind::secret(), ns, &secret).await {
            // A pass that stopped half-way already made it: keep its password.
            Ok(_) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        if obj["spec"]["authSecret"]["name"].as_str() == Some(secret_name.as_str()) {
            return Ok(obj.clone());
        }
        let patch = json!({"spec": {"authSecret": {"name": secret_name}}});
        self.cluster.merge_patch(kind, ns, name, &patch).await
    }

    /// Creates the Services KubeDB makes for a database: `<name>` (the
    /// primary), `<name>-pods` (headless) and, with replicas, `<name>-standby`.
    pub(super) async fn ensure_services(&self, engine: Engine, obj: &Value) -> Result<()> {
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
        let port = engine.spec().port;
        let mut services = vec![(name.to_string(), false), (format!("{name}-pods"), true)];
        if replicas > 1 {
            services.push((format!("{name}-standby"), false));
        }
        for (service, headless) in services {
            let mut spec = json!({
                "ports": [{"name": "db", "port": port, "targetPort": port}],
                "selector": {"app.kubernetes.io/instance": name},
            });
            if headless {
                spec["clusterIP"] = json!("None");
            }
            let body = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": service,
                    "namespace": ns,
                    "labels": {
                        "app.kubernetes.io/instance": name,
                        "app.kubernetes.io/managed-by": "kubedb.com",
                    },
                },
                "spec": spec,
            });
            match self.cluster.create(&Kind::service(), ns, &body).await {
                Ok(_) | Err(Error::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A database with a deletionTimestamp: honour `spec.deletionPolicy`
    /// (KubeDB's default is Delete).
    async fn deleting(
        &self,
        kind: &Kind,
        obj: &Value,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<()> {
        let finalizers = finalizers(obj);
        if !finalizers.iter().any(|f| f == KUBEDB_FINALIZER) {
            // Not ours (yet) to release.
            return Ok(());
        }
        let (ns, name) = (namespace_of(obj), name_of(obj).unwrap_or_default());
        let policy = obj["spec"]["deletionPolicy"]
            .as_str()
            .and_then(DeletionPolicy::parse)
            .unwrap_or(DeletionPolicy::Delete);
        match policy {
            DeletionPolicy::DoNotTerminate => {
                let blocked = conditions(obj)
                    .iter()
                    .any(|c| c["type"] == "DeletionBlocked" && c["status"] == "True");
                if !blocked {
                    let mut list = conditions(obj);
                    set_condition(
                        &mut list,
                        condition(
                            "DeletionBlocked",
                            true,
                            "DeletionPolicyDoNotTerminate",
                            "spec.deletionPolicy is DoNotTerminate: set it to Halt, Delete or WipeOut to let the deletion proceed",
                            now,
                            generation(obj),
                        ),
                    );
                    let patch = json!({"status": {"conditions": list}});
                    self.cluster
                        .merge_patch_status(kind, ns, name, &patch)
                        .await?;
                    report.record(kind, obj, "DeletionBlocked");
                }
                return Ok(());
            }
            // Halt and Delete keep the credentials (and, in KubeDB, Halt the
            // volumes too) so the database can be brought back.
            DeletionPolicy::Halt | DeletionPolicy::Delete => {}
            DeletionPolicy::WipeOut => {
                self.cluster
                    .delete(&Kind::secret(), ns, &auth_secret_name(obj))
                    .await?;
            }
        }
        // The Services go with the database whatever the policy (KubeDB
        // owns them; garbage collection removes them).
        self.delete_services(obj).await?;
        let rest: Vec<&String> = finalizers
            .iter()
            .filter(|f| *f != KUBEDB_FINALIZER)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": obj["metadata"]["resourceVersion"],
        }});
        self.cluster.merge_patch(kind, ns, name, &patch).await?;
        report.record(kind, obj, format!("Deleted ({})", policy.as_str()));
        Ok(())
    }
}

/// The name of a database's auth Secret.
pub(super) fn auth_secret_name(obj: &Value) -> String {
    match obj["spec"]["authSecret"]["name"].as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => naming::auth_secret(name_of(obj).unwrap_or_default()),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `status.authSecret.lastUpdateTimestamp` is a metav1.Time: whole seconds.
fn rfc3339_secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
