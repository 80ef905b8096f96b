//! The Grafana dashboards: well-formed, wired to the provisioned data
//! source, using only metrics the code emits, and — after an end-to-end
//! flow on the rig — every PromQL expression of every panel returns data
//! from the rig's Prometheus.
//!
//! The flow runs the real binaries as processes: dbaas-api, the KubeDB
//! stand-in, and dbaas-reconciler / dbaas-worker one pass or one operation
//! at a time, pushing to the rig's Pushgateway. The reconciler and worker
//! run as their ServiceAccounts (kubeconfig impersonation) bound to the
//! Roles of k8s/base (the stand-in to the kind overlay's), so the flow also
//! proves that the least-privilege RBAC is sufficient.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbaas_deploy_tests::{
    Applier, KIND_OVERLAY, Proc, Procs, Rig, assert_dashboards_have_data, binary, client_for,
    command, dashboard_expressions, dashboards, free_port, log_tail, procs, prom_query, render,
    repo_root, sample_values, unique_id,
};
use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use dbaas_testkit::config::standin_args;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DATASOURCES: &str = "k8s/overlays/kind/monitoring/grafana-datasources.yaml";

#[test]
fn dashboards_are_well_formed_and_provisioned() {
    let datasources = dbaas_deploy_tests::parse_yaml_stream(
        &std::fs::read_to_string(repo_root().join(DATASOURCES)).expect("datasources"),
    );
    let uid = datasources[0]["datasources"][0]["uid"]
        .as_str()
        .expect("a data source uid")
        .to_string();
    let all = dashboards();
    assert_eq!(
        all.len(),
        2,
        "the Drift detection and State sync dashboards"
    );
    let mut uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_string()),
            "{name}: duplicate uid"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: title"
        );
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            let title = p["title"].as_str().expect("title");
            assert!(
                ids.insert(p["id"].as_i64().expect("id")),
                "{name}: duplicate panel id at {title}"
            );
            assert_eq!(
                p["datasource"]["uid"],
                uid.as_str(),
                "{name}: {title}: the provisioned data source"
            );
            let g = &p["gridPos"];
            assert!(
                g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
                "{name}: {title}: wider than the grid"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title}: no query");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], uid.as_str(), "{name}: {title}");
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{name}: {title}: empty expr"
                );
            }
        }
    }
    // What the design document asks of each dashboard.
    let titles = |file: &str| -> Vec<String> {
        let d = &all
            .iter()
            .find(|(n, _)| n == file)
            .unwrap_or_else(|| panic!("{file}"))
            .1;
        d["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["title"].as_str().unwrap().to_string())
            .collect()
    };
    let exprs = dashboard_expressions();
    let drift = titles("drift-detection.json");
    for t in [
        "Databases with drift",
        "Drift detected by type",
        "Time to resolve drift (P50 / P95 / P99)",
    ] {
        assert!(drift.iter().any(|x| x == t), "Drift detection lacks {t:?}");
    }
    let quantiles: Vec<&String> = exprs
        .iter()
        .filter(|(_, t, _)| t.starts_with("Time to resolve drift"))
        .map(|(_, _, e)| e)
        .collect();
    for q in ["0.50", "0.95", "0.99"] {
        assert!(
            quantiles
                .iter()
                .any(|e| e.starts_with(&format!("histogram_quantile({q},"))),
            "P{q}"
        );
    }
    let sync = titles("state-sync.json");
    for t in [
        "Databases with desired ≠ current",
        "Age of the oldest drift",
        "Reconciliation lag",
    ] {
        assert!(sync.iter().any(|x| x == t), "State sync lacks {t:?}");
    }
    assert!(
        exprs.iter().any(|(_, t, e)| t == "Reconciliation lag"
            && e == "time() - max(dbaas_reconciliation_last_success_timestamp_seconds)"),
        "reconciliation lag = time() - last success"
    );
}

/// Every `dbaas_*` metric a panel queries is one the code emits (a typo
/// would make a panel silently empty).
#[test]
fn dashboards_query_only_metrics_the_code_emits() {
    let mut source = String::new();
    let mut dirs = vec![repo_root().join("shared")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("sources") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.ends_with("tests") && !path.ends_with("testkit") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                source.push_str(&std::fs::read_to_string(&path).expect("read"));
            }
        }
    }
    for (name, title, expr) in dashboard_expressions() {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("dbaas_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let metric = &tail[..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .fold(metric, |m, s| m.strip_suffix(s).unwrap_or(m));
            assert!(
                source.contains(&format!("\"{base}\"")),
                "{name}: {title}: {metric} is not emitted by the crates under shared/"
            );
            rest = &tail[end..];
        }
    }
}

