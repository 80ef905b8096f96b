//! [`Cluster`] on a real Kubernetes API server, through kube-rs.
//!
//! Objects travel as raw JSON so that nothing is lost or reordered by a
//! typed model; writes use strict field validation, so an unknown field is
//! an error (`Error::Invalid`) instead of being silently pruned.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, ValidationDirective,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, Request, Resource};
use kube::{Client, Config};
use serde_json::{Value, json};

use crate::lease::{lease_is_free_for, lease_released, lease_taken};
use crate::{Cluster, Kind};
use dbaas_core::error::{Error, Result};

/// The client's error as the cluster's: API statuses by meaning (exists,
/// conflict, not found, invalid), anything else kept as the source.
fn kube_err(e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => {
            Error::AlreadyExists(s.message.clone())
        }
        kube::Error::Api(s) if s.code == 409 => Error::Conflict(s.message.clone()),
        kube::Error::Api(s) if s.code == 404 => Error::NotFound(s.message.clone()),
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => Error::Invalid(s.message.clone()),
        _ => Error::Kube(Box::new(e)),
    }
}

/// Page size of list calls.
const PAGE: u32 = 500;
/// Recorded as the writer of every field we set.
const FIELD_MANAGER: &str = "dbaas";

/// A Kubernetes API server.
pub struct KubeCluster {
    client: Client,
    calls: AtomicU64,
}

impl KubeCluster {
    /// Connects with the kubeconfig at `path`, or, with None, the usual
    /// inference: `$KUBECONFIG`, `~/.kube/config`, then in-cluster.
    pub async fn from_kubeconfig(path: Option<&Path>) -> Result<KubeCluster> {
        let config = match path {
            Some(p) => {
                let kc = Kubeconfig::read_from(p)
                    .map_err(|e| Error::Config(format!("kubeconfig {}: {e}", p.display())))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| Error::Config(format!("kubeconfig {}: {e}", p.display())))?
            }
            None => Config::infer()
                .await
                .map_err(|e| Error::Config(format!("kubernetes config: {e}")))?,
        };
        let client = Client::try_from(config)
            .map_err(|e| Error::Config(format!("kubernetes client: {e}")))?;
        Ok(KubeCluster::from_client(client))
    }

    /// Wraps an existing client.
    pub fn from_client(client: Client) -> KubeCluster {
        KubeCluster {
            client,
            calls: AtomicU64::new(0),
        }
    }

    /// Sends one request, counting it.
    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<Value> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.client
            .request::<Value>(request)
            .await
            .map_err(kube_err)
    }

    fn leases(&self, namespace: &str) -> Api<Lease> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// The collection URL of `kind` in `namespace` ("" = all namespaces).
fn url_path(kind: &Kind, namespace: &str) -> String {
    let ar = ApiResource {
        group: kind.group.to_string(),
        version: kind.version.to_string(),
        api_version: kind.api_version(),
        kind: kind.kind.to_string(),
        plural: kind.plural.to_string(),
    };
    DynamicObject::url_path(&ar, (!namespace.is_empty()).then_some(namespace))
}

fn strict_patch() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
    .validation(ValidationDirective::Strict)
}

