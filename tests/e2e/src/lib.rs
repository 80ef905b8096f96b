//! Harness of the end-to-end tests.
//!
//! The tests run the real binaries as processes, as Kubernetes would: the
//! API as a long-running server, the KubeDB stand-in as the operator, and
//! the reconciler (a CronJob: one pass, then exit) and the worker (a KEDA
//! job: one operation, then exit) as short-lived processes that the test
//! starts explicitly, so every step of the loop happens when the test says.
//!
//! Every test gets a [`TestEnv`] of its own: a unique Kubernetes namespace,
//! MongoDB database, Redis key prefix, admin token and API port, so tests
//! can run in parallel against one rig without seeing each other.
//!
//! Binaries are taken from the workspace target directory (`target/debug`,
//! the parent of the `deps` directory the test executable runs from); build
//! them first with `cargo build --workspace --bins`. A missing binary, or
//! one older than its sources, fails the test with that hint. Every process writes its output to a
//! log file under `<target>/<profile>/e2e-logs/<namespace>/`, named in
//! every failure message.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dbaas_cluster::kube::KubeCluster;
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::random_token;
use dbaas_core::engine::Engine;
use dbaas_core::naming;
use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::Command;

use dbaas_testkit::config::standin_args;
pub use dbaas_testkit::process::{Proc, Procs};
pub use dbaas_testkit::rig::{
    RIG_HINT, Rig, drop_mongo_database, drop_redis_prefix, free_port, log_tail,
};

/// What to do when a binary is missing.
pub const BUILD_HINT: &str = "build them first with `cargo build --workspace --bins`";

/// Longest a reconciler pass may take before the test fails.
const PASS_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one worker run may take before the test fails.
const WORKER_TIMEOUT: Duration = Duration::from_secs(90);
/// Workers started in one round before the queue must be empty.
const MAX_WORKERS_PER_ROUND: usize = 25;
/// Pause between two rounds of the loop.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// The directory holding the workspace's binaries: `target/<profile>`, the
/// parent of the `deps` directory this test executable runs from.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DBAAS_E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The path of binary `name`; fails the test with a hint if it is missing
/// or older than its sources (set `DBAAS_E2E_ALLOW_STALE=1` to skip that
/// check).
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "binary {name} not found at {}: {BUILD_HINT}",
        path.display()
    );
    if std::env::var_os("DBAAS_E2E_ALLOW_STALE").is_none()
        && let Some(newer) = newer_source(name, &path)
    {
        panic!(
            "binary {} is older than {}: {BUILD_HINT}",
            path.display(),
            newer.display()
        );
    }
    path
}

/// A source file binary `name` was built from that changed after it was
/// built, if any: the files its dep-info (`<name>.d`, written by cargo
/// beside the binary) lists, so a change to a crate the binary does not
/// use does not count.
fn newer_source(name: &str, binary: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let dep_info = std::fs::read_to_string(binary.with_file_name(format!("{name}.d"))).ok()?;
    let (_, sources) = dep_info.lines().next()?.split_once(": ")?;
    sources
        .split_whitespace()
        .map(PathBuf::from)
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .find(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
        })
}

/// The binaries the tests run.
pub const API_BIN: &str = "dbaas-api";
pub const RECONCILER_BIN: &str = "dbaas-reconciler";
pub const WORKER_BIN: &str = "dbaas-worker";
pub const STANDIN_BIN: &str = "kubedb-standin";

/// The HTTP API as a tenant sees it (and the admin routes).
pub struct ApiClient {
    http: reqwest::Client,
    pub base: String,
    key: String,
}

