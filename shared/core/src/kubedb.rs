//! KubeDB objects as JSON: pure builders for the custom resources the
//! control plane creates, and readers for what the cluster reports back.
//!
//! Every engine difference comes from the engine table ([`crate::engine`]);
//! the bodies built here are checked against the upstream CRDs under strict
//! field validation by the rig tests (`shared/standin/tests/kube.rs`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::catalog::VersionName;
use crate::domain::{Connection, Size};
use crate::drift::{Change, Observed};
use crate::engine::Engine;
use crate::{naming, quantity};

/// Label that marks objects created by the control plane.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "dbaas";
/// Label carrying the control plane's database id.
pub const DATABASE_ID_LABEL: &str = "dbaas.io/database-id";
/// Label carrying the owning tenant's id.
pub const TENANT_ID_LABEL: &str = "dbaas.io/tenant-id";
/// The finalizer KubeDB puts on every database it manages.
/// On a RotateAuth OpsRequest: the rotation count it brings the database to.
pub const AUTH_ROTATION_ANNOTATION: &str = "dbaas.io/auth-rotation";
/// On a Restart OpsRequest: the restart count it brings the database to.
pub const RESTART_ANNOTATION: &str = "dbaas.io/restart";
pub const KUBEDB_FINALIZER: &str = "kubedb.com";

/// `spec.deletionPolicy` of a KubeDB database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum DeletionPolicy {
    /// Deletion is refused: the object stays.
    #[value(name = "DoNotTerminate")]
    DoNotTerminate,
    /// The CR goes; data volumes and secrets stay.
    #[value(name = "Halt")]
    Halt,
    /// Pods and volumes go; secrets stay.
    #[value(name = "Delete")]
    Delete,
    /// Everything goes, secrets included.
    #[value(name = "WipeOut")]
    WipeOut,
}

impl DeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::DoNotTerminate => "DoNotTerminate",
            DeletionPolicy::Halt => "Halt",
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::WipeOut => "WipeOut",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use DeletionPolicy::*;
        [DoNotTerminate, Halt, Delete, WipeOut]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Database `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabasePhase {
    Provisioning,
    DataRestoring,
    Ready,
    /// Reachable, but not every replica is ready.
    Critical,
    NotReady,
    Halted,
    Unknown,
}

impl DatabasePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabasePhase::Provisioning => "Provisioning",
            DatabasePhase::DataRestoring => "DataRestoring",
            DatabasePhase::Ready => "Ready",
            DatabasePhase::Critical => "Critical",
            DatabasePhase::NotReady => "NotReady",
            DatabasePhase::Halted => "Halted",
            DatabasePhase::Unknown => "Unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use DatabasePhase::*;
        [
            Provisioning,
            DataRestoring,
            Ready,
            Critical,
            NotReady,
            Halted,
            Unknown,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// OpsRequest `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpsPhase {
    /// Queued, not started.
    Pending,
    Progressing,
    Successful,
    Failed,
    /// Superseded by a newer un-started request of the same type.
    Skipped,
    WaitingForApproval,
    Approved,
    Denied,
}

impl OpsPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            OpsPhase::Pending => "Pending",
            OpsPhase::Progressing => "Progressing",
            OpsPhase::Successful => "Successful",
            OpsPhase::Failed => "Failed",
            OpsPhase::Skipped => "Skipped",
            OpsPhase::WaitingForApproval => "WaitingForApproval",
            OpsPhase::Approved => "Approved",
            OpsPhase::Denied => "Denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use OpsPhase::*;
        [
            Pending,
            Progressing,
            Successful,
            Failed,
            Skipped,
            WaitingForApproval,
            Approved,
            Denied,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// KubeDB will not touch the request again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OpsPhase::Successful | OpsPhase::Failed | OpsPhase::Skipped | OpsPhase::Denied
        )
    }
}

/// Everything needed to build a KubeDB database CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseManifest {
    pub engine: Engine,
    /// Name of the CR (and prefix of the `<name>-auth` Secret).
    pub name: String,
    pub namespace: String,
    pub version: String,
    pub size: Size,
    pub replicas: u32,
    pub storage_gb: u32,
    pub database_id: String,
    pub tenant_id: String,
    pub deletion_policy: DeletionPolicy,
}

