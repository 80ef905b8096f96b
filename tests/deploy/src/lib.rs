//! Harness of the deployment tests.
//!
//! - [`render`] builds a kustomization (k8s/base, keda/, k8s/overlays/kind)
//!   with the pinned kustomize that `tests/rig/install-kustomize.sh` installs
//!   (cached under `~/.cache/dbaas-rig`).
//! - [`Applier`] sends objects to the rig's API server as server-side apply,
//!   optionally as a dry run, always with strict field validation, and
//!   returns the warnings the server sent (Pod Security violations, for
//!   example) so tests can refuse them too.
//! - [`procs`] and [`command`] run the control plane's binaries as processes, with their
//!   output in log files named in every failure message.
//!
//! Every test needs the rig (`just rig-up`, then `source target/rig/env`)
//! and fails, never skips, without it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::GroupVersionKind;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, Resource};
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;
use tokio::process::Command;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// A client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}; {RIG_HINT}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("a kube client")
}

/// The pinned kustomize binary, installed (or found in the cache) once per
/// test process by `tests/rig/install-kustomize.sh`.
pub fn kustomize() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = repo_root().join("tests/rig/install-kustomize.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): it needs `go` on PATH the first time",
            script.display(),
            out.status
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            path.is_file(),
            "{} printed {path:?}, not a file",
            script.display()
        );
        path
    })
}

/// `kustomize build <dir>` (relative to the repository root) as JSON objects.
/// The kind overlay reads credentials from its untracked `generated/`
/// folder: they are made first (`k8s/scripts/credentials.sh`, as a deploy
/// does; kept if already there).
pub fn render(dir: &str) -> Vec<Value> {
    let path = repo_root().join(dir);
    if dir == KIND_OVERLAY {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("k8s/scripts/credentials.sh"))
            .arg(&path)
            .status()
            .expect("running k8s/scripts/credentials.sh");
        assert!(status.success(), "credentials.sh {dir} failed: {status}");
    }
    let out = std::process::Command::new(kustomize())
        .arg("build")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running kustomize: {e}"));
    assert!(
        out.status.success(),
        "kustomize build {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_yaml_stream(&String::from_utf8_lossy(&out.stdout))
}

