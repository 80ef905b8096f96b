//! The cluster: Kubernetes objects as JSON, behind a small trait.
//!
//! The control plane only needs a handful of verbs on a handful of kinds
//! (KubeDB databases and OpsRequests, Secrets, Leases), so objects are
//! `serde_json::Value`s addressed by a [`Kind`]. Two adapters implement
//! [`Cluster`]: a real API server through kube-rs, and an embedded one
//! (in-process, persisted under the local data directory) that keeps the API
//! server's semantics the roles rely on: resourceVersion, generation,
//! finalizers with deletionTimestamp, a status subresource and leases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use dbaas_core::Result;
use dbaas_core::engine::Engine;

mod args;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "kube")]
pub mod kube;
pub mod lease;

pub use args::ClusterArgs;

/// A resource type: group, version, kind and plural name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl Kind {
    /// The KubeDB database kind of `engine` (`kubedb.com/v1`).
    pub fn database(engine: Engine) -> Kind {
        let s = engine.spec();
        Kind {
            group: "kubedb.com",
            version: "v1",
            kind: s.kind,
            plural: s.plural,
        }
    }

    /// The OpsRequest kind of `engine` (`ops.kubedb.com/v1alpha1`).
    pub fn ops_request(engine: Engine) -> Kind {
        let s = engine.spec();
        Kind {
            group: "ops.kubedb.com",
            version: "v1alpha1",
            kind: s.ops_kind,
            plural: s.ops_plural,
        }
    }

    /// The engine's version catalog kind (cluster-scoped: namespace "").
    pub fn catalog(engine: Engine) -> Kind {
        let s = engine.spec();
        Kind {
            group: "catalog.kubedb.com",
            version: "v1alpha1",
            kind: s.version_kind,
            plural: s.version_plural,
        }
    }

    pub fn secret() -> Kind {
        Kind {
            group: "",
            version: "v1",
            kind: "Secret",
            plural: "secrets",
        }
    }

    pub fn service() -> Kind {
        Kind {
            group: "",
            version: "v1",
            kind: "Service",
            plural: "services",
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Kubernetes API verbs on JSON objects. Every call counts one API call.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Every object of `kind` in `namespace` (`""`: all namespaces),
    /// following pagination.
    async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>>;
    async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>>;
    /// Creates `object` (with strict field validation on a real API server).
    /// `Error::AlreadyExists` if the name is taken.
    async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value>;
    /// JSON merge patch of metadata and spec. `Error::NotFound` if absent.
    async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value>;
    /// JSON merge patch of the status subresource.
    async fn merge_patch_status(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value>;
    /// Deletes the object (or marks it with a deletionTimestamp while
    /// finalizers remain). Returns false if it did not exist.
    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool>;
    /// Makes sure the namespace exists.
    async fn ensure_namespace(&self, namespace: &str) -> Result<()>;

    /// Takes or renews the named `coordination.k8s.io` Lease for `holder`
    /// when it is free, expired, or already held by `holder`.
    async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives the lease up if `holder` holds it.
    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()>;

    /// API calls made through this client so far.
    fn api_calls(&self) -> u64;
}