/// `{requests, limits}` for a size: requests equal limits (guaranteed QoS).
pub fn resources_value(size: Size) -> Value {
    let (cpu, memory) = size.resources();
    json!({
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu, "memory": memory},
    })
}

/// The KubeDB database CR (`kubedb.com/v1`) for `spec`.
pub fn database_object(spec: &DatabaseManifest) -> Value {
    let es = spec.engine.spec();
    let mut body = json!({
        "version": spec.version,
        "replicas": spec.replicas,
        "storageType": "Durable",
        "storage": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": quantity::storage_quantity(spec.storage_gb)}},
        },
        "deletionPolicy": spec.deletion_policy.as_str(),
        "podTemplate": {"spec": {"containers": [
            {"name": es.container, "resources": resources_value(spec.size)}
        ]}},
    });
    let extra = match spec.engine {
        // Always a replica set, even with one member, so that horizontal
        // scaling never changes topology.
        Engine::Mongodb => json!({"replicaSet": {"name": "rs0"}}),
        Engine::Mysql if spec.replicas > 1 => json!({"topology": {"mode": "GroupReplication"}}),
        Engine::Redis => json!({"mode": "Standalone"}),
        _ => json!({}),
    };
    merge_objects(&mut body, extra);
    json!({
        "apiVersion": "kubedb.com/v1",
        "kind": es.kind,
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY,
                DATABASE_ID_LABEL: spec.database_id,
                TENANT_ID_LABEL: spec.tenant_id,
            },
        },
        "spec": body,
    })
}

/// The merge patch of the database CR that makes `change`, for the changes
/// KubeDB takes as an edit of the CR rather than an OpsRequest.
pub fn database_patch(change: &Change) -> Option<Value> {
    match change {
        Change::Paused(halted) => Some(json!({"spec": {"halted": halted}})),
        Change::DeletionPolicy(p) => Some(json!({"spec": {"deletionPolicy": p.kubedb().as_str()}})),
        _ => None,
    }
}

/// The `<Engine>OpsRequest` (`ops.kubedb.com/v1alpha1`) named `name` that
/// applies `change` to the database CR `database_name`, with `labels`
/// (for a change with an OpsRequest type: see [`database_patch`]).
pub fn ops_request_object(
    engine: Engine,
    name: &str,
    namespace: &str,
    database_name: &str,
    change: &Change,
    labels: &[(&str, &str)],
) -> Value {
    let es = engine.spec();
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let mut spec = json!({
        "type": change.ops_type(),
        "databaseRef": {"name": database_name},
        "apply": "IfReady",
    });
    let block = match change {
        Change::Size(size) => {
            json!({"verticalScaling": {es.vertical_key: {"resources": resources_value(*size)}}})
        }
        Change::Replicas(n) => json!({"horizontalScaling": {es.horizontal_key: n}}),
        Change::StorageGb(gb) => json!({"volumeExpansion": {
            // KubeDB requires the mode; Online avoids a restart.
            "mode": "Online",
            es.volume_key: quantity::storage_quantity(*gb),
        }}),
        Change::Version(v) => json!({"updateVersion": {"targetVersion": v.as_str()}}),
        // No `authentication.secretRef`: KubeDB generates the new password.
        Change::AuthRotation(_) | Change::Restart(_) => json!({}),
        Change::Paused(_) | Change::DeletionPolicy(_) => json!({}),
    };
    merge_objects(&mut spec, block);
    let mut metadata = json!({"name": name, "namespace": namespace, "labels": labels});
    // KubeDB keeps no rotation or restart count: the target rides along,
    // so an unfinished request reads back as the change it makes.
    match change {
        Change::AuthRotation(n) => {
            metadata["annotations"] = json!({AUTH_ROTATION_ANNOTATION: n.to_string()});
        }
        Change::Restart(n) => {
            metadata["annotations"] = json!({RESTART_ANNOTATION: n.to_string()});
        }
        _ => {}
    }
    json!({
        "apiVersion": "ops.kubedb.com/v1alpha1",
        "kind": es.ops_kind,
        "metadata": metadata,
        "spec": spec,
    })
}

