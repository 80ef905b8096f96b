//! An in-process stand-in for the Kubernetes API server, for the
//! one-command local mode.
//!
//! Objects live in memory and, with [`EmbeddedCluster::open`], are written
//! through to a SQLite file so a restart keeps them. It keeps the API-server
//! behaviour the roles depend on: `resourceVersion` bumped on every write
//! (and checked when a patch carries one), `generation` bumped on spec
//! changes of custom resources, `uid` and `creationTimestamp`,
//! `AlreadyExists` on duplicate names, RFC 7386 merge patches with a status
//! subresource for custom resources, finalizers with `deletionTimestamp`,
//! namespaces that must exist, and Leases. It does not validate schemas:
//! the rig tests do that against a real API server. There is no watch; the
//! KubeDB stand-in polls.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::LeaseSpec;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::lease::{lease_is_free_for, lease_released, lease_taken};
use crate::{Cluster, Kind};

/// SQLite's error as the cluster's, kept as its source.
fn cluster_err(e: rusqlite::Error) -> Error {
    Error::Store(Box::new(e))
}
use dbaas_core::error::{Error, Result};

/// Address of one object: resource (`group/plural`), namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    resource: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(kind: &Kind, namespace: &str, name: &str) -> Key {
        Key {
            resource: resource_of(kind),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

fn resource_of(kind: &Kind) -> String {
    format!("{}/{}", kind.group, kind.plural)
}

const NAMESPACES: &str = "/namespaces";
const LEASES: &str = "coordination.k8s.io/leases";

/// Custom resources have a status subresource and a generation; core kinds
/// (Secrets, Namespaces) and Leases do not.
fn is_custom(kind: &Kind) -> bool {
    !kind.group.is_empty() && kind.group != "coordination.k8s.io"
}

struct State {
    objects: BTreeMap<Key, Value>,
    /// The last resourceVersion handed out (one counter for all objects, as
    /// etcd's revision).
    last_rv: u64,
    /// Write-through persistence; None for a purely in-memory cluster.
    db: Option<Connection>,
}

/// The embedded cluster. Cheap to share behind an `Arc`.
pub struct EmbeddedCluster {
    state: Mutex<State>,
    calls: AtomicU64,
}

impl EmbeddedCluster {
    /// A cluster that forgets everything when dropped.
    pub fn in_memory() -> EmbeddedCluster {
        EmbeddedCluster::with_state(State {
            objects: BTreeMap::new(),
            last_rv: 0,
            db: None,
        })
    }

    /// A cluster persisted in the SQLite file at `path` (created with its
    /// parent directory if missing); objects written before are loaded.
    pub fn open(path: &Path) -> Result<EmbeddedCluster> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Store(format!("creating {}: {e}", dir.display()).into()))?;
        }
        let db = Connection::open(path).map_err(cluster_err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (
                 resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 body TEXT NOT NULL, PRIMARY KEY (resource, namespace, name));
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(cluster_err)?;
        let last_rv: u64 = db
            .query_row("SELECT value FROM meta WHERE key = 'last_rv'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(cluster_err)?
            .unwrap_or(0);
        let mut objects = BTreeMap::new();
        {
            let mut stmt = db
                .prepare("SELECT resource, namespace, name, body FROM objects")
                .map_err(cluster_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(cluster_err)?;
            for row in rows {
                let (resource, namespace, name, body) = row.map_err(cluster_err)?;
                let value: Value = serde_json::from_str(&body).map_err(|e| {
                    Error::Store(
                        format!("corrupt object {resource} {namespace}/{name}: {e}").into(),
                    )
                })?;
                objects.insert(
                    Key {
                        resource,
                        namespace,
                        name,
                    },
                    value,
                );
            }
        }
        Ok(EmbeddedCluster::with_state(State {
            objects,
            last_rv,
            db: Some(db),
        }))
    }

    fn with_state(state: State) -> EmbeddedCluster {
        EmbeddedCluster {
            state: Mutex::new(state),
            calls: AtomicU64::new(0),
        }
    }

    /// Locks the state and counts one API call.
    fn call(&self) -> MutexGuard<'_, State> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // A panic while holding the lock cannot leave a half-written object:
        // every write replaces whole values.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn next_rv(&mut self) -> String {
        self.last_rv += 1;
        self.last_rv.to_string()
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&Key {
            resource: NAMESPACES.into(),
            namespace: String::new(),
            name: namespace.into(),
        })
    }

    fn require_namespace(&self, namespace: &str) -> Result<()> {
        if namespace.is_empty() || self.namespace_exists(namespace) {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "namespaces \"{namespace}\" not found"
            )))
        }
    }

    /// Stores (or with None removes) one object, file first so that a failed
    /// write leaves memory and disk in agreement.
    fn put(&mut self, key: Key, value: Option<Value>) -> Result<()> {
        if let Some(db) = &self.db {
            let tx = db.unchecked_transaction().map_err(cluster_err)?;
            match &value {
                Some(v) => {
                    tx.execute(
                        "INSERT INTO objects (resource, namespace, name, body) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (resource, namespace, name) DO UPDATE SET body = excluded.body",
                        params![key.resource, key.namespace, key.name, v.to_string()],
                    ).map_err(cluster_err)?;
                }
                None => {
                    tx.execute(
                        "DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
                        params![key.resource, key.namespace, key.name],
                    )
                    .map_err(cluster_err)?;
                }
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('last_rv', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![self.last_rv as i64],
            )
            .map_err(cluster_err)?;
            tx.commit().map_err(cluster_err)?;
        }
        match value {
            Some(v) => self.objects.insert(key, v),
            None => self.objects.remove(&key),
        };
        Ok(())
    }

    /// Creates `object` at `key` with fresh server-set metadata.
    fn create(&mut self, kind: &Kind, key: Key, mut object: Value) -> Result<Value> {
        if !object.is_object() {
            return Err(Error::Invalid("object must be a JSON object".into()));
        }
        if self.objects.contains_key(&key) {
            return Err(Error::AlreadyExists(format!(
                "{} \"{}\" already exists",
                kind.plural, key.name
            )));
        }
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let rv = self.next_rv();
        let meta = &mut object["metadata"];
        if let Some(m) = meta.as_object_mut() {
            for server_set in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                m.remove(server_set);
            }
        }
        meta["name"] = json!(key.name);
        if !key.namespace.is_empty() {
            meta["namespace"] = json!(key.namespace);
        }
        meta["uid"] = json!(new_uid());
        meta["creationTimestamp"] = json!(rfc3339(Utc::now()));
        meta["resourceVersion"] = json!(rv);
        if is_custom(kind) {
            meta["generation"] = json!(1);
            // With a status subresource the API server ignores status on create.
            if let Some(o) = object.as_object_mut() {
                o.remove("status");
            }
        }
        self.put(key, Some(object.clone()))?;
        Ok(object)
    }

    fn existing(&self, kind: &Kind, key: &Key) -> Result<Value> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("{} \"{}\" not found", kind.plural, key.name)))
    }

    /// Stores `new` (the patched `old`) unless nothing changed, bumping the
    /// resourceVersion; an object being deleted whose last finalizer went
    /// away is removed instead.
    fn update(&mut self, key: Key, old: Value, mut new: Value) -> Result<Value> {
        if new == old {
            return Ok(old);
        }
        new["metadata"]["resourceVersion"] = json!(self.next_rv());
        let deleting = !new["metadata"]["deletionTimestamp"].is_null();
        if deleting && finalizers(&new).is_empty() {
            self.put(key, None)?;
        } else {
            self.put(key, Some(new.clone()))?;
        }
        Ok(new)
    }
}