impl ApiClient {
    /// Sends a request; retries a 429 after a short pause. Returns the
    /// status and the body (JSON, or null when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        for _ in 0..50 {
            let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let text = resp.text().await.unwrap_or_default();
            let value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
            };
            return (status, value);
        }
        panic!("{method} {path}: still rate limited after 50 tries");
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        want: StatusCode,
    ) -> Value {
        let (status, value) = self.send(method.clone(), path, &self.key, body).await;
        assert_eq!(status, want, "{method} {path} answered {status}: {value}");
        value
    }

    pub async fn create_database(&self, body: &Value) -> Value {
        self.expect(
            Method::POST,
            "/api/v1/databases",
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn get_database(&self, id: &str) -> Value {
        self.expect(
            Method::GET,
            &format!("/api/v1/databases/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// GET without expectations: the status and body.
    pub async fn try_get_database(&self, id: &str) -> (StatusCode, Value) {
        self.send(
            Method::GET,
            &format!("/api/v1/databases/{id}"),
            &self.key,
            None,
        )
        .await
    }

    pub async fn patch_database(&self, id: &str, patch: &Value) -> Value {
        self.expect(
            Method::PATCH,
            &format!("/api/v1/databases/{id}"),
            Some(patch),
            StatusCode::OK,
        )
        .await
    }

    /// PATCH without expectations: the status and body.
    pub async fn try_patch_database(&self, id: &str, patch: &Value) -> (StatusCode, Value) {
        self.send(
            Method::PATCH,
            &format!("/api/v1/databases/{id}"),
            &self.key,
            Some(patch),
        )
        .await
    }

    /// The tenant's API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The database's username and password (200 expected).
    pub async fn credentials(&self, id: &str) -> Value {
        let path = format!("/api/v1/databases/{id}/credentials");
        self.expect(Method::GET, &path, None, StatusCode::OK).await
    }

    /// Asks for new credentials (202 expected); returns the database.
    pub async fn rotate_credentials(&self, id: &str) -> Value {
        let path = format!("/api/v1/databases/{id}/credentials/rotate");
        self.expect(Method::POST, &path, None, StatusCode::ACCEPTED)
            .await
    }

    /// The first page of the database's events, newest first.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let path = format!("/api/v1/databases/{id}/events?limit=200");
        let page = self.expect(Method::GET, &path, None, StatusCode::OK).await;
        page["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn delete_database(&self, id: &str) -> Value {
        self.expect(
            Method::DELETE,
            &format!("/api/v1/databases/{id}"),
            None,
            StatusCode::ACCEPTED,
        )
        .await
    }

    /// Every operation of a database, newest first (all pages).
    pub async fn operations(&self, database_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/operations?database_id={database_id}&limit=200");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.expect(Method::GET, &path, None, StatusCode::OK).await;
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    pub async fn operation(&self, id: &str) -> Value {
        self.expect(
            Method::GET,
            &format!("/api/v1/operations/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }
}

/// One test's world: its own namespace, store database, queue prefix, API
/// process and stand-in process.
pub struct TestEnv {
    pub rig: Rig,
    pub namespace: String,
    pub mongodb_database: String,
    pub queue_prefix: String,
    /// The processes' logs, one file each.
    pub procs: Procs,
    pub api: ApiClient,
    pub cluster: KubeCluster,
    pub queue: RedisQueue,
    /// Environment of every reconciler and worker (tests may change it).
    pub settings: BTreeMap<String, String>,
    admin_token: String,
    api_process: Option<Proc>,
    standin: Option<Proc>,
}

impl TestEnv {
    /// Starts the API and the stand-in for test `name` (short, DNS-safe).
    pub async fn start(name: &str) -> TestEnv {
        let rig = Rig::from_env();
        for bin in [API_BIN, RECONCILER_BIN, WORKER_BIN, STANDIN_BIN] {
            binary(bin);
        }
        let id = random_token(6);
        let namespace = naming::shorten(&format!("e2e-{name}-{id}"), 63);
        let procs = Procs::new(bin_dir().join("e2e-logs").join(&namespace));
        let cluster = KubeCluster::from_kubeconfig(Some(&rig.kubeconfig))
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}; {RIG_HINT}", rig.kubeconfig.display()));
        cluster
            .ensure_namespace(&namespace)
            .await
            .unwrap_or_else(|e| {
                panic!("the rig's API server did not create namespace {namespace}: {e}; {RIG_HINT}")
            });
        // KubeDB's catalog chart would have installed it (cluster-scoped:
        // every test shares it).
        dbaas_standin::catalog::install(&cluster)
            .await
            .unwrap_or_else(|e| panic!("installing the version catalog: {e}; {RIG_HINT}"));
        let queue_prefix = format!("e2e:{namespace}");
        let queue = rig.queue(&queue_prefix).await;
        let settings = BTreeMap::from(
            [
                ("DBAAS_RETRY_BACKOFF_SECONDS", "0.2"),
                ("DBAAS_MAX_RETRY_BACKOFF_SECONDS", "2"),
                ("DBAAS_POLL_INTERVAL_SECONDS", "0.2"),
                ("DBAAS_DEQUEUE_TIMEOUT_SECONDS", "0.5"),
                ("DBAAS_OPERATION_DEADLINE_SECONDS", "60"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut env = TestEnv {
            mongodb_database: format!("e2e_{}", namespace.replace('-', "_")),
            rig,
            namespace,
            queue_prefix,
            procs,
            api: ApiClient {
                http: reqwest::Client::new(),
                base: String::new(),
                key: String::new(),
            },
            cluster,
            queue,
            settings,
            admin_token: format!("admin-{}", random_token(24)),
            api_process: None,
            standin: None,
        };
        env.start_api().await;
        env.start_standin();
        env
    }

    /// The environment every control-plane process gets.
    fn base_command(&self, bin: &str) -> Command {
        let mut cmd = Command::new(binary(bin));
        cmd.envs(
            self.rig
                .role_env(&self.mongodb_database, &self.queue_prefix, &self.namespace),
        )
        .env("PUSHGATEWAY_URL", &self.rig.pushgateway_url)
        .env_remove("DBAAS_LOG_JSON");
        cmd
    }

    async fn start_api(&mut self) {
        let port = free_port();
        let mut cmd = self.base_command(API_BIN);
        cmd.env("DBAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBAAS_ADMIN_TOKEN", &self.admin_token)
            .env("DBAAS_RATE_LIMIT_PER_SECOND", "1000")
            .env("DBAAS_RATE_LIMIT_BURST", "2000");
        let mut proc = self.procs.start("api", cmd);
        self.api.base = format!("http://127.0.0.1:{port}");
        let readyz = format!("{}/readyz", self.api.base);
        proc.wait_ready(&self.api.http, &readyz, Duration::from_secs(30))
            .await;
        self.api_process = Some(proc);
        // A tenant and its key, through the admin routes.
        let token = self.admin_token.clone();
        let (status, tenant) = self
            .api
            .send(
                Method::POST,
                "/api/v1/admin/tenants",
                &token,
                Some(&json!({"name": self.namespace})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating a tenant answered {status}: {tenant}"
        );
        let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
        let (status, key) = self
            .api
            .send(
                Method::POST,
                &format!("/api/v1/admin/tenants/{tenant_id}/api-keys"),
                &token,
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating an API key answered {status}: {key}"
        );
        self.api.key = key["key"].as_str().expect("api key").to_string();
    }

    /// Starts the KubeDB stand-in on this test's namespace (a few hundred
    /// milliseconds per phase).
    pub fn start_standin(&mut self) {
        assert!(self.standin.is_none(), "the stand-in is already running");
        let mut cmd = Command::new(binary(STANDIN_BIN));
        cmd.env("KUBECONFIG", &self.rig.kubeconfig)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .args(standin_args(&self.namespace))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        self.standin = Some(self.procs.start("standin", cmd));
    }

    /// Stops the stand-in (the "operator" is down until restarted).
    pub async fn stop_standin(&mut self) {
        let mut proc = self.standin.take().expect("the stand-in is running");
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!(
                "the stand-in had exited ({status}); its log ({}):\n{}",
                proc.log.display(),
                log_tail(&proc.log)
            );
        }
        proc.child.kill().await.expect("stop the stand-in");
    }

    /// Fails the test if the API or the stand-in died.
    fn check_servers(&mut self) {
        for proc in [self.api_process.as_mut(), self.standin.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!(
                    "{} exited ({status}); its log ({}):\n{}",
                    proc.role,
                    proc.log.display(),
                    log_tail(&proc.log)
                );
            }
        }
    }

    fn control_command(&self, bin: &str, extra: &[(&str, &str)]) -> Command {
        let mut cmd = self.base_command(bin);
        cmd.envs(&self.settings);
        cmd.envs(extra.iter().copied());
        cmd
    }

    /// Starts a reconciler pass without waiting for it.
    pub fn spawn_reconciler(&self, extra: &[(&str, &str)]) -> Proc {
        self.procs
            .start("reconciler", self.control_command(RECONCILER_BIN, extra))
    }

    /// Runs one reconciler pass to completion; it must exit 0. Returns its log.
    pub async fn reconcile_with(&self, extra: &[(&str, &str)]) -> String {
        let (status, log) = self.spawn_reconciler(extra).wait(PASS_TIMEOUT).await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            status.success(),
            "dbaas-reconciler exited with {status}; its log ({}):\n{}",
            log.display(),
            log_tail(&log)
        );
        text
    }

    pub async fn reconcile(&self) -> String {
        self.reconcile_with(&[]).await
    }

    /// Starts a worker without waiting for it.
    pub fn spawn_worker(&self, extra: &[(&str, &str)]) -> Proc {
        self.procs
            .start("worker", self.control_command(WORKER_BIN, extra))
    }

    /// Runs one worker to completion: 0 (done or idle) or 3 (the operation
    /// failed and was recorded for retry); anything else fails the test.
    pub async fn run_worker(&self) -> i32 {
        self.run_worker_with(&[]).await
    }

    /// [`run_worker`](Self::run_worker) with extra environment.
    pub async fn run_worker_with(&self, extra: &[(&str, &str)]) -> i32 {
        let (status, log) = self.spawn_worker(extra).wait(WORKER_TIMEOUT).await;
        match status.code() {
            Some(code @ (0 | 3)) => code,
            _ => panic!(
                "dbaas-worker exited with {status}; its log ({}):\n{}",
                log.display(),
                log_tail(&log)
            ),
        }
    }

    /// Ids waiting in the pending list.
    pub async fn pending(&self) -> Vec<String> {
        self.queue.pending().await.expect("read the pending list")
    }

    /// Ids in the processing list.
    pub async fn processing(&self) -> Vec<String> {
        let all = self
            .queue
            .processing(Utc::now())
            .await
            .expect("read the processing list");
        all.into_iter().map(|p| p.operation_id).collect()
    }

    /// Runs workers one after another until the pending list is empty.
    /// Returns the exit codes.
    pub async fn drain_workers(&self) -> Vec<i32> {
        let mut codes = Vec::new();
        while !self.pending().await.is_empty() {
            assert!(
                codes.len() < MAX_WORKERS_PER_ROUND,
                "the queue was not empty after {MAX_WORKERS_PER_ROUND} workers: {:?} (logs in {})",
                self.pending().await,
                self.procs.logs.display()
            );
            codes.push(self.run_worker().await);
        }
        codes
    }

    /// One round of the loop: a reconciler pass, then workers until the
    /// queue is empty.
    pub async fn round(&mut self) {
        self.check_servers();
        self.reconcile().await;
        self.drain_workers().await;
        self.check_servers();
    }

    /// Runs rounds until `done` holds, at most `max_rounds`.
    pub async fn converge<T>(
        &mut self,
        what: &str,
        max_rounds: usize,
        mut done: impl AsyncFnMut(&Self) -> Option<T>,
    ) -> T {
        for _ in 0..max_rounds {
            self.round().await;
            if let Some(v) = done(self).await {
                return v;
            }
            tokio::time::sleep(ROUND_PAUSE).await;
        }
        panic!(
            "{what}: not reached after {max_rounds} rounds (logs in {})",
            self.procs.logs.display()
        );
    }

    /// Runs rounds until the database satisfies `pred`; returns it.
    pub async fn converge_db(
        &mut self,
        id: &str,
        what: &str,
        max_rounds: usize,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..max_rounds {
            self.round().await;
            last = self.api.get_database(id).await;
            if pred(&last) {
                return last;
            }
            tokio::time::sleep(ROUND_PAUSE).await;
        }
        panic!(
            "database {id}: {what} not reached after {max_rounds} rounds; last seen:\n{}\noperations:\n{}\n(logs in {})",
            serde_json::to_string_pretty(&last).unwrap_or_default(),
            serde_json::to_string_pretty(&self.api.operations(id).await).unwrap_or_default(),
            self.procs.logs.display()
        );
    }

    /// Creates a database and drives the loop until it is provisioned and
    /// ready; returns it.
    pub async fn create_ready(&mut self, body: Value) -> Value {
        let db = self.api.create_database(&body).await;
        let id = db["id"].as_str().expect("database id").to_string();
        self.converge_db(&id, "provisioned and ready", 20, |db| {
            db["status"] == "ready"
                && db["current_size"] == db["size"]
                && db["current_replicas"] == db["replicas"]
                && db["current_storage_gb"] == db["storage_gb"]
        })
        .await
    }

    /// Every OpsRequest of every engine in this test's namespace.
    pub async fn ops_requests(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for engine in Engine::ALL {
            out.extend(
                self.cluster
                    .list(&Kind::ops_request(engine), &self.namespace)
                    .await
                    .expect("list OpsRequests"),
            );
        }
        out
    }

    /// The OpsRequests targeting database `db` (as the API shows it).
    pub async fn ops_requests_of(&self, db: &Value) -> Vec<Value> {
        let cr = cr_name(db);
        self.ops_requests()
            .await
            .into_iter()
            .filter(|o| o["spec"]["databaseRef"]["name"] == cr.as_str())
            .collect()
    }

    /// The database's KubeDB CR, if it exists.
    pub async fn database_cr(&self, db: &Value) -> Option<Value> {
        self.cluster
            .get(
                &Kind::database(engine_of(db)),
                &self.namespace,
                &cr_name(db),
            )
            .await
            .expect("get the database CR")
    }

    /// A JSON merge patch of the database's CR, as `kubectl patch --type merge` does.
    pub async fn patch_cr(&self, db: &Value, patch: &Value) -> Value {
        self.cluster
            .merge_patch(
                &Kind::database(engine_of(db)),
                &self.namespace,
                &cr_name(db),
                patch,
            )
            .await
            .unwrap_or_else(|e| panic!("patching the CR of {}: {e}", db["id"]))
    }

    /// The auth Secret KubeDB (the stand-in) made for `db`, if it exists.
    pub async fn auth_secret(&self, db: &Value) -> Option<Value> {
        self.cluster
            .get(
                &Kind::secret(),
                &self.namespace,
                &naming::auth_secret(&cr_name(db)),
            )
            .await
            .unwrap_or_else(|e| panic!("reading the auth Secret of {}: {e}", db["id"]))
    }

    /// Stops the servers and removes the store database and queue keys.
    /// Only called by passing tests, so a failure leaves its evidence.
    pub async fn finish(mut self) {
        self.api_process.take();
        self.standin.take();
        drop_mongo_database(&self.rig.mongodb_uri, &self.mongodb_database).await;
        drop_redis_prefix(&self.rig.redis_url, &self.queue_prefix).await;
        let mut note = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.procs.logs.join("PASSED"))
            .ok();
        if let Some(f) = note.as_mut() {
            let _ = writeln!(f, "{}", Utc::now());
        }
    }
}

/// The engine of a database as the API shows it.
pub fn engine_of(db: &Value) -> Engine {
    let name = db["engine"].as_str().expect("engine");
    Engine::parse(name).unwrap_or_else(|| panic!("unknown engine {name}"))
}

/// The CR name of a database as the API shows it.
pub fn cr_name(db: &Value) -> String {
    naming::cr_name(
        db["name"].as_str().expect("name"),
        db["id"].as_str().expect("id"),
    )
}

/// The string field `key` of `v`.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
}

/// Parses an RFC 3339 field.
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The `status.phase` of an object.
pub fn phase(obj: &Value) -> &str {
    obj["status"]["phase"].as_str().unwrap_or("")
}

/// `metadata.name` of an object.
pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

/// Names of objects, sorted.
pub fn names(objs: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = objs.iter().map(|o| name(o).to_string()).collect();
    n.sort();
    n
}

/// A body for `POST /api/v1/databases`.
pub fn new_database(name: &str, engine: &str, size: &str, replicas: u32, storage_gb: u32) -> Value {
    json!({"name": name, "engine": engine, "size": size, "replicas": replicas, "storage_gb": storage_gb})
}