/// A 409 on a write with a resourceVersion: someone else wrote first.
fn lost_race(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[async_trait]
impl Cluster for KubeCluster {
    /// Follows `continue` tokens, 500 objects a page. `namespace` "" lists
    /// every namespace. Items get `apiVersion` and `kind` filled in (list
    /// responses may leave them out) and lose `metadata.managedFields`.
    async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>> {
        let request = Request::new(url_path(kind, namespace));
        let mut params = ListParams {
            limit: Some(PAGE),
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let mut page = self
                .send(
                    request
                        .list(&params)
                        .map_err(kube::Error::BuildRequest)
                        .map_err(kube_err)?,
                )
                .await?;
            if let Some(items) = page.get_mut("items").and_then(Value::as_array_mut) {
                for mut item in items.drain(..) {
                    // Often most of an object, and no reader needs it: a
                    // pass over 10k CRs holds every one at once.
                    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("managedFields");
                    }
                    item["apiVersion"] = json!(kind.api_version());
                    item["kind"] = json!(kind.kind);
                    out.push(item);
                }
            }
            match page["metadata"]["continue"]
                .as_str()
                .filter(|t| !t.is_empty())
            {
                Some(token) => params.continue_token = Some(token.to_string()),
                None => return Ok(out),
            }
        }
    }

    async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>> {
        let request = Request::new(url_path(kind, namespace))
            .get(name, &Default::default())
            .map_err(kube::Error::BuildRequest)
            .map_err(kube_err)?;
        match self.send(request).await {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value> {
        // kube's PostParams has no fieldValidation, so the query is ours.
        let url = format!(
            "{}?fieldValidation=Strict&fieldManager={FIELD_MANAGER}",
            url_path(kind, namespace)
        );
        let body = serde_json::to_vec(object).map_err(|e| Error::Invalid(e.to_string()))?;
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| Error::Kube(e.into()))?;
        self.send(request).await
    }

    async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let request = Request::new(url_path(kind, namespace))
            .patch(name, &strict_patch(), &Patch::Merge(patch))
            .map_err(kube::Error::BuildRequest)
            .map_err(kube_err)?;
        self.send(request).await
    }

    async fn merge_patch_status(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let request = Request::new(url_path(kind, namespace))
            .patch_subresource("status", name, &strict_patch(), &Patch::Merge(patch))
            .map_err(kube::Error::BuildRequest)
            .map_err(kube_err)?;
        self.send(request).await
    }

    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool> {
        let request = Request::new(url_path(kind, namespace))
            .delete(name, &DeleteParams::default())
            .map_err(kube::Error::BuildRequest)
            .map_err(kube_err)?;
        match self.send(request).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<()> {
        let kind = Kind {
            group: "",
            version: "v1",
            kind: "Namespace",
            plural: "namespaces",
        };
        if self.get(&kind, "", namespace).await?.is_some() {
            return Ok(());
        }
        let body =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        match self.create(&kind, "", &body).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create-if-absent, then a compare-and-swap replace on the
    /// resourceVersion read: of two contenders one gets a 409 and loses.
    async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let api = self.leases(namespace);
        self.count();
        let Some(mut lease) = api.get_opt(name).await.map_err(kube_err)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                spec: Some(lease_taken(&LeaseSpec::default(), holder, ttl_seconds, now)),
            };
            self.count();
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if lost_race(&e) => Ok(false),
                Err(e) => Err(kube_err(e)),
            };
        };
        let spec = lease.spec.take().unwrap_or_default();
        if !lease_is_free_for(&spec, holder, now) {
            return Ok(false);
        }
        // `lease.metadata` still carries the resourceVersion we read: the
        // replace is conditional on it.
        lease.spec = Some(lease_taken(&spec, holder, ttl_seconds, now));
        self.count();
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) => Err(kube_err(e)),
        }
    }

    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        let api = self.leases(namespace);
        self.count();
        let Some(mut lease) = api.get_opt(name).await.map_err(kube_err)? else {
            return Ok(());
        };
        let spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(holder) {
            return Ok(());
        }
        lease.spec = Some(lease_released(&spec));
        self.count();
        match api.replace(name, &PostParams::default(), &lease).await {
            // Someone renewed or took it in between: it is no longer ours to give.
            Err(e) if lost_race(&e) => Ok(()),
            Err(e) => Err(kube_err(e)),
            Ok(_) => Ok(()),
        }
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// A [`KubeCluster`] made on first use. A process that may never call
/// Kubernetes (the API, for most requests) answers its first request
/// without first reading the kubeconfig and setting up TLS; the first call
/// that needs the cluster pays for it, once.
pub struct LazyKubeCluster {
    kubeconfig: Option<PathBuf>,
    client: tokio::sync::OnceCell<KubeCluster>,
}

impl LazyKubeCluster {
    /// From `kubeconfig`, or the in-cluster configuration when `None`.
    pub fn new(kubeconfig: Option<PathBuf>) -> Self {
        LazyKubeCluster {
            kubeconfig,
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&KubeCluster> {
        self.client
            .get_or_try_init(|| KubeCluster::from_kubeconfig(self.kubeconfig.as_deref()))
            .await
    }
}

#[async_trait]
impl Cluster for LazyKubeCluster {
    async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>> {
        self.client().await?.list(kind, namespace).await
    }
    async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>> {
        self.client().await?.get(kind, namespace, name).await
    }
    async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value> {
        self.client().await?.create(kind, namespace, object).await
    }
    async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let client = self.client().await?;
        client.merge_patch(kind, namespace, name, patch).await
    }
    async fn merge_patch_status(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let client = self.client().await?;
        client
            .merge_patch_status(kind, namespace, name, patch)
            .await
    }
    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool> {
        self.client().await?.delete(kind, namespace, name).await
    }
    async fn ensure_namespace(&self, namespace: &str) -> Result<()> {
        self.client().await?.ensure_namespace(namespace).await
    }
    async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let client = self.client().await?;
        client
            .try_acquire_lease(namespace, name, holder, ttl_seconds, now)
            .await
    }
    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        self.client()
            .await?
            .release_lease(namespace, name, holder)
            .await
    }
    fn api_calls(&self) -> u64 {
        self.client.get().map_or(0, Cluster::api_calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_api_conventions() {
        assert_eq!(
            url_path(&Kind::secret(), "ns"),
            "/api/v1/namespaces/ns/secrets"
        );
        let pg = Kind::database(dbaas_core::engine::Engine::Postgres);
        assert_eq!(
            url_path(&pg, "ns"),
            "/apis/kubedb.com/v1/namespaces/ns/postgreses"
        );
        assert_eq!(url_path(&pg, ""), "/apis/kubedb.com/v1/postgreses");
    }
}