/// One test's world on the rig.
struct Flow {
    rig: Rig,
    id: String,
    namespace: String,
    database: String,
    prefix: String,
    procs: Procs,
    api_base: String,
    http: reqwest::Client,
    key: String,
    reconciler_kubeconfig: PathBuf,
    worker_kubeconfig: PathBuf,
    standin_kubeconfig: PathBuf,
    queue: RedisQueue,
    servers: Vec<Proc>,
    passes: u32,
}

/// The Roles of k8s/base for the reconciler and worker (and the kind
/// overlay's for the KubeDB stand-in), moved into `namespace` (and given
/// unique cluster-scoped names), with their ServiceAccounts there too.
fn rbac_for(namespace: &str, id: &str) -> Vec<Value> {
    let mut out =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})];
    for sa in ["dbaas-reconciler", "dbaas-worker", "kubedb-standin"] {
        out.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}));
    }
    let relocate = |v: &mut Value| {
        // Every reference to DBAAS_NAMESPACE or to the SAs' namespace.
        let text = v
            .to_string()
            .replace("\"dbaas-databases\"", &format!("\"{namespace}\""))
            .replace(
                "\"namespace\":\"dbaas\"",
                &format!("\"namespace\":\"{namespace}\""),
            );
        *v = serde_json::from_str(&text).expect("JSON");
    };
    let base = render("k8s/base");
    let kind = render(KIND_OVERLAY);
    let standin = kind.iter().filter(|o| {
        o["metadata"]["name"] == "kubedb-standin"
            && (o["kind"] == "Role" || o["kind"] == "RoleBinding")
    });
    for o in base.iter().chain(standin) {
        let kind = o["kind"].as_str().unwrap_or("");
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        let mut o = o.clone();
        match kind {
            "Role" | "RoleBinding"
                if ["dbaas-reconciler", "dbaas-worker", "kubedb-standin"].contains(&name) => {}
            "ClusterRole" | "ClusterRoleBinding" => {
                o["metadata"]["name"] = json!(format!("{name}-{id}"));
                if kind == "ClusterRoleBinding" {
                    o["roleRef"]["name"] = json!(format!(
                        "{}-{id}",
                        o["roleRef"]["name"].as_str().expect("roleRef")
                    ));
                }
            }
            _ => continue,
        }
        relocate(&mut o);
        out.push(o);
    }
    assert_eq!(
        out.len(),
        4 + 10,
        "3 Roles and 3 RoleBindings (base + the kind stand-in's), 2 ClusterRoles, 2 ClusterRoleBindings"
    );
    out
}