/// A database CR as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDatabase {
    pub name: String,
    pub namespace: String,
    pub engine: Engine,
    /// The `dbaas.io/database-id` label.
    pub database_id: Option<String>,
    pub replicas: Option<u32>,
    pub storage_gb: Option<u32>,
    /// None when the container's resources match no known size.
    pub size: Option<Size>,
    pub phase: Option<DatabasePhase>,
    pub deletion_policy: Option<DeletionPolicy>,
    /// `spec.halted`: KubeDB removed the pods and Services, kept the rest.
    pub halted: bool,
    /// `metadata.deletionTimestamp` is set: deletion is in progress.
    pub deleting: bool,
    pub generation: u64,
    pub observed_generation: Option<u64>,
    /// `spec.authSecret.name`: KubeDB fills it in when it makes the Secret.
    pub auth_secret: Option<String>,
    /// `spec.version`: KubeDB writes a new one only after an upgrade.
    pub version: Option<String>,
}

impl ObservedDatabase {
    /// Reads a database CR; None if it is not a KubeDB database of a known
    /// engine or has no name.
    pub fn from_value(obj: &Value) -> Option<Self> {
        let engine = Engine::from_kind(obj.get("kind")?.as_str()?)?;
        let spec = &obj["spec"];
        let size = container_resources(obj, engine)
            .and_then(requested_cpu_memory)
            .and_then(|(cpu, mem)| Size::from_resources(&cpu, &mem));
        Some(ObservedDatabase {
            name: name_of(obj)?.to_string(),
            namespace: namespace_of(obj).to_string(),
            engine,
            database_id: label(obj, DATABASE_ID_LABEL),
            replicas: spec["replicas"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok()),
            storage_gb: storage_of(obj),
            size,
            phase: obj["status"]["phase"]
                .as_str()
                .and_then(DatabasePhase::parse),
            deletion_policy: spec["deletionPolicy"]
                .as_str()
                .and_then(DeletionPolicy::parse),
            halted: spec["halted"].as_bool().unwrap_or(false),
            deleting: !obj["metadata"]["deletionTimestamp"].is_null(),
            generation: obj["metadata"]["generation"].as_u64().unwrap_or(0),
            observed_generation: obj["status"]["observedGeneration"].as_u64(),
            version: spec["version"].as_str().map(str::to_string),
            auth_secret: spec["authSecret"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        })
    }

    /// How clients reach this database: KubeDB's Services for the CR and
    /// its auth Secret (`<name>-auth` unless the CR names another).
    pub fn connection(&self) -> Connection {
        let secret = self
            .auth_secret
            .clone()
            .unwrap_or_else(|| naming::auth_secret(&self.name));
        Connection::of(
            self.engine,
            &self.name,
            &self.namespace,
            &secret,
            self.replicas.unwrap_or(1),
        )
    }

    /// KubeDB reports the database reachable (`Ready`, or `Critical`: not
    /// every replica is ready), and it is not being deleted.
    pub fn is_ready(&self) -> bool {
        !self.deleting
            && matches!(
                self.phase,
                Some(DatabasePhase::Ready | DatabasePhase::Critical)
            )
    }

    /// The CR's values as the drift computation compares them, with the
    /// rotations and restarts the control plane recorded (KubeDB keeps no
    /// count of either).
    pub fn observed(&self, auth_rotation: u64, restarts: u64) -> Observed {
        Observed {
            size: self.size,
            replicas: self.replicas.unwrap_or(0),
            storage_gb: self.storage_gb.unwrap_or(0),
            version: self.version.as_deref().and_then(VersionName::new),
            auth_rotation,
            halted: self.halted,
            deletion_policy: self.deletion_policy,
            restarts,
            ready: self.is_ready(),
            deleting: self.deleting,
        }
    }
}

/// What an OpsRequest's phase means for the operation that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsOutcome {
    /// Not final yet (queued, progressing, waiting for approval).
    Running,
    Succeeded,
    /// Final without the change: failed, skipped or denied, and why.
    Failed(String),
}