/// A 409 if `patch` carries a resourceVersion other than the object's
/// (the API server's optimistic-concurrency precondition).
fn check_precondition(kind: &Kind, current: &Value, patch: &Value) -> Result<()> {
    match patch["metadata"]["resourceVersion"].as_str() {
        Some(rv) if Some(rv) != current["metadata"]["resourceVersion"].as_str() => {
            Err(Error::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified",
                kind.plural,
                current["metadata"]["name"].as_str().unwrap_or_default()
            )))
        }
        _ => Ok(()),
    }
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// RFC 7386 JSON merge patch of `patch` into `target`.
fn json_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                json_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The object without metadata and status: what `generation` versions.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn new_uid() -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[async_trait]
impl Cluster for EmbeddedCluster {
    /// `namespace` "" lists every namespace.
    async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>> {
        let state = self.call();
        let resource = resource_of(kind);
        Ok(state
            .objects
            .iter()
            .filter(|(k, _)| {
                k.resource == resource && (namespace.is_empty() || k.namespace == namespace)
            })
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>> {
        let state = self.call();
        Ok(state.objects.get(&Key::new(kind, namespace, name)).cloned())
    }

    async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value> {
        let mut state = self.call();
        state.require_namespace(namespace)?;
        let name = object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Invalid("metadata.name: Required value".into()))?;
        if let Some(ns) = object["metadata"]["namespace"].as_str()
            && ns != namespace
        {
            return Err(Error::Invalid(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
            )));
        }
        state.create(kind, Key::new(kind, namespace, name), object.clone())
    }