/// The documents of a YAML stream, as JSON; empty documents are dropped.
pub fn parse_yaml_stream(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("valid YAML");
            serde_json::to_value(v).expect("YAML that maps to JSON")
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `Kind/namespace/name` of an object, for messages.
pub fn describe(obj: &Value) -> String {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    format!(
        "{}/{ns}{}",
        obj["kind"].as_str().unwrap_or("?"),
        obj["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The objects of kind `kind` named `name`.
pub fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered objects"))
}

/// What the API server answered to an apply.
#[derive(Debug)]
pub struct Applied {
    /// The object as the server stored it (or would have, in a dry run).
    pub object: Value,
    /// `Warning` headers, e.g. Pod Security violations.
    pub warnings: Vec<String>,
}

/// Server-side apply of JSON objects, discovering each kind's resource.
pub struct Applier {
    pub client: Client,
    resources: Mutex<HashMap<(String, String), (ApiResource, Scope)>>,
}

/// Field manager of every apply the tests make.
const FIELD_MANAGER: &str = "dbaas-deploy-tests";

impl Applier {
    pub fn new(client: Client) -> Applier {
        Applier {
            client,
            resources: Mutex::new(HashMap::new()),
        }
    }

    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, Scope), String> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.resources.lock().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| format!("the API server does not serve {api_version} {kind}: {e}"))?;
        let found = (ar, caps.scope);
        self.resources
            .lock()
            .expect("not poisoned")
            .insert(key, found.clone());
        Ok(found)
    }

    /// Server-side apply of `obj` (force, strict field validation), a dry
    /// run when `dry_run`. Err carries the server's message.
    pub async fn apply(&self, obj: &Value, dry_run: bool) -> Result<Applied, String> {
        let api_version = obj["apiVersion"].as_str().ok_or("no apiVersion")?;
        let kind = obj["kind"].as_str().ok_or("no kind")?;
        let name = obj["metadata"]["name"].as_str().ok_or("no metadata.name")?;
        let (ar, scope) = self.resource(api_version, kind).await?;
        let namespace = match scope {
            Scope::Namespaced => Some(
                obj["metadata"]["namespace"]
                    .as_str()
                    .ok_or("a namespaced object without metadata.namespace")?,
            ),
            Scope::Cluster => None,
        };
        let mut url = format!(
            "{}/{name}?fieldManager={FIELD_MANAGER}&force=true&fieldValidation=Strict",
            DynamicObject::url_path(&ar, namespace)
        );
        if dry_run {
            url.push_str("&dryRun=All");
        }
        let body = serde_json::to_vec(obj).map_err(|e| e.to_string())?;
        let request = http::Request::patch(url)
            .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
            .body(kube::client::Body::from(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        let object: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if !status.is_success() {
            let message = object["message"]
                .as_str()
                .map_or_else(|| object.to_string(), str::to_string);
            return Err(format!("HTTP {status}: {message}"));
        }
        Ok(Applied { object, warnings })
    }

    /// Deletes an object if it exists (cleanup; errors ignored).
    pub async fn delete(&self, obj: &Value) {
        let (Some(api_version), Some(kind), Some(name)) = (
            obj["apiVersion"].as_str(),
            obj["kind"].as_str(),
            obj["metadata"]["name"].as_str(),
        ) else {
            return;
        };
        let Ok((ar, scope)) = self.resource(api_version, kind).await else {
            return;
        };
        let namespace = match scope {
            Scope::Namespaced => obj["metadata"]["namespace"].as_str(),
            Scope::Cluster => None,
        };
        let url = format!("{}/{name}", DynamicObject::url_path(&ar, namespace));
        if let Ok(request) = http::Request::delete(url).body(kube::client::Body::from(Vec::new())) {
            let _ = self.client.send(request).await;
        }
    }
}

/// A short random id for names (lowercase letters and digits).
pub fn unique_id() -> String {
    dbaas_core::domain::random_token(8).to_lowercase()
}

pub use dbaas_e2e::{bin_dir, binary};
pub use dbaas_testkit::process::{Proc, Procs};
pub use dbaas_testkit::rig::{RIG_HINT, Rig, free_port, log_tail};

/// Where test `test`'s processes log.
pub fn procs(test: &str) -> Procs {
    Procs::new(bin_dir().join("deploy-logs").join(test))
}

/// `bin` with `env` and `args`, inheriting nothing but PATH and HOME.
pub fn command(bin: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(binary(bin));
    cmd.env_clear()
        .envs(
            ["PATH", "HOME"]
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .args(args);
    cmd
}

/// Runs an instant PromQL query; returns the result vector (or scalar as
/// a one-element vector).
pub async fn prom_query(
    http: &reqwest::Client,
    prometheus_url: &str,
    expr: &str,
) -> Result<Vec<Value>, String> {
    let resp = http
        .get(format!("{prometheus_url}/api/v1/query"))
        .query(&[("query", expr)])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("querying Prometheus at {prometheus_url}: {e}"))?;
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("Prometheus answered non-JSON: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("Prometheus rejected the query: {}", body["error"]));
    }
    Ok(match body["data"]["resultType"].as_str() {
        Some("vector") | Some("matrix") => body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Some("scalar") => vec![serde_json::json!({"metric": {}, "value": body["data"]["result"]})],
        other => return Err(format!("unexpected result type {other:?}")),
    })
}

/// The numeric values of an instant vector.
pub fn sample_values(result: &[Value]) -> Vec<f64> {
    result
        .iter()
        .filter_map(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()))
        .collect()
}

// --- the Grafana dashboards ---------------------------------------------------

/// The overlay `just deploy` applies to kind.
pub const KIND_OVERLAY: &str = "k8s/overlays/kind";

/// Where the Grafana dashboards live.
pub const DASHBOARDS: &str = "k8s/overlays/kind/dashboards";

/// Each dashboard file and its JSON.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_root().join(DASHBOARDS);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the dashboards directory") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a file name")
            .to_string();
        assert!(
            name.ends_with(".json"),
            "{name}: only dashboard JSON belongs in {DASHBOARDS}"
        );
        let text = std::fs::read_to_string(&path).expect("read a dashboard");
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: invalid JSON: {e}"));
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every (dashboard, panel title, expression) with the dashboard's
/// variables replaced by their default values.
pub fn dashboard_expressions() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, d) in dashboards() {
        let vars: BTreeMap<String, String> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["name"].as_str().expect("a name").to_string(),
                    v["current"]["value"]
                        .as_str()
                        .expect("a default")
                        .to_string(),
                )
            })
            .collect();
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let mut expr = t["expr"].as_str().expect("expr").to_string();
                // Longest names first, so `$window` never eats `$windowed`.
                let mut names: Vec<&String> = vars.keys().collect();
                names.sort_by_key(|n| std::cmp::Reverse(n.len()));
                for n in names {
                    expr = expr
                        .replace(&format!("${{{n}}}"), &vars[n])
                        .replace(&format!("${n}"), &vars[n]);
                }
                assert!(
                    !expr.contains('$'),
                    "{name}: {:?}: undefined variable in {expr}",
                    p["title"]
                );
                out.push((
                    name.clone(),
                    p["title"].as_str().expect("title").to_string(),
                    expr,
                ));
            }
        }
    }
    out
}

/// Waits up to `timeout` until every panel's query of every dashboard
/// returns at least one finite sample from the Prometheus at
/// `prometheus_url`; panics naming the ones that did not.
pub async fn assert_dashboards_have_data(
    http: &reqwest::Client,
    prometheus_url: &str,
    timeout: Duration,
) {
    let exprs = dashboard_expressions();
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<(String, String, String)> = exprs.clone();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (file, title, expr) in pending {
            match prom_query(http, prometheus_url, &expr).await {
                Ok(r) if sample_values(&r).iter().any(|v| v.is_finite()) => {}
                Ok(r) => {
                    last.insert(
                        expr.clone(),
                        format!("no finite sample: {}", Value::from(r)),
                    );
                    still.push((file, title, expr));
                }
                Err(e) => {
                    last.insert(expr.clone(), e);
                    still.push((file, title, expr));
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    assert!(
        pending.is_empty(),
        "{} of {} dashboard queries returned no data from {prometheus_url}:\n{}",
        pending.len(),
        exprs.len(),
        pending
            .iter()
            .map(|(f, t, e)| format!("{f}: {t}: {e}\n    -> {}", last[e]))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
