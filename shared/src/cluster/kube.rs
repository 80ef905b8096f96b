//! [`Cluster`] on a real Kubernetes API server, through kube-rs.
//!
//! Objects travel as raw JSON so that nothing is lost or reordered by a
//! typed model; writes use strict field validation, so an unknown field is
//! an error (`Error::Invalid`) instead of being silently pruned.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, ValidationDirective,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, Request, Resource};
use kube::{Client, Config};
use serde_json::{Value, json};

use super::{Cluster, Kind};
use crate::error::{Error, Result};

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
        Ok(self.client.request::<Value>(request).await?)
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

/// Whether `holder` may take a lease in this state at `now`: it is free
/// (no holder), already `holder`'s, or expired (last renewal plus duration
/// is not after `now`).
pub(crate) fn lease_is_free_for(spec: &LeaseSpec, holder: &str, now: DateTime<Utc>) -> bool {
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == holder => true,
        Some(_) => {
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            let (Some(renewed), Some(secs)) = (renewed, spec.lease_duration_seconds) else {
                // A lease without times never expires on its own account;
                // treat it as abandoned rather than blocking forever.
                return true;
            };
            let expires = renewed.0.as_microsecond() + i64::from(secs) * 1_000_000;
            expires <= now.timestamp_micros()
        }
    }
}

/// The lease after `holder` takes or renews it at `now` for `ttl_seconds`.
pub(crate) fn lease_taken(
    old: &LeaseSpec,
    holder: &str,
    ttl_seconds: u32,
    now: DateTime<Utc>,
) -> LeaseSpec {
    let t = micro_time(now);
    let renewal = old.holder_identity.as_deref() == Some(holder);
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(i32::try_from(ttl_seconds).unwrap_or(i32::MAX)),
        acquire_time: if renewal {
            old.acquire_time.clone()
        } else {
            Some(t.clone())
        },
        renew_time: Some(t),
        lease_transitions: Some(
            old.lease_transitions.unwrap_or(0)
                + i32::from(
                    !renewal
                        && old
                            .holder_identity
                            .as_deref()
                            .is_some_and(|h| !h.is_empty()),
                ),
        ),
        ..old.clone()
    }
}

/// The lease after its holder gives it up.
pub(crate) fn lease_released(old: &LeaseSpec) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        renew_time: None,
        acquire_time: None,
        ..old.clone()
    }
}

fn micro_time(t: DateTime<Utc>) -> MicroTime {
    // Out-of-range times cannot come from a clock; fall back to the epoch.
    MicroTime(
        k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or_default(),
    )
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
                .send(request.list(&params).map_err(kube::Error::BuildRequest)?)
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
            .map_err(kube::Error::BuildRequest)?;
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
            .map_err(|e| Error::Kube(e.to_string()))?;
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
            .map_err(kube::Error::BuildRequest)?;
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
            .map_err(kube::Error::BuildRequest)?;
        self.send(request).await
    }

    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool> {
        let request = Request::new(url_path(kind, namespace))
            .delete(name, &DeleteParams::default())
            .map_err(kube::Error::BuildRequest)?;
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
        let Some(mut lease) = api.get_opt(name).await? else {
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
                Err(e) => Err(e.into()),
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
            Err(e) => Err(e.into()),
        }
    }

    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        let api = self.leases(namespace);
        self.count();
        let Some(mut lease) = api.get_opt(name).await? else {
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
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn urls_follow_api_conventions() {
        assert_eq!(
            url_path(&Kind::secret(), "ns"),
            "/api/v1/namespaces/ns/secrets"
        );
        let pg = Kind::database(crate::engine::Engine::Postgres);
        assert_eq!(
            url_path(&pg, "ns"),
            "/apis/kubedb.com/v1/namespaces/ns/postgreses"
        );
        assert_eq!(url_path(&pg, ""), "/apis/kubedb.com/v1/postgreses");
    }

    #[test]
    fn lease_rules() {
        let t0 = Utc::now();
        let free = LeaseSpec::default();
        assert!(lease_is_free_for(&free, "a", t0));
        let held = lease_taken(&free, "a", 10, t0);
        assert_eq!(held.lease_transitions, Some(0));
        assert!(lease_is_free_for(&held, "a", t0));
        assert!(!lease_is_free_for(&held, "b", t0 + Duration::seconds(9)));
        assert!(lease_is_free_for(&held, "b", t0 + Duration::seconds(10)));
        let renewed = lease_taken(&held, "a", 10, t0 + Duration::seconds(5));
        assert_eq!(renewed.acquire_time, held.acquire_time);
        assert!(!lease_is_free_for(
            &renewed,
            "b",
            t0 + Duration::seconds(14)
        ));
        let taken = lease_taken(&renewed, "b", 10, t0 + Duration::seconds(20));
        assert_eq!(taken.lease_transitions, Some(1));
        assert!(lease_is_free_for(
            &lease_released(&taken),
            "a",
            t0 + Duration::seconds(21)
        ));
    }
}
