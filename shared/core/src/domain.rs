//! The records the control plane keeps: databases (desired and observed
//! state side by side) and the operations that close the gap.
//!
//! Desired fields (`size`, `replicas`, `storage_gb`, `deletion_requested`)
//! are written only by the API; observed fields (`current_*`) only by the
//! reconciler and worker. Stores update them field by field so neither
//! side can clobber the other.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::catalog::VersionName;
use crate::drift::Change;
use crate::engine::Engine;

/// An instance class: CPU and memory, requests equal to limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Size {
    #[serde(rename = "db.t3.micro")]
    Micro,
    #[serde(rename = "db.t3.small")]
    Small,
    #[serde(rename = "db.t3.medium")]
    Medium,
    #[serde(rename = "db.t3.large")]
    Large,
    #[serde(rename = "db.t3.xlarge")]
    Xlarge,
    #[serde(rename = "db.t3.2xlarge")]
    Xlarge2,
}

impl Size {
    pub const ALL: [Size; 6] = [
        Size::Micro,
        Size::Small,
        Size::Medium,
        Size::Large,
        Size::Xlarge,
        Size::Xlarge2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Size::Micro => "db.t3.micro",
            Size::Small => "db.t3.small",
            Size::Medium => "db.t3.medium",
            Size::Large => "db.t3.large",
            Size::Xlarge => "db.t3.xlarge",
            Size::Xlarge2 => "db.t3.2xlarge",
        }
    }

    pub fn parse(s: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|z| z.as_str() == s)
    }

    /// Kubernetes quantities `(cpu, memory)`, used for requests and limits.
    pub fn resources(self) -> (&'static str, &'static str) {
        match self {
            Size::Micro => ("500m", "1Gi"),
            Size::Small => ("1", "2Gi"),
            Size::Medium => ("2", "4Gi"),
            Size::Large => ("2", "8Gi"),
            Size::Xlarge => ("4", "16Gi"),
            Size::Xlarge2 => ("8", "32Gi"),
        }
    }

    /// The size whose CPU and memory match these quantities, if any.
    /// Quantities are compared by value, so "1000m" matches "1".
    pub fn from_resources(cpu: &str, memory: &str) -> Option<Size> {
        let (cpu, memory) = (
            crate::quantity::millicores(cpu)?,
            crate::quantity::bytes(memory)?,
        );
        Size::ALL.into_iter().find(|s| {
            let (c, m) = s.resources();
            crate::quantity::millicores(c) == Some(cpu) && crate::quantity::bytes(m) == Some(memory)
        })
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a database is in its life, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseStatus {
    /// Declared; the cluster has not reported it ready yet.
    Provisioning,
    /// Running, and current state matches desired state.
    Ready,
    /// Running; desired state differs from current and is being applied.
    Updating,
    /// An operation failed past its retry bound; see `conditions`.
    Failed,
    /// Paused by the user: KubeDB halted it (no pods, volumes kept).
    Paused,
    /// Deletion requested; the cluster resources are being removed.
    Deleting,
    /// Deleted: the record stays for the audit trail.
    Deleted,
}

impl DatabaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseStatus::Provisioning => "provisioning",
            DatabaseStatus::Ready => "ready",
            DatabaseStatus::Updating => "updating",
            DatabaseStatus::Failed => "failed",
            DatabaseStatus::Paused => "paused",
            DatabaseStatus::Deleting => "deleting",
            DatabaseStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use DatabaseStatus::*;
        [
            Provisioning,
            Ready,
            Updating,
            Failed,
            Paused,
            Deleting,
            Deleted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A Kubernetes-style condition on a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    /// `Ready`, `Synced` or `Failed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

/// Where a database is reached and which Secret holds its login, as KubeDB
/// sets it up for the CR; never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    /// The primary Service's cluster DNS name.
    pub host: String,
    pub port: u16,
    /// The namespace of the Services and the Secret.
    pub namespace: String,
    /// The primary Service (read-write).
    pub primary_service: String,
    /// The standby Service (read-only replicas); null with one replica.
    pub standby_service: Option<String>,
    /// The headless Service of the pods.
    pub pods_service: String,
    /// The Secret with `username` and `password`.
    pub auth_secret: String,
    /// A client URI without the password.
    pub uri: String,
}

impl Connection {
    /// The connection KubeDB sets up for the CR `cr` in `namespace`.
    pub fn of(engine: Engine, cr: &str, namespace: &str, auth_secret: &str, replicas: u32) -> Self {
        let spec = engine.spec();
        let host = format!("{cr}.{namespace}.svc");
        Connection {
            uri: spec
                .uri_template
                .replace("{user}", spec.user)
                .replace("{host}", &host)
                .replace("{port}", &spec.port.to_string()),
            host,
            port: spec.port,
            namespace: namespace.to_string(),
            primary_service: cr.to_string(),
            standby_service: (replicas > 1).then(|| format!("{cr}-standby")),
            pods_service: format!("{cr}-pods"),
            auth_secret: auth_secret.to_string(),
        }
    }
}

/// What a deletion keeps: the CR's `deletionPolicy`, as users choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Pods and volumes go: the data is gone (KubeDB keeps the Secret).
    Delete,
    /// Everything goes, the Secret with the credentials included.
    #[default]
    Wipeout,
    /// Volumes and the Secret stay, so the data can be brought back.
    Halt,
}

