//! Helpers of the fault tests (`just test-faults`).
//!
//! - [`inject`]: wrappers around the store, queue and cluster that count
//!   every call a role makes and, at a chosen call, "crash" (the call never
//!   returns, and the test drops the role's future: nothing after it runs,
//!   as after a SIGKILL) or run a hook (stop a server mid-pass).
//! - [`servers`]: private Redis and FerretDB processes that a test may stop
//!   and restart without touching the shared rig.
//! - [`Summary`]: the one line every test prints.
//!
//! Counts come from the environment, small by default so `cargo test
//! --workspace` stays quick; `just test-faults` raises them.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dbaas_rest::{AppState, Limits, router};
use dbaas_store::Store;

pub mod inject;
pub mod servers;

/// `name` from the environment as a count, or `default`.
pub fn count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a non-negative integer")),
        _ => default,
    }
}

/// The seed of a test's random choices: `DBAAS_FAULT_SEED`, or a fresh one
/// (printed in the summary, so a failing run can be replayed).
pub fn seed() -> u64 {
    count("DBAAS_FAULT_SEED", rand::random::<u32>() as u64)
}

/// The one line a test prints: what it did and what it found.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub test: &'static str,
    pub trials: u64,
    pub faults: u64,
    pub converged: u64,
    pub duplicate_ops: u64,
    pub lost_writes: u64,
    /// Anything else worth one glance (`key=value` pairs).
    pub extra: String,
}

impl Summary {
    pub fn new(test: &'static str) -> Summary {
        Summary {
            test,
            ..Default::default()
        }
    }

    pub fn line(&self) -> String {
        let mut s = format!(
            "faults summary: {}: trials={} faults_injected={} databases_converged={} duplicate_ops_requests={} lost_writes={}",
            self.test,
            self.trials,
            self.faults,
            self.converged,
            self.duplicate_ops,
            self.lost_writes
        );
        if !self.extra.is_empty() {
            s.push(' ');
            s.push_str(&self.extra);
        }
        s
    }

    /// Prints the line and appends it to `target/faults/summary.txt`
    /// (which `just test-faults` shows at the end).
    pub fn print(&self) {
        let line = self.line();
        println!("{line}");
        let dir = target_dir().join("faults");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("summary.txt"))
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// The workspace's target directory (from the test executable's path).
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<exe>
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The rig's variables this crate needs; fails (never skips) when unset.
pub fn rig_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{name} is unset: the fault tests need the test rig; run `just rig-up` and `source target/rig/env`"
        ),
    }
}

/// The API router served in this process on a free loopback port; the
/// server stops when the returned handle is dropped.
pub struct ServedApi {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_api(
    store: Arc<dyn Store>,
    admin_token: &str,
    request_timeout: Duration,
) -> ServedApi {
    let limits = Limits {
        request_timeout,
        rate_limit_per_second: std::num::NonZeroU32::new(100_000).expect("non-zero"),
        rate_limit_burst: std::num::NonZeroU32::new(100_000).expect("non-zero"),
        ..Limits::default()
    };
    let app = router(AppState::new(store, Some(admin_token.to_string()), limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ServedApi { base, task }
}

/// Declares a database through the API; returns its id.
pub async fn create_database(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: serde_json::Value,
) -> String {
    let db: serde_json::Value = http
        .post(format!("{base}/api/v1/databases"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("POST database")
        .json()
        .await
        .expect("database JSON");
    db["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {db}"))
        .to_string()
}

/// Creates a tenant and one API key through the admin routes; returns
/// `(tenant_id, key)`.
pub async fn tenant_and_key(
    http: &reqwest::Client,
    base: &str,
    admin_token: &str,
    name: &str,
) -> (String, String) {
    let tenant: serde_json::Value = http
        .post(format!("{base}/api/v1/admin/tenants"))
        .bearer_auth(admin_token)
        .json(&serde_json::json!({"name": name}))
        .send()
        .await
        .expect("POST tenant")
        .error_for_status()
        .expect("tenant created")
        .json()
        .await
        .expect("tenant JSON");
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let key: serde_json::Value = http
        .post(format!("{base}/api/v1/admin/tenants/{tenant_id}/api-keys"))
        .bearer_auth(admin_token)
        .send()
        .await
        .expect("POST api key")
        .error_for_status()
        .expect("key created")
        .json()
        .await
        .expect("key JSON");
    (tenant_id, key["key"].as_str().expect("key").to_string())
}

pub use dbaas_testkit::rig::{drop_mongo_database, drop_redis_prefix};

/// A `dbaas-api` process on a free port, its output in a log file; killed
/// when dropped.
pub struct ApiProcess {
    pub base: String,
    pub log: PathBuf,
    child: std::process::Child,
}

impl ApiProcess {
    /// Starts the binary (built by `cargo build --workspace --bins`) on the
    /// store at `mongodb_uri`/`database` and waits until it is ready.
    pub async fn start(
        mongodb_uri: &str,
        database: &str,
        admin_token: &str,
        log_dir: &std::path::Path,
    ) -> ApiProcess {
        let bin = bin_dir().join("dbaas-api");
        assert!(
            bin.is_file(),
            "{} not found: build it first with `cargo build --workspace --bins`",
            bin.display()
        );
        // The API checks versions against KubeDB's catalog, which
        // installing KubeDB puts in the cluster (idempotent).
        let kubeconfig = PathBuf::from(rig_var("KUBECONFIG"));
        let cluster = dbaas_cluster::kube::KubeCluster::from_kubeconfig(Some(&kubeconfig))
            .await
            .expect("the rig's kubeconfig");
        dbaas_standin::catalog::install(&cluster)
            .await
            .expect("install the version catalog");
        let port = dbaas_testkit::rig::free_port();
        std::fs::create_dir_all(log_dir).expect("create the log directory");
        let log = log_dir.join(format!("api-{port}.log"));
        let file = std::fs::File::create(&log).expect("create the API log");
        let child = std::process::Command::new(bin)
            .env("MONGODB_URI", mongodb_uri)
            .env("MONGODB_DATABASE", database)
            .env("DBAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBAAS_ADMIN_TOKEN", admin_token)
            .env("DBAAS_RATE_LIMIT_PER_SECOND", "100000")
            .env("DBAAS_RATE_LIMIT_BURST", "100000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .expect("start dbaas-api");
        let mut api = ApiProcess {
            base: format!("http://127.0.0.1:{port}"),
            log,
            child,
        };
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!(
                    "dbaas-api exited at start ({status}): {}",
                    std::fs::read_to_string(&api.log).unwrap_or_default()
                );
            }
            if http
                .get(format!("{}/readyz", api.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return api;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "dbaas-api not ready within 30 s; log {}",
                api.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>`: where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}