/// An OpsRequest as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedOpsRequest {
    pub name: String,
    pub namespace: String,
    pub engine: Engine,
    /// `spec.databaseRef.name`.
    pub database_name: String,
    /// `spec.type`, whatever it is.
    pub ops_type: String,
    /// The target value; None for other request types or unreadable values.
    pub change: Option<Change>,
    /// None while KubeDB has not picked the request up.
    pub phase: Option<OpsPhase>,
    pub created_at: Option<DateTime<Utc>>,
    /// The `dbaas.io/database-id` label.
    pub database_id: Option<String>,
    /// Reason and message of the latest condition (why it failed, say).
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl ObservedOpsRequest {
    /// Reads an OpsRequest; None if it is not a KubeDB OpsRequest of a known
    /// engine, or lacks a name or database reference.
    pub fn from_value(obj: &Value) -> Option<Self> {
        let engine = Engine::from_ops_kind(obj.get("kind")?.as_str()?)?;
        let spec = &obj["spec"];
        let ops_type = spec["type"].as_str().unwrap_or_default().to_string();
        let latest = obj["status"]["conditions"]
            .as_array()
            .and_then(|c| c.last());
        let text = |key: &str| latest.and_then(|c| c[key].as_str()).map(str::to_string);
        Some(ObservedOpsRequest {
            name: name_of(obj)?.to_string(),
            namespace: namespace_of(obj).to_string(),
            engine,
            database_name: spec["databaseRef"]["name"].as_str()?.to_string(),
            change: ops_change_of(engine, obj),
            ops_type,
            phase: obj["status"]["phase"].as_str().and_then(OpsPhase::parse),
            created_at: timestamp(&obj["metadata"]["creationTimestamp"]),
            database_id: label(obj, DATABASE_ID_LABEL),
            reason: text("reason"),
            message: text("message"),
        })
    }

    /// What the request's phase means for the operation following it.
    pub fn outcome(&self) -> OpsOutcome {
        let why = || {
            self.message
                .clone()
                .or(self.reason.clone())
                .unwrap_or_default()
        };
        match self.phase {
            Some(OpsPhase::Successful) => OpsOutcome::Succeeded,
            Some(OpsPhase::Failed) => OpsOutcome::Failed(format!("OpsRequest failed: {}", why())),
            Some(OpsPhase::Skipped) => {
                OpsOutcome::Failed("OpsRequest skipped by a newer request".into())
            }
            Some(OpsPhase::Denied) => OpsOutcome::Failed(format!("OpsRequest denied: {}", why())),
            _ => OpsOutcome::Running,
        }
    }
}

fn ops_change_of(engine: Engine, obj: &Value) -> Option<Change> {
    let es = engine.spec();
    let spec = &obj["spec"];
    match spec["type"].as_str()? {
        "VerticalScaling" => {
            let (cpu, mem) =
                requested_cpu_memory(&spec["verticalScaling"][es.vertical_key]["resources"])?;
            Size::from_resources(&cpu, &mem).map(Change::Size)
        }
        "HorizontalScaling" => {
            let n = spec["horizontalScaling"][es.horizontal_key].as_u64()?;
            u32::try_from(n).ok().map(Change::Replicas)
        }
        "VolumeExpansion" => {
            let q = spec["volumeExpansion"][es.volume_key].as_str()?;
            quantity::gibibytes(q).map(Change::StorageGb)
        }
        "UpdateVersion" => {
            VersionName::new(spec["updateVersion"]["targetVersion"].as_str()?).map(Change::Version)
        }
        "RotateAuth" => obj["metadata"]["annotations"][AUTH_ROTATION_ANNOTATION]
            .as_str()?
            .parse()
            .ok()
            .map(Change::AuthRotation),
        "Restart" => obj["metadata"]["annotations"][RESTART_ANNOTATION]
            .as_str()?
            .parse()
            .ok()
            .map(Change::Restart),
        _ => None,
    }
}

/// `metadata.name`.
pub fn name_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["name"].as_str()
}