impl OnDelete {
    pub const ALL: [OnDelete; 3] = [OnDelete::Delete, OnDelete::Wipeout, OnDelete::Halt];

    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Delete => "delete",
            OnDelete::Wipeout => "wipeout",
            OnDelete::Halt => "halt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        OnDelete::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The KubeDB `deletionPolicy` that does it.
    pub fn kubedb(self) -> crate::kubedb::DeletionPolicy {
        use crate::kubedb::DeletionPolicy;
        match self {
            OnDelete::Delete => DeletionPolicy::Delete,
            OnDelete::Wipeout => DeletionPolicy::WipeOut,
            OnDelete::Halt => DeletionPolicy::Halt,
        }
    }

    /// The choice a KubeDB policy stands for (`DoNotTerminate` stands for none).
    pub fn from_kubedb(p: crate::kubedb::DeletionPolicy) -> Option<Self> {
        OnDelete::ALL.into_iter().find(|o| o.kubedb() == p)
    }
}

/// A database as users declare it and as the cluster runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Database {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub engine: Engine,
    /// Desired catalog version.
    pub version: String,
    /// The version the CR runs; null until observed.
    #[serde(default)]
    pub current_version: Option<String>,
    /// Desired instance class.
    pub size: Size,
    /// Desired replica count.
    pub replicas: u32,
    /// Desired storage in GiB.
    pub storage_gb: u32,
    /// Observed instance class; null until the reconciler has seen the cluster.
    pub current_size: Option<Size>,
    pub current_replicas: Option<u32>,
    pub current_storage_gb: Option<u32>,
    /// Desired count of credential rotations (each request adds one).
    #[serde(default)]
    pub auth_rotation: u64,
    /// Rotations KubeDB has carried out.
    #[serde(default)]
    pub current_auth_rotation: u64,
    /// How to reach the database; null until the cluster has set it up.
    #[serde(default)]
    pub connection: Option<Connection>,
    /// Desired: halted (no pods; volumes and Secret kept) until resumed.
    #[serde(default)]
    pub paused: bool,
    /// Whether KubeDB has the database halted.
    #[serde(default)]
    pub current_paused: bool,
    /// A DELETE is refused while this is true.
    #[serde(default)]
    pub deletion_protection: bool,
    /// What a deletion keeps.
    #[serde(default)]
    pub deletion_policy: OnDelete,
    /// The policy on the CR (`halt` while paused: KubeDB forces it); null
    /// until observed, or when the CR has one no user chose.
    #[serde(default)]
    pub current_deletion_policy: Option<OnDelete>,
    /// Desired count of restarts (each request adds one).
    #[serde(default)]
    pub restarts: u64,
    /// Restarts KubeDB has carried out.
    #[serde(default)]
    pub current_restarts: u64,
    /// True once the user asked for deletion (desired state).
    pub deletion_requested: bool,
    /// Bumped by every change to desired state.
    pub generation: u64,
    /// The generation that current state last matched.
    pub observed_generation: u64,
    pub status: DatabaseStatus,
    pub conditions: Vec<Condition>,
    /// The operation currently working on this database, if any.
    pub active_operation_id: Option<String>,
    /// How many operations were ever started for this database; part of the
    /// next operation's identity.
    pub operation_seq: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Database {
    /// A newly declared database: a fresh id, the engine's default version,
    /// generation 1, nothing observed yet.
    pub fn declared(
        tenant_id: impl Into<String>,
        name: impl Into<String>,
        engine: Engine,
        size: Size,
        replicas: u32,
        storage_gb: u32,
        now: DateTime<Utc>,
    ) -> Database {
        Database {
            id: new_database_id(),
            tenant_id: tenant_id.into(),
            name: name.into(),
            engine,
            version: engine.spec().default_version.to_owned(),
            current_version: None,
            size,
            replicas,
            storage_gb,
            current_size: None,
            current_replicas: None,
            current_storage_gb: None,
            auth_rotation: 0,
            current_auth_rotation: 0,
            connection: None,
            paused: false,
            current_paused: false,
            deletion_protection: false,
            deletion_policy: OnDelete::default(),
            current_deletion_policy: None,
            restarts: 0,
            current_restarts: 0,
            deletion_requested: false,
            generation: 1,
            observed_generation: 0,
            status: DatabaseStatus::Provisioning,
            conditions: Vec::new(),
            active_operation_id: None,
            operation_seq: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// The entity tag for `If-Match`: it versions the desired state, which
    /// is what a client's conditional PATCH depends on. Observed fields change
    /// under the reconciler all the time and must not make a PATCH stale.
    pub fn etag(&self) -> String {
        format!("\"g{}\"", self.generation)
    }

    /// Desired state as the drift computation takes it. A version name
    /// the API would not admit leaves the version as `observed` runs it.
    pub fn desired(&self, observed: Option<&crate::drift::Observed>) -> crate::drift::Desired {
        crate::drift::Desired {
            size: self.size,
            replicas: self.replicas,
            storage_gb: self.storage_gb,
            version: VersionName::new(&self.version)
                .or(observed.and_then(|o| o.version))
                .or_else(|| VersionName::new(self.engine.spec().default_version))
                .expect("engine default versions are short"),
            auth_rotation: self.auth_rotation,
            paused: self.paused,
            deletion_policy: self.deletion_policy,
            restarts: self.restarts,
            deletion_requested: self.deletion_requested,
        }
    }

    /// Current state as the last pass recorded it, in the drift
    /// computation's terms; `None` before the cluster was first observed.
    pub fn observed(&self) -> Option<crate::drift::Observed> {
        let seen = self.current_size.is_some()
            || self.current_replicas.is_some()
            || self.current_storage_gb.is_some();
        seen.then(|| crate::drift::Observed {
            size: self.current_size,
            replicas: self.current_replicas.unwrap_or(0),
            storage_gb: self.current_storage_gb.unwrap_or(0),
            version: self.current_version.as_deref().and_then(VersionName::new),
            auth_rotation: self.current_auth_rotation,
            halted: self.current_paused,
            deletion_policy: self.current_deletion_policy.map(OnDelete::kubedb),
            restarts: self.current_restarts,
            ready: matches!(
                self.status,
                DatabaseStatus::Ready | DatabaseStatus::Updating | DatabaseStatus::Failed
            ) && !self.current_paused,
            deleting: false,
        })
    }

    /// The desired values a cancel of `op` puts back: the field it targets
    /// returns to its current value, if it still holds the operation's
    /// target (a newer write to that field wins). `None` when nothing is
    /// left to take back.
    pub fn taken_back(&self, op: &Operation) -> Option<DesiredState> {
        let Action::Change(change) = op.action else {
            return None;
        };
        let back = match change {
            Change::Size(s) if self.size == s => DesiredState {
                size: Some(self.current_size?),
                ..Default::default()
            },
            Change::Replicas(r) if self.replicas == r => DesiredState {
                replicas: Some(self.current_replicas?),
                ..Default::default()
            },
            Change::StorageGb(g) if self.storage_gb == g => DesiredState {
                storage_gb: Some(self.current_storage_gb?),
                ..Default::default()
            },
            Change::Version(v) if self.version == v.as_str() => DesiredState {
                version: Some(self.current_version.clone()?),
                ..Default::default()
            },
            Change::AuthRotation(n) if self.auth_rotation == n => DesiredState {
                auth_rotation: Some(self.current_auth_rotation),
                ..Default::default()
            },
            Change::Restart(n) if self.restarts == n => DesiredState {
                restarts: Some(self.current_restarts),
                ..Default::default()
            },
            _ => return None,
        };
        let unchanged = back.size.is_none_or(|s| s == self.size)
            && back.replicas.is_none_or(|r| r == self.replicas)
            && back.storage_gb.is_none_or(|g| g == self.storage_gb)
            && back.version.as_deref().is_none_or(|v| v == self.version)
            && back.auth_rotation.is_none_or(|n| n == self.auth_rotation)
            && back.restarts.is_none_or(|n| n == self.restarts);
        (!unchanged).then_some(back)
    }

    /// Whether desired and current state agree.
    pub fn in_sync(&self) -> bool {
        self.current_size == Some(self.size)
            && self.current_replicas == Some(self.replicas)
            && self.current_storage_gb == Some(self.storage_gb)
            && self.current_version.as_deref() == Some(self.version.as_str())
            && self.current_auth_rotation >= self.auth_rotation
            && self.current_paused == self.paused
            && self.current_restarts >= self.restarts
    }
}

/// What kind of change an operation makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    Provision,
    ScaleVertical,
    ScaleHorizontal,
    ExpandStorage,
    UpdateVersion,
    RotateAuth,
    Pause,
    Resume,
    SetDeletionPolicy,
    Restart,
    Deprovision,
}

impl OperationType {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Provision => "provision",
            OperationType::ScaleVertical => "scale_vertical",
            OperationType::ScaleHorizontal => "scale_horizontal",
            OperationType::ExpandStorage => "expand_storage",
            OperationType::UpdateVersion => "update_version",
            OperationType::RotateAuth => "rotate_auth",
            OperationType::Pause => "pause",
            OperationType::Resume => "resume",
            OperationType::SetDeletionPolicy => "set_deletion_policy",
            OperationType::Restart => "restart",
            OperationType::Deprovision => "deprovision",
        }
    }
}

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    /// Created and queued, not yet claimed by a worker.
    Pending,
    /// Claimed by a worker.
    Running,
    Succeeded,
    /// Failed; retried with backoff while attempts remain.
    Failed,
    Cancelled,
    /// Replaced by an operation for a newer desired state.
    Superseded,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Succeeded => "succeeded",
            OperationStatus::Failed => "failed",
            OperationStatus::Cancelled => "cancelled",
            OperationStatus::Superseded => "superseded",
        }
    }

    /// No more work will happen (a failed operation may still be retried by
    /// the reconciler, which moves it back to pending).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded | OperationStatus::Cancelled | OperationStatus::Superseded
        )
    }
}