/// A copy of the rig's kubeconfig that acts as ServiceAccount `sa`.
fn impersonating_kubeconfig(rig: &Rig, dir: &Path, namespace: &str, sa: &str) -> PathBuf {
    let text = std::fs::read_to_string(&rig.kubeconfig).expect("read the kubeconfig");
    let mut kc: Value = dbaas_deploy_tests::parse_yaml_stream(&text)
        .into_iter()
        .next()
        .expect("a kubeconfig");
    for user in kc["users"].as_array_mut().expect("users") {
        user["user"]["as"] = json!(format!("system:serviceaccount:{namespace}:{sa}"));
        user["user"]["as-groups"] = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated"
        ]);
    }
    let path = dir.join(format!("{sa}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&kc).expect("YAML")).expect("write the kubeconfig");
    path
}

impl Flow {
    async fn start() -> Flow {
        let rig = Rig::from_env();
        for bin in [
            "dbaas-api",
            "dbaas-reconciler",
            "dbaas-worker",
            "kubedb-standin",
        ] {
            binary(bin);
        }
        let id = unique_id();
        let namespace = format!("deploy-{id}");
        let procs = procs(&namespace);
        let applier = Applier::new(client_for(&rig.kubeconfig).await);
        for o in rbac_for(&namespace, &id) {
            applier
                .apply(&o, false)
                .await
                .unwrap_or_else(|e| panic!("applying {}: {e}", dbaas_deploy_tests::describe(&o)));
        }
        let reconciler_kubeconfig =
            impersonating_kubeconfig(&rig, &procs.logs, &namespace, "dbaas-reconciler");
        let worker_kubeconfig =
            impersonating_kubeconfig(&rig, &procs.logs, &namespace, "dbaas-worker");
        let standin_kubeconfig =
            impersonating_kubeconfig(&rig, &procs.logs, &namespace, "kubedb-standin");
        let prefix = format!("deploy:{id}");
        let queue = rig.queue(&prefix).await;
        let mut flow = Flow {
            database: format!("deploy_{id}"),
            api_base: String::new(),
            http: reqwest::Client::new(),
            key: String::new(),
            rig,
            id,
            namespace,
            prefix,
            procs,
            reconciler_kubeconfig,
            worker_kubeconfig,
            standin_kubeconfig,
            queue,
            servers: Vec::new(),
            passes: 0,
        };
        flow.start_servers().await;
        flow
    }

    async fn start_servers(&mut self) {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let admin = format!("admin-{}", unique_id());
        let api = self.procs.start(
            "api",
            command(
                "dbaas-api",
                &[
                    ("MONGODB_URI", self.rig.mongodb_uri.as_str()),
                    ("MONGODB_DATABASE", self.database.as_str()),
                    ("DBAAS_LISTEN", listen.as_str()),
                    ("DBAAS_ADMIN_TOKEN", admin.as_str()),
                    ("DBAAS_RATE_LIMIT_PER_SECOND", "1000"),
                    ("DBAAS_RATE_LIMIT_BURST", "2000"),
                ],
                &[],
            ),
        );
        // The stand-in too runs as its ServiceAccount (the kind overlay's Role).
        let kubeconfig = self.standin_kubeconfig.to_string_lossy().into_owned();
        let standin = self.procs.start(
            "standin",
            command(
                "kubedb-standin",
                &[("KUBECONFIG", kubeconfig.as_str())],
                &standin_args(&self.namespace)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
        );
        self.servers = vec![api, standin];
        self.api_base = format!("http://{listen}");
        let readyz = format!("{}/readyz", self.api_base);
        self.servers[0]
            .wait_ready(&self.http, &readyz, Duration::from_secs(30))
            .await;
        self.check_servers();
        let (status, tenant) = self
            .send_as(
                &admin,
                Method::POST,
                "/api/v1/admin/tenants",
                Some(json!({"name": self.namespace})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating a tenant: {tenant}");
        let path = format!(
            "/api/v1/admin/tenants/{}/api-keys",
            tenant["id"].as_str().expect("tenant id")
        );
        let (status, key) = self.send_as(&admin, Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::CREATED, "creating an API key: {key}");
        self.key = key["key"].as_str().expect("api key").to_string();
    }

    fn check_servers(&mut self) {
        for p in &mut self.servers {
            p.check_alive();
        }
    }

    async fn send_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.api_base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let (status, value) = self.send_as(&self.key, method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {value}");
        value
    }

    fn control_env(&self, kubeconfig: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("MONGODB_URI", self.rig.mongodb_uri.clone()),
            ("MONGODB_DATABASE", self.database.clone()),
            ("REDIS_URL", self.rig.redis_url.clone()),
            ("DBAAS_QUEUE_PREFIX", self.prefix.clone()),
            ("KUBECONFIG", kubeconfig.to_string_lossy().into_owned()),
            ("DBAAS_NAMESPACE", self.namespace.clone()),
            ("PUSHGATEWAY_URL", self.rig.pushgateway_url.clone()),
            ("DBAAS_RETRY_BACKOFF_SECONDS", "0.2".into()),
            ("DBAAS_MAX_RETRY_BACKOFF_SECONDS", "2".into()),
            ("DBAAS_POLL_INTERVAL_SECONDS", "0.2".into()),
            ("DBAAS_DEQUEUE_TIMEOUT_SECONDS", "0.5".into()),
            ("DBAAS_OPERATION_DEADLINE_SECONDS", "60".into()),
        ]
    }

    /// One reconciler pass, as the reconciler's ServiceAccount.
    async fn reconcile(&mut self) {
        self.passes += 1;
        let mut env = self.control_env(&self.reconciler_kubeconfig);
        env.push((
            "POD_NAME",
            format!("dbaas-reconciler-{}-{}", self.id, self.passes),
        ));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let p = self
            .procs
            .start("reconciler", command("dbaas-reconciler", &env, &[]));
        let log = p.log.clone();
        let (status, _) = p.wait(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "dbaas-reconciler exited {status}; log ({}):\n{}",
            log.display(),
            log_tail(&log)
        );
    }

    /// Workers, as the worker's ServiceAccount, until the queue is empty.
    async fn drain(&mut self) {
        for _ in 0..20 {
            if self
                .queue
                .pending()
                .await
                .expect("read the pending list")
                .is_empty()
            {
                return;
            }
            let env = self.control_env(&self.worker_kubeconfig);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let p = self
                .procs
                .start("worker", command("dbaas-worker", &env, &[]));
            let log = p.log.clone();
            let (status, _) = p.wait(Duration::from_secs(90)).await;
            assert!(
                matches!(status.code(), Some(0 | 3)),
                "dbaas-worker exited {status}; log ({}):\n{}",
                log.display(),
                log_tail(&log)
            );
        }
        panic!(
            "the queue was not empty after 20 workers (logs in {})",
            self.procs.logs.display()
        );
    }

    /// Rounds of reconcile + drain until the database satisfies `done`.
    async fn converge(&mut self, db_id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..25 {
            self.check_servers();
            self.reconcile().await;
            self.drain().await;
            let (status, db) = self
                .send_as(
                    &self.key,
                    Method::GET,
                    &format!("/api/v1/databases/{db_id}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "GET {db_id}: {db}");
            if done(&db) {
                return db;
            }
            last = db;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{db_id}: {what} not reached; last seen {last} (logs in {})",
            self.procs.logs.display()
        );
    }

    /// Waits until Prometheus has scraped a push made at or after `since`
    /// to the Pushgateway group `job`/`instance` (bounded; other tests may
    /// push to the same group).
    async fn wait_for_scrape(&self, job: &str, instance: &str, since: f64) {
        let expr = format!("push_time_seconds{{job=\"{job}\",instance=\"{instance}\"}}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = prom_query(&self.http, &self.rig.prometheus_url, &expr).await
                && sample_values(&r).iter().any(|t| *t >= since)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "Prometheus at {} did not scrape a push to {job}/{instance} within 30 s",
            self.rig.prometheus_url
        );
    }

    /// Removes what the flow created (only after a pass, so a failure
    /// leaves its evidence).
    async fn finish(self) {
        let applier = Applier::new(client_for(&self.rig.kubeconfig).await);
        for o in rbac_for(&self.namespace, &self.id).iter().rev() {
            applier.delete(o).await;
        }
        drop(self.servers);
        if let Ok(client) = mongodb::Client::with_uri_str(&self.rig.mongodb_uri).await {
            let _ = client.database(&self.database).drop().await;
        }
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_after_an_end_to_end_flow() {
    let mut flow = Flow::start().await;
    let in_sync = |db: &Value| {
        db["status"] == "ready"
            && db["current_size"] == db["size"]
            && db["current_replicas"] == db["replicas"]
            && db["current_storage_gb"] == db["storage_gb"]
    };

    // Create: provisioned and ready.
    let db = flow
        .send(Method::POST, "/api/v1/databases", Some(json!({
            "name": "dash", "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 10})), StatusCode::CREATED)
        .await;
    let id = db["id"].as_str().expect("database id").to_string();
    let path = format!("/api/v1/databases/{id}");
    flow.converge(&id, "provisioned and ready", in_sync).await;

    // Two size changes, each converged; Prometheus scrapes the worker's
    // histogram in between, so the P50/P95/P99 panels see an increase.
    for size in ["db.t3.medium", "db.t3.large"] {
        flow.send(
            Method::PATCH,
            &path,
            Some(json!({"size": size})),
            StatusCode::OK,
        )
        .await;
        // The pass that sees the drift pushes dbaas_state_drift for it.
        let pushed = now_seconds();
        flow.reconcile().await;
        flow.wait_for_scrape("dbaas-reconciler", "", pushed).await;
        let db = flow.converge(&id, &format!("size {size}"), in_sync).await;
        assert_eq!(db["current_size"], size);
        flow.wait_for_scrape("dbaas-worker", "scale_vertical-succeeded", pushed)
            .await;
    }

    // Delete: the worker deletes the CR (its Role allows it); recorded deleted.
    flow.send(Method::DELETE, &path, None, StatusCode::ACCEPTED)
        .await;
    flow.converge(&id, "deleted", |db| db["status"] == "deleted")
        .await;
    let pushed = now_seconds();
    flow.reconcile().await;
    flow.wait_for_scrape("dbaas-reconciler", "", pushed).await;

    // Every panel's query returns at least one finite sample.
    assert_dashboards_have_data(
        &flow.http,
        &flow.rig.prometheus_url,
        Duration::from_secs(60),
    )
    .await;
    flow.finish().await;
}