/// `metadata.namespace` ("" for cluster-scoped objects).
pub fn namespace_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// Storage in GiB from `spec.storage.resources.requests.storage`.
pub fn storage_of(obj: &Value) -> Option<u32> {
    let q = &obj["spec"]["storage"]["resources"]["requests"]["storage"];
    match q {
        Value::String(s) => quantity::gibibytes(s),
        // Quantities may also be plain integers (bytes).
        Value::Number(n) => quantity::gibibytes(&n.to_string()),
        _ => None,
    }
}

/// The engine container's `resources` in `spec.podTemplate`, if present.
pub fn container_resources(obj: &Value, engine: Engine) -> Option<&Value> {
    obj["spec"]["podTemplate"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(engine.spec().container))
        .map(|c| &c["resources"])
}

/// `(cpu, memory)` from a `{requests, limits}` block: requests, or limits
/// where a request is missing (Kubernetes defaults requests to limits).
fn requested_cpu_memory(resources: &Value) -> Option<(String, String)> {
    let pick = |key: &str| {
        let v = resources["requests"]
            .get(key)
            .or_else(|| resources["limits"].get(key))?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    Some((pick("cpu")?, pick("memory")?))
}

fn label(obj: &Value, key: &str) -> Option<String> {
    obj["metadata"]["labels"][key].as_str().map(str::to_string)
}

/// Parses an RFC 3339 timestamp field.
pub fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Adds the keys of object `extra` to object `base` (builders only: the
/// blocks merged never overlap).
fn merge_objects(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(engine: Engine, size: Size, replicas: u32) -> DatabaseManifest {
        DatabaseManifest {
            engine,
            name: "orders".into(),
            namespace: "tn-1".into(),
            version: engine.spec().default_version.into(),
            size,
            replicas,
            storage_gb: 20,
            database_id: "db-abc".into(),
            tenant_id: "tn-1".into(),
            deletion_policy: DeletionPolicy::WipeOut,
        }
    }

    #[test]
    fn database_round_trips_for_every_engine_and_size() {
        for engine in Engine::ALL {
            for size in Size::ALL {
                let m = manifest(engine, size, 1);
                let obj = database_object(&m);
                assert_eq!(obj["kind"], engine.spec().kind);
                let seen = ObservedDatabase::from_value(&obj).unwrap();
                assert_eq!(seen.name, "orders");
                assert_eq!(seen.namespace, "tn-1");
                assert_eq!(seen.engine, engine);
                assert_eq!(seen.database_id.as_deref(), Some("db-abc"));
                assert_eq!(seen.replicas, Some(1));
                assert_eq!(seen.storage_gb, Some(20));
                assert_eq!(seen.size, Some(size));
                assert_eq!(seen.phase, None);
                assert_eq!(seen.deletion_policy, Some(DeletionPolicy::WipeOut));
                assert!(!seen.deleting);
            }
        }
    }

    #[test]
    fn engine_specifics() {
        let mongo = database_object(&manifest(Engine::Mongodb, Size::Micro, 1));
        assert_eq!(mongo["spec"]["replicaSet"]["name"], "rs0");
        let mysql1 = database_object(&manifest(Engine::Mysql, Size::Micro, 1));
        assert!(mysql1["spec"].get("topology").is_none());
        let mysql3 = database_object(&manifest(Engine::Mysql, Size::Micro, 3));
        assert_eq!(mysql3["spec"]["topology"]["mode"], "GroupReplication");
        let redis = database_object(&manifest(Engine::Redis, Size::Micro, 1));
        assert_eq!(redis["spec"]["mode"], "Standalone");
        let pg = database_object(&manifest(Engine::Postgres, Size::Large, 3));
        assert_eq!(
            pg["spec"]["podTemplate"]["spec"]["containers"][0]["name"],
            "postgres"
        );
        assert_eq!(
            pg["spec"]["podTemplate"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "8Gi"
        );
        assert_eq!(pg["metadata"]["labels"][MANAGED_BY_LABEL], "dbaas");
        assert_eq!(pg["metadata"]["labels"][TENANT_ID_LABEL], "tn-1");
    }

    #[test]
    fn ops_requests_round_trip_for_every_engine_and_change() {
        let mut changes: Vec<Change> = Size::ALL.into_iter().map(Change::Size).collect();
        changes.extend([
            Change::Replicas(3),
            Change::StorageGb(50),
            Change::Version(VersionName::new("16.4").unwrap()),
            Change::AuthRotation(2),
            Change::Restart(3),
        ]);
        for engine in Engine::ALL {
            for change in &changes {
                let obj = ops_request_object(
                    engine,
                    "op-1-1",
                    "tn-1",
                    "orders",
                    change,
                    &[(DATABASE_ID_LABEL, "db-abc")],
                );
                assert_eq!(obj["kind"], engine.spec().ops_kind);
                assert_eq!(obj["spec"]["apply"], "IfReady");
                let seen = ObservedOpsRequest::from_value(&obj).unwrap();
                assert_eq!(seen.name, "op-1-1");
                assert_eq!(seen.engine, engine);
                assert_eq!(seen.database_name, "orders");
                assert_eq!(Some(seen.ops_type.as_str()), change.ops_type());
                assert_eq!(seen.change, Some(*change));
                assert_eq!(seen.phase, None);
                assert_eq!(seen.database_id.as_deref(), Some("db-abc"));
            }
        }
    }

    #[test]
    fn ops_field_paths_follow_the_engine_table() {
        let v = ops_request_object(Engine::Mysql, "a", "n", "d", &Change::Replicas(5), &[]);
        assert_eq!(v["spec"]["horizontalScaling"]["member"], 5);
        let v = ops_request_object(Engine::Mongodb, "a", "n", "d", &Change::StorageGb(30), &[]);
        assert_eq!(
            v["spec"]["volumeExpansion"],
            json!({"mode": "Online", "replicaSet": "30Gi"})
        );
        let v = ops_request_object(
            Engine::Postgres,
            "a",
            "n",
            "d",
            &Change::Size(Size::Small),
            &[],
        );
        assert_eq!(
            v["spec"]["verticalScaling"]["postgres"]["resources"]["requests"]["cpu"],
            "1"
        );
    }

    #[test]
    fn reads_status_and_deletion() {
        let mut obj = database_object(&manifest(Engine::Postgres, Size::Small, 1));
        obj["status"] = json!({"phase": "Ready", "observedGeneration": 2});
        obj["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        obj["metadata"]["generation"] = json!(2);
        let seen = ObservedDatabase::from_value(&obj).unwrap();
        assert_eq!(seen.phase, Some(DatabasePhase::Ready));
        assert!(seen.deleting);
        assert_eq!((seen.generation, seen.observed_generation), (2, Some(2)));

        // Quantities written in other units still map to sizes and GiB.
        let c = &mut obj["spec"]["podTemplate"]["spec"]["containers"][0]["resources"];
        *c = json!({"limits": {"cpu": "1000m", "memory": "2048Mi"}});
        obj["spec"]["storage"]["resources"]["requests"]["storage"] = json!("21474836480");
        let seen = ObservedDatabase::from_value(&obj).unwrap();
        assert_eq!(seen.size, Some(Size::Small));
        assert_eq!(seen.storage_gb, Some(20));
        obj["spec"]["podTemplate"]["spec"]["containers"][0]["resources"] =
            json!({"requests": {"cpu": "3", "memory": "1Gi"}});
        assert_eq!(ObservedDatabase::from_value(&obj).unwrap().size, None);

        let mut op = ops_request_object(Engine::Redis, "a", "n", "d", &Change::Replicas(1), &[]);
        op["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        op["status"] = json!({"phase": "Failed", "conditions": [
            {"type": "Failed", "status": "True", "reason": "Boom", "message": "it broke",
             "lastTransitionTime": "2025-01-01T00:00:01Z"}]});
        let seen = ObservedOpsRequest::from_value(&op).unwrap();
        assert_eq!(seen.phase, Some(OpsPhase::Failed));
        assert_eq!(seen.reason.as_deref(), Some("Boom"));
        assert_eq!(seen.message.as_deref(), Some("it broke"));
        assert_eq!(seen.created_at, timestamp(&json!("2025-01-01T00:00:00Z")));
        assert!(ObservedOpsRequest::from_value(&json!({"kind": "Pod"})).is_none());
    }
}