/// The target values of an operation as the API shows them (and the
/// MongoDB store keeps them): the wire form of an [`Action`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DesiredState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<u32>,
    /// The catalog version an upgrade moves to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The rotation count a credential rotation brings the database to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_rotation: Option<u64>,
    /// Halted (pause) or running (resume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<OnDelete>,
    /// The restart count a restart brings the database to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

/// What a new database CR is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub size: Size,
    pub replicas: u32,
    pub storage_gb: u32,
}

/// What an operation does, with its target: planned by the reconciler,
/// stored with the operation, carried out by the worker. Every variant has
/// what its work needs, so an operation cannot lack a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create the database CR.
    Provision(Spec),
    /// Change one field with one OpsRequest.
    Change(Change),
    /// Delete the database CR.
    Deprovision,
}

impl Action {
    pub fn operation_type(self) -> OperationType {
        match self {
            Action::Provision(_) => OperationType::Provision,
            Action::Change(c) => c.operation_type(),
            Action::Deprovision => OperationType::Deprovision,
        }
    }

    /// The wire form: the operation's type and target values.
    pub fn desired_state(self) -> DesiredState {
        match self {
            Action::Provision(spec) => DesiredState {
                size: Some(spec.size),
                replicas: Some(spec.replicas),
                storage_gb: Some(spec.storage_gb),
                ..Default::default()
            },
            Action::Change(Change::Size(s)) => DesiredState {
                size: Some(s),
                ..Default::default()
            },
            Action::Change(Change::Replicas(r)) => DesiredState {
                replicas: Some(r),
                ..Default::default()
            },
            Action::Change(Change::StorageGb(g)) => DesiredState {
                storage_gb: Some(g),
                ..Default::default()
            },
            Action::Change(Change::Version(v)) => DesiredState {
                version: Some(v.as_str().to_string()),
                ..Default::default()
            },
            Action::Change(Change::AuthRotation(n)) => DesiredState {
                auth_rotation: Some(n),
                ..Default::default()
            },
            Action::Change(Change::Paused(p)) => DesiredState {
                paused: Some(p),
                ..Default::default()
            },
            Action::Change(Change::DeletionPolicy(p)) => DesiredState {
                deletion_policy: Some(p),
                ..Default::default()
            },
            Action::Change(Change::Restart(n)) => DesiredState {
                restarts: Some(n),
                ..Default::default()
            },
            Action::Deprovision => DesiredState::default(),
        }
    }