    async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let mut state = self.call();
        let key = Key::new(kind, namespace, name);
        let old = state.existing(kind, &key)?;
        check_precondition(kind, &old, patch)?;
        let mut patch = patch.clone();
        if is_custom(kind)
            && let Some(p) = patch.as_object_mut()
        {
            // The status subresource owns status: the main resource ignores it.
            p.remove("status");
        }
        let mut new = old.clone();
        json_merge_patch(&mut new, &patch);
        // Server-set fields cannot be patched.
        for field in ["apiVersion", "kind"] {
            new[field] = old[field].clone();
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
        ] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let before = finalizers(&old);
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(Error::Invalid(format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"
                )));
            }
        }
        if is_custom(kind) && spec_part(&new) != spec_part(&old) {
            let generation = old["metadata"]["generation"].as_u64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        state.update(key, old, new)
    }

    async fn merge_patch_status(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let mut state = self.call();
        let key = Key::new(kind, namespace, name);
        if !is_custom(kind) {
            return Err(Error::NotFound(format!(
                "{} have no status subresource",
                kind.plural
            )));
        }
        let old = state.existing(kind, &key)?;
        check_precondition(kind, &old, patch)?;
        let mut new = old.clone();
        // Only the status stanza of the patch counts on the subresource.
        if let Some(status) = patch.get("status") {
            let mut wrapped = json!({});
            wrapped["status"] = status.clone();
            json_merge_patch(&mut new, &wrapped);
        }
        state.update(key, old, new)
    }

    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool> {
        let mut state = self.call();
        let key = Key::new(kind, namespace, name);
        let Some(old) = state.objects.get(&key).cloned() else {
            return Ok(false);
        };
        if kind.kind == "Namespace" {
            // Simplified namespace deletion: its objects go at once.
            let inside: Vec<Key> = state
                .objects
                .keys()
                .filter(|k| k.namespace == name)
                .cloned()
                .collect();
            for k in inside {
                state.put(k, None)?;
            }
            state.put(key, None)?;
            return Ok(true);
        }
        if finalizers(&old).is_empty() {
            state.put(key, None)?;
        } else if old["metadata"]["deletionTimestamp"].is_null() {
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(rfc3339(Utc::now()));
            state.update(key, old, new)?;
        }
        Ok(true)
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<()> {
        let mut state = self.call();
        if state.namespace_exists(namespace) {
            return Ok(());
        }
        let kind = Kind {
            group: "",
            version: "v1",
            kind: "Namespace",
            plural: "namespaces",
        };
        let key = Key {
            resource: NAMESPACES.into(),
            namespace: String::new(),
            name: namespace.into(),
        };
        state.create(&kind, key, json!({"metadata": {"name": namespace}}))?;
        Ok(())
    }

    async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.call();
        state.require_namespace(namespace)?;
        let kind = lease_kind();
        let key = Key {
            resource: LEASES.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let Some(old) = state.objects.get(&key).cloned() else {
            let spec = lease_taken(&LeaseSpec::default(), holder, ttl_seconds, now);
            let body = json!({"metadata": {"name": name}, "spec": to_json(&spec)?});
            state.create(&kind, key, body)?;
            return Ok(true);
        };
        let spec = lease_spec(&old)?;
        if !lease_is_free_for(&spec, holder, now) {
            return Ok(false);
        }
        let mut new = old.clone();
        new["spec"] = to_json(&lease_taken(&spec, holder, ttl_seconds, now))?;
        state.update(key, old, new)?;
        Ok(true)
    }

    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        let mut state = self.call();
        let key = Key {
            resource: LEASES.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let Some(old) = state.objects.get(&key).cloned() else {
            return Ok(());
        };
        let spec = lease_spec(&old)?;
        if spec.holder_identity.as_deref() != Some(holder) {
            return Ok(());
        }
        let mut new = old.clone();
        new["spec"] = to_json(&lease_released(&spec))?;
        state.update(key, old, new)?;
        Ok(())
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

fn lease_kind() -> Kind {
    Kind {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
    }
}

fn lease_spec(obj: &Value) -> Result<LeaseSpec> {
    serde_json::from_value(obj["spec"].clone())
        .map_err(|e| Error::Kube(format!("corrupt lease: {e}").into()))
}

fn to_json(spec: &LeaseSpec) -> Result<Value> {
    serde_json::to_value(spec).map_err(|e| Error::Kube(format!("lease: {e}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbaas_core::engine::Engine;

    fn db(name: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"a": "1"}}, "spec": {"version": "16.4", "replicas": 1}})
    }

    #[tokio::test]
    async fn create_sets_server_fields_and_rejects_duplicates() {
        let c = EmbeddedCluster::in_memory();
        let kind = Kind::database(Engine::Postgres);
        assert!(matches!(
            c.create(&kind, "ns", &db("a")).await,
            Err(Error::NotFound(_))
        ));
        c.ensure_namespace("ns").await.unwrap();
        let mut body = db("a");
        body["status"] = json!({"phase": "Ready"});
        let a = c.create(&kind, "ns", &body).await.unwrap();
        assert_eq!(a["metadata"]["generation"], 1);
        assert_eq!(a["metadata"]["namespace"], "ns");
        assert_eq!(a["kind"], "Postgres");
        assert!(a["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
        assert!(a["metadata"]["creationTimestamp"].is_string());
        assert!(a.get("status").is_none(), "status is ignored on create");
        assert!(matches!(
            c.create(&kind, "ns", &db("a")).await,
            Err(Error::AlreadyExists(_))
        ));
        assert_eq!(c.list(&kind, "ns").await.unwrap().len(), 1);
        assert_eq!(c.list(&kind, "").await.unwrap().len(), 1);
        assert_eq!(c.list(&kind, "other").await.unwrap().len(), 0);
        assert!(c.api_calls() >= 6);
    }

    #[tokio::test]
    async fn patches_respect_status_subresource_generation_and_preconditions() {
        let c = EmbeddedCluster::in_memory();
        let kind = Kind::database(Engine::Postgres);
        c.ensure_namespace("ns").await.unwrap();
        let a = c.create(&kind, "ns", &db("a")).await.unwrap();
        let rv0 = a["metadata"]["resourceVersion"].clone();

        let p = c
            .merge_patch(
                &kind,
                "ns",
                "a",
                &json!({"metadata": {"labels": {"b": "2", "a": null}}, "status": {"phase": "X"}}),
            )
            .await
            .unwrap();
        assert_eq!(p["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(
            p["metadata"]["generation"], 1,
            "metadata changes keep the generation"
        );
        assert!(
            p.get("status").is_none(),
            "status in a main-resource patch is ignored"
        );
        assert_ne!(p["metadata"]["resourceVersion"], rv0);

        let p = c
            .merge_patch(&kind, "ns", "a", &json!({"spec": {"replicas": 3}}))
            .await
            .unwrap();
        assert_eq!(p["metadata"]["generation"], 2);
        assert_eq!(p["spec"], json!({"version": "16.4", "replicas": 3}));

        let s = c
            .merge_patch_status(
                &kind,
                "ns",
                "a",
                &json!({"status": {"phase": "Ready"}, "spec": {"replicas": 9}}),
            )
            .await
            .unwrap();
        assert_eq!(s["status"]["phase"], "Ready");
        assert_eq!(
            s["spec"]["replicas"], 3,
            "spec in a status patch is ignored"
        );
        assert_eq!(s["metadata"]["generation"], 2);

        let same = c
            .merge_patch(&kind, "ns", "a", &json!({"spec": {"replicas": 3}}))
            .await
            .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"], s["metadata"]["resourceVersion"],
            "no-op patches do not write"
        );

        let stale = json!({"metadata": {"resourceVersion": rv0}, "spec": {"replicas": 5}});
        assert!(matches!(
            c.merge_patch(&kind, "ns", "a", &stale).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            c.merge_patch(&kind, "ns", "zz", &json!({})).await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn finalizers_hold_deletion_until_removed() {
        let c = EmbeddedCluster::in_memory();
        let kind = Kind::database(Engine::Mysql);
        c.ensure_namespace("ns").await.unwrap();
        c.create(&kind, "ns", &db("a")).await.unwrap();
        c.merge_patch(
            &kind,
            "ns",
            "a",
            &json!({"metadata": {"finalizers": ["kubedb.com"]}}),
        )
        .await
        .unwrap();
        assert!(c.delete(&kind, "ns", "a").await.unwrap());
        let a = c.get(&kind, "ns", "a").await.unwrap().unwrap();
        assert!(a["metadata"]["deletionTimestamp"].is_string());
        let add = json!({"metadata": {"finalizers": ["kubedb.com", "other"]}});
        assert!(matches!(
            c.merge_patch(&kind, "ns", "a", &add).await,
            Err(Error::Invalid(_))
        ));
        c.merge_patch(&kind, "ns", "a", &json!({"metadata": {"finalizers": null}}))
            .await
            .unwrap();
        assert!(c.get(&kind, "ns", "a").await.unwrap().is_none());
        assert!(!c.delete(&kind, "ns", "a").await.unwrap());

        c.create(&kind, "ns", &db("b")).await.unwrap();
        assert!(c.delete(&kind, "ns", "b").await.unwrap());
        assert!(c.get(&kind, "ns", "b").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn secrets_have_no_status_subresource() {
        let c = EmbeddedCluster::in_memory();
        c.ensure_namespace("ns").await.unwrap();
        let s = json!({"metadata": {"name": "x"}, "type": "Opaque", "data": {"k": "dg=="}});
        let made = c.create(&Kind::secret(), "ns", &s).await.unwrap();
        assert!(made["metadata"].get("generation").is_none());
        let p = c
            .merge_patch(&Kind::secret(), "ns", "x", &json!({"data": {"k": "dw=="}}))
            .await
            .unwrap();
        assert_eq!(p["data"]["k"], "dw==");
    }

    #[tokio::test]
    async fn leases_expire_and_release() {
        let c = EmbeddedCluster::in_memory();
        c.ensure_namespace("ns").await.unwrap();
        let t0 = Utc::now();
        assert!(c.try_acquire_lease("ns", "l", "a", 10, t0).await.unwrap());
        assert!(
            c.try_acquire_lease("ns", "l", "a", 10, t0).await.unwrap(),
            "renewal"
        );
        assert!(
            !c.try_acquire_lease("ns", "l", "b", 10, t0 + chrono::Duration::seconds(5))
                .await
                .unwrap()
        );
        assert!(
            c.try_acquire_lease("ns", "l", "b", 10, t0 + chrono::Duration::seconds(11))
                .await
                .unwrap()
        );
        c.release_lease("ns", "l", "a").await.unwrap();
        assert!(
            !c.try_acquire_lease("ns", "l", "a", 10, t0 + chrono::Duration::seconds(12))
                .await
                .unwrap()
        );
        c.release_lease("ns", "l", "b").await.unwrap();
        assert!(
            c.try_acquire_lease("ns", "l", "a", 10, t0 + chrono::Duration::seconds(12))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn sqlite_file_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("dbaas-embedded-{}", new_uid()));
        let path = dir.join("cluster.sqlite");
        let kind = Kind::database(Engine::Redis);
        let rv = {
            let c = EmbeddedCluster::open(&path).unwrap();
            c.ensure_namespace("ns").await.unwrap();
            c.create(&kind, "ns", &db("a")).await.unwrap();
            c.create(&kind, "ns", &db("gone")).await.unwrap();
            c.delete(&kind, "ns", "gone").await.unwrap();
            let a = c
                .merge_patch(&kind, "ns", "a", &json!({"spec": {"replicas": 1, "x": 1}}))
                .await
                .unwrap();
            a["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let c = EmbeddedCluster::open(&path).unwrap();
        let objs = c.list(&kind, "ns").await.unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0]["spec"]["x"], 1);
        let b = c.create(&kind, "ns", &db("b")).await.unwrap();
        assert!(
            b["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > rv
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        json_merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }
}