    /// Reads the wire form back; `None` when the type's target is missing.
    pub fn from_wire(type_: OperationType, ds: &DesiredState) -> Option<Action> {
        Some(match type_ {
            OperationType::Provision => Action::Provision(Spec {
                size: ds.size?,
                replicas: ds.replicas?,
                storage_gb: ds.storage_gb?,
            }),
            OperationType::ScaleVertical => Action::Change(Change::Size(ds.size?)),
            OperationType::ScaleHorizontal => Action::Change(Change::Replicas(ds.replicas?)),
            OperationType::ExpandStorage => Action::Change(Change::StorageGb(ds.storage_gb?)),
            OperationType::UpdateVersion => {
                Action::Change(Change::Version(VersionName::new(ds.version.as_deref()?)?))
            }
            OperationType::RotateAuth => Action::Change(Change::AuthRotation(ds.auth_rotation?)),
            OperationType::Pause => Action::Change(Change::Paused(true)),
            OperationType::Resume => Action::Change(Change::Paused(false)),
            OperationType::SetDeletionPolicy => {
                Action::Change(Change::DeletionPolicy(ds.deletion_policy?))
            }
            OperationType::Restart => Action::Change(Change::Restart(ds.restarts?)),
            OperationType::Deprovision => Action::Deprovision,
        })
    }
}

/// An action on the wire: `type` and `desired_state` side by side.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ActionWire {
    #[serde(rename = "type")]
    pub type_: OperationType,
    pub desired_state: DesiredState,
}

impl From<Action> for ActionWire {
    fn from(a: Action) -> Self {
        ActionWire {
            type_: a.operation_type(),
            desired_state: a.desired_state(),
        }
    }
}

impl TryFrom<ActionWire> for Action {
    type Error = String;

    fn try_from(w: ActionWire) -> Result<Self, String> {
        Action::from_wire(w.type_, &w.desired_state).ok_or_else(|| {
            format!(
                "operation of type {} without its target values",
                w.type_.as_str()
            )
        })
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ActionWire::from(*self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Action::try_from(ActionWire::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One change to the cluster, executed by one worker at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    pub id: String,
    pub database_id: String,
    pub tenant_id: String,
    /// What it does, and its target; `type` and `desired_state` on the wire.
    #[serde(flatten)]
    #[schema(inline, value_type = ActionWire)]
    pub action: Action,
    /// The database generation this operation was planned for.
    pub target_generation: u64,
    pub status: OperationStatus,
    /// Attempts started so far (1 on the first run).
    pub attempts: u32,
    pub error: Option<String>,
    /// Name of the OpsRequest (or database CR) of the current attempt.
    pub ops_request_name: Option<String>,
    pub ops_request_phase: Option<String>,
    /// A running operation whose claim is older than this may be taken over.
    pub claimed_until: Option<DateTime<Utc>>,
    /// The claim token of the worker that last claimed the operation; a
    /// worker writes to a running operation only while it holds the claim.
    pub claimed_by: Option<String>,
    /// A failed operation is not retried before this time.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Operation {
    /// The deterministic id of the operation of `type_` planned for
    /// `database_id` at `generation`, as its `seq`-th operation: a crash
    /// between planning and recording yields the same id again.
    pub fn id_for(database_id: &str, type_: OperationType, generation: u64, seq: u64) -> String {
        let digest = Sha256::digest(format!(
            "{database_id}/{}/{generation}/{seq}",
            type_.as_str()
        ));
        format!("op-{}", &hex::encode(digest)[..16])
    }

    /// The pending first attempt of `action`, planned for `db` as it is now
    /// (its generation and operation count).
    pub fn planned(db: &Database, action: Action, now: DateTime<Utc>) -> Operation {
        Operation {
            id: Operation::id_for(
                &db.id,
                action.operation_type(),
                db.generation,
                db.operation_seq,
            ),
            database_id: db.id.clone(),
            tenant_id: db.tenant_id.clone(),
            action,
            target_generation: db.generation,
            status: OperationStatus::Pending,
            attempts: 1,
            error: None,
            ops_request_name: None,
            ops_request_phase: None,
            claimed_until: None,
            claimed_by: None,
            next_attempt_at: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    pub fn type_(&self) -> OperationType {
        self.action.operation_type()
    }

    /// Why a cancel cannot take this operation back, whatever its state:
    /// only a change of one desired value can be put back.
    pub fn cancel_refusal(&self) -> Option<&'static str> {
        match self.action {
            Action::Provision(_) => Some("a provision cannot be cancelled: delete the database"),
            Action::Deprovision => Some("a deletion cannot be cancelled"),
            Action::Change(Change::Paused(_)) => {
                Some("a pause or resume cannot be cancelled: PATCH paused instead")
            }
            Action::Change(Change::DeletionPolicy(_)) => {
                Some("a deletion policy change cannot be cancelled: PATCH deletion_policy instead")
            }
            Action::Change(_) => None,
        }
    }

    /// Name of the KubeDB object this attempt creates: derived from the id so
    /// a worker that restarts finds and adopts it instead of creating another.
    pub fn ops_request_name_for_attempt(&self) -> String {
        format!("{}-{}", self.id, self.attempts.max(1))
    }
}

/// A tenant: the owner of API keys and databases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A stored API key: only the hash of the secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// The key's first characters, to tell keys apart without the secret.
    pub prefix: String,
    pub tenant_id: String,
    pub created_at: DateTime<Utc>,
}

/// What happened to a database, in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A user declared the database.
    Created,
    /// A user changed desired fields (the message says which, old → new).
    DesiredChanged,
    /// A user asked for deletion.
    DeletionRequested,
    /// A user asked for a restart.
    RestartRequested,
    /// A user read the database's credentials.
    CredentialsRead,
    /// A user asked for new credentials.
    CredentialsRotationRequested,
    /// The reconciler planned an operation.
    OperationPlanned,
    /// A worker started an attempt of an operation.
    OperationStarted,
    /// The reconciler started another attempt of a failed operation.
    OperationRetried,
    OperationSucceeded,
    OperationFailed,
    /// A user cancelled an operation (its change was taken back).
    OperationCancelled,
    /// A newer desired state replaced the operation.
    OperationSuperseded,
    /// The status users see changed.
    StatusChanged,
    /// The cluster resources are gone; the record stays.
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "created",
            EventType::DesiredChanged => "desired_changed",
            EventType::DeletionRequested => "deletion_requested",
            EventType::RestartRequested => "restart_requested",
            EventType::CredentialsRead => "credentials_read",
            EventType::CredentialsRotationRequested => "credentials_rotation_requested",
            EventType::OperationPlanned => "operation_planned",
            EventType::OperationStarted => "operation_started",
            EventType::OperationRetried => "operation_retried",
            EventType::OperationSucceeded => "operation_succeeded",
            EventType::OperationFailed => "operation_failed",
            EventType::OperationCancelled => "operation_cancelled",
            EventType::OperationSuperseded => "operation_superseded",
            EventType::StatusChanged => "status_changed",
            EventType::Deleted => "deleted",
        }
    }
}

/// One entry of a database's history (kept after the database is deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub database_id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub type_: EventType,
    /// The prefix of the API key that caused it, when a user did.
    pub api_key: Option<String>,
    /// The operation it is about, if any.
    #[serde(default)]
    pub operation_id: Option<String>,
    pub message: String,
    pub at: DateTime<Utc>,
}

impl Event {
    /// An event of `db` now, with a fresh id.
    pub fn new(
        db: &Database,
        type_: EventType,
        api_key: Option<&str>,
        message: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Event {
        Event {
            id: format!("ev-{}", random_token(16)),
            database_id: db.id.clone(),
            tenant_id: db.tenant_id.clone(),
            type_,
            api_key: api_key.map(str::to_string),
            operation_id: None,
            message: message.into(),
            at,
        }
    }

    /// An event about operation `op`, with an id derived from the
    /// operation, its attempt and `type_`: a role that repeats a write after
    /// a crash writes the same event again, not a second one.
    pub fn of_operation(
        op: &Operation,
        type_: EventType,
        message: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Event {
        let digest = Sha256::digest(format!("{}/{}/{}", op.id, op.attempts, type_.as_str()));
        Event {
            id: format!("ev-{}", &hex::encode(digest)[..20]),
            database_id: op.database_id.clone(),
            tenant_id: op.tenant_id.clone(),
            type_,
            api_key: None,
            operation_id: Some(op.id.clone()),
            message: message.into(),
            at,
        }
    }
}

/// Random lowercase alphanumerics: ids that are valid in Kubernetes names.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn new_database_id() -> String {
    format!("db-{}", random_token(12))
}

pub fn new_tenant_id() -> String {
    format!("tn-{}", random_token(12))
}

/// A new API key: `dbk_` and 32 random characters (about 165 bits).
pub fn new_api_key() -> String {
    format!("dbk_{}", random_token(32))
}

/// How keys are stored: SHA-256 is enough because keys are long and random.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_table() {
        assert_eq!(Size::Micro.resources(), ("500m", "1Gi"));
        assert_eq!(Size::Small.resources(), ("1", "2Gi"));
        assert_eq!(Size::Medium.resources(), ("2", "4Gi"));
        assert_eq!(Size::Large.resources(), ("2", "8Gi"));
        assert_eq!(Size::Xlarge.resources(), ("4", "16Gi"));
        assert_eq!(Size::Xlarge2.resources(), ("8", "32Gi"));
        for s in Size::ALL {
            assert_eq!(Size::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            let (c, m) = s.resources();
            assert_eq!(Size::from_resources(c, m), Some(s));
        }
        assert_eq!(Size::from_resources("1000m", "2048Mi"), Some(Size::Small));
        assert_eq!(Size::from_resources("3", "2Gi"), None);
        assert_eq!(Size::parse("db.t3.huge"), None);
    }

    #[test]
    fn operation_ids_are_deterministic_and_distinct() {
        let a = Operation::id_for("db-1", OperationType::ScaleVertical, 3, 0);
        assert_eq!(
            a,
            Operation::id_for("db-1", OperationType::ScaleVertical, 3, 0)
        );
        assert_ne!(
            a,
            Operation::id_for("db-1", OperationType::ScaleVertical, 4, 0)
        );
        assert_ne!(
            a,
            Operation::id_for("db-1", OperationType::ScaleVertical, 3, 1)
        );
        assert_ne!(
            a,
            Operation::id_for("db-2", OperationType::ScaleVertical, 3, 0)
        );
        assert_ne!(
            a,
            Operation::id_for("db-1", OperationType::ScaleHorizontal, 3, 0)
        );
    }

    #[test]
    fn api_keys_are_long_and_hashed() {
        let k = new_api_key();
        assert!(k.len() >= 36);
        assert_ne!(k, new_api_key());
        assert_eq!(hash_api_key(&k).len(), 64);
    }
}
