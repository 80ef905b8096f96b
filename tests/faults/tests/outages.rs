//! Outages: the store (FerretDB), the queue (Redis) or the Kubernetes API
//! server stops in the middle of a pass, a request or an operation, and
//! comes back. The roles fail fast (never hang), the API answers 503
//! problem+json within its timeout while the store is down, and the next
//! pass after the restart recovers: every database converges and no
//! operation is lost or stuck.
//!
//! The servers stopped are private ones (the shared rig's are never
//! touched): a FerretDB and a Redis started by the test, and for the API
//! server a second rig (`tests/rig/up.sh` with `RIG_DIR=target/faults-rig`)
//! whose kube-apiserver is killed and restarted with the same command line
//! (same port, certificates and etcd), then torn down. The roles are the
//! library's, through injector hooks that stop a server at a chosen call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_cluster::Cluster;
use dbaas_cluster::kube::KubeCluster;
use dbaas_core::domain::{DatabaseStatus, random_token};
use dbaas_faults::inject::{Faulty, Injector};
use dbaas_faults::servers::{self, Server, Shared, repo_root, scratch};
use dbaas_faults::{
    Summary, create_database, drop_mongo_database, drop_redis_prefix, rig_var, serve_api,
    tenant_and_key,
};
use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use dbaas_standin::StandinConfig;
use dbaas_store::mongo::MongoStore;
use dbaas_store::{OperationQuery, Store};
use dbaas_testkit::config::outage_worker_config;
use dbaas_testkit::control_loop::{Loop, Parts};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Longest a role may take to fail during an outage: it must not hang.
const FAIL_FAST: Duration = Duration::from_secs(30);
const API_TIMEOUT: Duration = Duration::from_secs(5);
const ADMIN: &str = "faults-outage-admin-token-0123456789";

struct World {
    /// The real parts, the stand-in running on them in the background.
    real: Loop,
    /// The same roles and settings through the injector.
    roles: Loop,
    inj: Arc<Injector>,
    summary: Summary,
}

impl World {
    async fn new(label: &'static str, real: Parts) -> World {
        let namespace = format!("faults-outage-{}", random_token(6));
        let mut real = Loop::new(real, &namespace, "outage-test");
        real.reconciler.max_attempts = 5;
        real.worker = outage_worker_config(&namespace);
        real.spawn_standin(
            StandinConfig {
                provision_delay: Duration::from_millis(100),
                phase_delay: Duration::from_millis(100),
                ..Default::default()
            },
            Duration::from_millis(100),
        );
        let faulty = Faulty::new(&real.parts);
        World {
            roles: real.over(faulty.parts),
            real,
            inj: faulty.inj,
            summary: Summary::new(label),
        }
    }

    /// One pass through the injector; it must end (Ok or Err) in time.
    async fn pass(&self) -> Result<(), String> {
        match tokio::time::timeout(FAIL_FAST, self.roles.pass()).await {
            Err(_) => panic!("a reconciler pass hung for {FAIL_FAST:?}"),
            Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
        }
    }

    /// One worker through the injector; it must end in time.
    async fn worker(&self) -> Result<(), String> {
        match tokio::time::timeout(FAIL_FAST, self.roles.work_once()).await {
            Err(_) => panic!("a worker hung for {FAIL_FAST:?}"),
            Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
        }
    }

    /// An outage step: `act` (a pass or a worker) with `server` stopped at
    /// the `nth` call of `call`; it must fail, and fail fast.
    async fn outage_during(
        &mut self,
        what: &str,
        server: &Shared,
        call: &'static str,
        nth: u32,
        worker: bool,
    ) {
        self.inj.reset();
        let s = server.clone();
        self.inj.on(call, nth, move || servers::kill(&s));
        let mut r = if worker {
            self.worker().await
        } else {
            self.pass().await
        };
        // A long-lived Redis queue keeps its BLMOVE connections: after a
        // restart, the first dequeue on a pooled one fails once (the id stays
        // pending). Such a run never got to the call; run another.
        for _ in 0..3 {
            if !servers_running(server) {
                break;
            }
            r = if worker {
                self.worker().await
            } else {
                self.pass().await
            };
        }
        self.inj.reset();
        assert!(
            !servers_running(server),
            "{what}: the run never reached call {nth} of {call}"
        );
        assert!(r.is_err(), "{what}: the run did not notice the outage");
        self.summary.faults += 1;
        self.summary.trials += 1;
    }

    /// Passes and workers (errors allowed: the outage may still be
    /// settling) until `id` is ready with `check` true, nothing queued and
    /// no operation open.
    async fn converge(
        &mut self,
        id: &str,
        what: &str,
        check: impl Fn(&dbaas_core::domain::Database) -> bool,
    ) {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            self.inj.reset();
            if let Err(e) = self.pass().await {
                last = format!("pass: {e}");
            }
            for _ in 0..10 {
                match self.real.parts.queue.pending().await {
                    Ok(p) if p.is_empty() => break,
                    Ok(_) => {
                        if let Err(e) = self.worker().await {
                            last = format!("worker: {e}");
                        }
                    }
                    Err(e) => {
                        last = format!("queue: {e}");
                        break;
                    }
                }
            }
            if let Ok(Some(db)) = self.real.parts.store.get_database(id).await {
                let open = self
                    .real
                    .parts
                    .store
                    .list_operations(&OperationQuery {
                        database_id: Some(id.into()),
                        ..Default::default()
                    })
                    .await
                    .map(|ops| ops.iter().filter(|o| !o.status.is_final()).count())
                    .unwrap_or(usize::MAX);
                let queued = self
                    .real
                    .parts
                    .queue
                    .pending()
                    .await
                    .map(|p| p.len())
                    .unwrap_or(usize::MAX)
                    + self
                        .real
                        .parts
                        .queue
                        .processing(Utc::now())
                        .await
                        .map(|p| p.len())
                        .unwrap_or(usize::MAX);
                if db.status == DatabaseStatus::Ready
                    && db.in_sync()
                    && check(&db)
                    && open == 0
                    && queued == 0
                    && db.active_operation_id.is_none()
                {
                    self.summary.converged += 1;
                    return;
                }
                last = format!(
                    "{last}; status {:?} desired {:?}/{}/{} current {:?}/{:?}/{:?} open {open} queued {queued}",
                    db.status,
                    db.size,
                    db.replicas,
                    db.storage_gb,
                    db.current_size,
                    db.current_replicas,
                    db.current_storage_gb
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{what}: not converged within 120 s after the outage: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn servers_running(server: &Shared) -> bool {
    server
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_running()
}

async fn patch(http: &reqwest::Client, base: &str, key: &str, id: &str, body: Value) -> Value {
    let r = http
        .patch(format!("{base}/api/v1/databases/{id}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), StatusCode::OK, "PATCH {body}");
    r.json().await.expect("JSON")
}

/// An API call during the store outage: 503 problem+json. A request that
/// ran into the API's own deadline would answer 504 instead, so a 503 is
/// an answer within the timeout; the client's longer timeout turns a hang
/// into a failure.
async fn expect_unavailable(req: reqwest::RequestBuilder, what: &str) {
    let resp = req
        .timeout(API_TIMEOUT + Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer during the outage (a hang?): {e}"));
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} during the store outage: {body}"
    );
    assert!(
        ct.starts_with("application/problem+json") && body["status"] == 503,
        "{what}: not problem+json: {ct} {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_outage() {
    let started = Instant::now();
    let dir = scratch("outage-store");
    let ferret = servers::shared(Server::ferretdb(&dir));
    servers::start(&ferret);
    let uri = ferret.lock().unwrap().mongodb_uri();
    let redis_url = rig_var("REDIS_URL");
    let prefix = format!("faults:outage-store:{}", random_token(6));
    let kube: Arc<dyn Cluster> = Arc::new(
        KubeCluster::from_kubeconfig(Some(std::path::Path::new(&rig_var("KUBECONFIG"))))
            .await
            .expect("kubeconfig"),
    );
    let mongo: Arc<dyn Store> = Arc::new(MongoStore::new(&uri, "dbaas").await.expect("uri"));
    let queue: Arc<dyn Queue> = Arc::new(RedisQueue::new(&redis_url, &prefix).expect("redis url"));
    let mut w = World::new(
        "outage_store",
        Parts {
            store: mongo.clone(),
            queue,
            cluster: kube,
        },
    )
    .await;
    // The API on the same store, through an injector of its own.
    let api_faults = Faulty::new(&w.real.parts);
    let api_inj = api_faults.inj.clone();
    let api = serve_api(api_faults.parts.store, ADMIN, API_TIMEOUT).await;
    let http = reqwest::Client::new();
    let (_, key) = tenant_and_key(&http, &api.base, ADMIN, "outage").await;
    let id = create_database(&http, &api.base, &key, json!({"name": "steady", "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 10})).await;
    w.converge(&id, "provisioned", |_| true).await;

    // 1. FerretDB dies in the middle of a pass (at its first observed-state write).
    patch(&http, &api.base, &key, &id, json!({"size": "db.t3.medium"})).await;
    w.outage_during(
        "store down mid-pass",
        &ferret,
        "store.list_operations",
        1,
        false,
    )
    .await;
    // While it is down: every API call that needs the store answers 503
    // problem+json in time; the probe says not ready; roles fail fast.
    let url = format!("{}/api/v1/databases/{id}", api.base);
    expect_unavailable(http.get(&url).bearer_auth(&key), "GET a database").await;
    expect_unavailable(
        http.patch(&url)
            .bearer_auth(&key)
            .json(&json!({"size": "db.t3.large"})),
        "PATCH",
    )
    .await;
    expect_unavailable(
        http.get(format!("{}/api/v1/databases", api.base))
            .bearer_auth(&key),
        "list",
    )
    .await;
    expect_unavailable(http.post(format!("{}/api/v1/databases", api.base)).bearer_auth(&key).json(&json!({"name": "x", "engine": "redis", "size": "db.t3.micro", "replicas": 1, "storage_gb": 10})), "POST").await;
    expect_unavailable(
        http.get(format!("{}/api/v1/operations", api.base))
            .bearer_auth(&key),
        "operations",
    )
    .await;
    expect_unavailable(http.get(format!("{}/readyz", api.base)), "readyz").await;
    assert!(
        w.pass().await.is_err(),
        "a pass during the outage must fail"
    );
    let health = http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "liveness does not depend on the store"
    );
    servers::start(&ferret);
    w.converge(&id, "medium after a store outage mid-pass", |db| {
        db.current_size == Some(dbaas_core::domain::Size::Medium)
    })
    .await;

    // 2. FerretDB dies in the middle of a PATCH (at its compare-and-set).
    let s = ferret.clone();
    api_inj.reset();
    api_inj.on("store.update_desired", 1, move || servers::kill(&s));
    expect_unavailable(
        http.patch(&url)
            .bearer_auth(&key)
            .json(&json!({"size": "db.t3.large"})),
        "PATCH with the store dying under it",
    )
    .await;
    api_inj.reset();
    w.summary.faults += 1;
    w.summary.trials += 1;
    servers::start(&ferret);
    let mut ok = false;
    for _ in 0..50 {
        let r = http
            .patch(&url)
            .bearer_auth(&key)
            .json(&json!({"size": "db.t3.large"}))
            .send()
            .await
            .expect("PATCH");
        if r.status() == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "the PATCH never succeeded after the store came back");
    w.converge(&id, "large after a store outage mid-request", |db| {
        db.current_size == Some(dbaas_core::domain::Size::Large)
    })
    .await;

    // 3. FerretDB dies while a worker follows its OpsRequest.
    patch(&http, &api.base, &key, &id, json!({"storage_gb": 30})).await;
    w.pass().await.expect("a pass with the store up");
    w.outage_during(
        "store down while a worker follows",
        &ferret,
        "store.update_claimed_operation",
        2,
        true,
    )
    .await;
    servers::start(&ferret);
    w.converge(&id, "30 GiB after a store outage mid-operation", |db| {
        db.current_storage_gb == Some(30)
    })
    .await;

    let db = w
        .real
        .parts
        .store
        .get_database(&id)
        .await
        .expect("get")
        .expect("exists");
    if (db.size, db.storage_gb) != (dbaas_core::domain::Size::Large, 30) {
        w.summary.lost_writes += 1;
    }
    w.summary.extra = format!("secs={}", started.elapsed().as_secs());
    w.summary.print();
    assert_eq!(w.summary.lost_writes, 0, "desired state lost: {db:?}");
    drop_redis_prefix(&redis_url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_outage() {
    let started = Instant::now();
    let dir = scratch("outage-queue");
    let redis = servers::shared(Server::redis(&dir));
    servers::start(&redis);
    let redis_url = redis.lock().unwrap().redis_url();
    let uri = rig_var("MONGODB_URI");
    let database = format!("faults_outage_q_{}", random_token(6));
    let kube: Arc<dyn Cluster> = Arc::new(
        KubeCluster::from_kubeconfig(Some(std::path::Path::new(&rig_var("KUBECONFIG"))))
            .await
            .expect("kubeconfig"),
    );
    let store: Arc<dyn Store> = Arc::new(MongoStore::new(&uri, &database).await.expect("uri"));
    let queue: Arc<dyn Queue> =
        Arc::new(RedisQueue::new(&redis_url, "dbaas:operations").expect("redis url"));
    let mut w = World::new(
        "outage_queue",
        Parts {
            store: store.clone(),
            queue,
            cluster: kube,
        },
    )
    .await;
    let api = serve_api(store.clone(), ADMIN, API_TIMEOUT).await;
    let http = reqwest::Client::new();
    let (_, key) = tenant_and_key(&http, &api.base, ADMIN, "outage").await;
    let id = create_database(&http, &api.base, &key, json!({"name": "queued", "engine": "mongodb", "size": "db.t3.small", "replicas": 1, "storage_gb": 10})).await;
    w.converge(&id, "provisioned", |_| true).await;

    // 1. Redis dies in the middle of a pass (the queue repair): the
    //    operation is recorded in the store but never reaches Redis, and
    //    Redis comes back empty (no persistence).
    patch(&http, &api.base, &key, &id, json!({"replicas": 3})).await;
    w.outage_during("queue down mid-pass", &redis, "queue.pending", 1, false)
        .await;
    assert!(
        w.worker().await.is_err(),
        "a worker during the outage must fail"
    );
    let got = http
        .get(format!("{}/api/v1/databases/{id}", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        got.status(),
        StatusCode::OK,
        "the API does not need the queue"
    );
    servers::start(&redis);
    w.converge(&id, "3 replicas after a queue outage mid-pass", |db| {
        db.current_replicas == Some(3)
    })
    .await;

    // 2. Redis dies right after a worker took an id (its processing entry
    //    is lost with it); the worker fails at its ack.
    patch(&http, &api.base, &key, &id, json!({"size": "db.t3.large"})).await;
    w.pass().await.expect("a pass with the queue up");
    w.outage_during(
        "queue down after a dequeue",
        &redis,
        "store.claim_operation",
        1,
        true,
    )
    .await;
    servers::start(&redis);
    w.converge(&id, "large after a queue outage mid-operation", |db| {
        db.current_size == Some(dbaas_core::domain::Size::Large)
    })
    .await;

    // 3. Redis dies while a worker follows, before its ack.
    patch(&http, &api.base, &key, &id, json!({"storage_gb": 25})).await;
    w.pass().await.expect("a pass with the queue up");
    w.outage_during("queue down before the ack", &redis, "queue.ack", 1, true)
        .await;
    servers::start(&redis);
    w.converge(&id, "25 GiB after a queue outage at the ack", |db| {
        db.current_storage_gb == Some(25)
    })
    .await;

    w.summary.extra = format!("secs={}", started.elapsed().as_secs());
    w.summary.print();
    drop_mongo_database(&uri, &database).await;
}

/// The second rig: up (or reused if healthy), its kube-apiserver's pid and
/// command line, so it can be killed and started again as it was.
struct SecondRig {
    dir: std::path::PathBuf,
}

impl SecondRig {
    /// up.sh picks free ports and then binds them; a test running beside
    /// this one can take a port in between (seen in CI: etcd's peer port),
    /// so a failed start is tried again. up.sh stops what it started first.
    fn up() -> SecondRig {
        let dir = dbaas_faults::target_dir().join("faults-rig");
        let started = (0..3).any(|_| {
            std::process::Command::new("bash")
                .arg(repo_root().join("tests/rig/up.sh"))
                .env("RIG_DIR", &dir)
                .status()
                .expect("run tests/rig/up.sh")
                .success()
        });
        assert!(
            started,
            "the second rig did not come up in 3 tries (RIG_DIR={})",
            dir.display()
        );
        SecondRig { dir }
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.join("kubeconfig")
    }

    fn apiserver_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.join("pids/kube-apiserver.pid"))
            .expect("the apiserver's pid file");
        text.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a pid")
    }

    /// SIGKILL, keeping the command line to start it again.
    fn kill_apiserver(&self) -> Vec<String> {
        let pid = self.apiserver_pid();
        let cmdline =
            std::fs::read(format!("/proc/{pid}/cmdline")).expect("the apiserver's command line");
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        assert!(
            args.first().is_some_and(|a| a.contains("kube-apiserver")),
            "pid {pid} is not the kube-apiserver: {args:?}"
        );
        // Its own process group (started with setsid): only it.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        for _ in 0..100 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        args
    }

    /// Starts it again the way up.sh does, recording the new pid for down.sh.
    fn start_apiserver(&self, args: &[String]) {
        let script = r#"source "$1/tests/rig/lib.sh"; shift; setsid "$@" >>"$RIG_DIR/logs/kube-apiserver.log" 2>&1 </dev/null & record_pid kube-apiserver $!"#;
        let status = std::process::Command::new("bash")
            .args(["-c", script, "restart"])
            .arg(repo_root())
            .args(args)
            .env("RIG_DIR", &self.dir)
            .status()
            .expect("restart the kube-apiserver");
        assert!(status.success(), "restarting the kube-apiserver failed");
    }

    fn down(&self) {
        let _ = std::process::Command::new("bash")
            .arg(repo_root().join("tests/rig/down.sh"))
            .env("RIG_DIR", &self.dir)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_server_outage() {
    let started = Instant::now();
    let rig = SecondRig::up();
    struct Down<'a>(&'a SecondRig);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            self.0.down();
        }
    }
    let _down = Down(&rig);
    let uri = rig_var("MONGODB_URI");
    let redis_url = rig_var("REDIS_URL");
    let database = format!("faults_outage_k_{}", random_token(6));
    let prefix = format!("faults:outage-kube:{}", random_token(6));
    let kube: Arc<dyn Cluster> = Arc::new(
        KubeCluster::from_kubeconfig(Some(&rig.kubeconfig()))
            .await
            .expect("kubeconfig"),
    );
    let store: Arc<dyn Store> = Arc::new(MongoStore::new(&uri, &database).await.expect("uri"));
    let queue: Arc<dyn Queue> = Arc::new(RedisQueue::new(&redis_url, &prefix).expect("redis url"));
    let mut w = World::new(
        "outage_api_server",
        Parts {
            store: store.clone(),
            queue,
            cluster: kube,
        },
    )
    .await;
    let api = serve_api(store.clone(), ADMIN, API_TIMEOUT).await;
    let http = reqwest::Client::new();
    let (_, key) = tenant_and_key(&http, &api.base, ADMIN, "outage").await;
    let id = create_database(&http, &api.base, &key, json!({"name": "clustered", "engine": "mysql", "size": "db.t3.small", "replicas": 1, "storage_gb": 10})).await;
    w.converge(&id, "provisioned", |_| true).await;

    // 1. The API server dies in the middle of a pass (its LISTs).
    patch(&http, &api.base, &key, &id, json!({"size": "db.t3.medium"})).await;
    let args = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (args, dir) = (args.clone(), rig.dir.clone());
        w.inj.reset();
        w.inj.on("cluster.list", 3, move || {
            *args.lock().unwrap() = SecondRig { dir }.kill_apiserver()
        });
        let r = w.pass().await;
        w.inj.reset();
        assert!(
            r.is_err(),
            "a pass with the API server gone mid-way must fail"
        );
        w.summary.faults += 1;
        w.summary.trials += 1;
    }
    let cmd = args.lock().unwrap().clone();
    assert!(!cmd.is_empty(), "the API server was never stopped");
    assert!(
        w.pass().await.is_err(),
        "a pass during the outage must fail"
    );
    assert!(
        w.worker().await.is_err() || w.real.parts.queue.pending().await.unwrap().is_empty(),
        "a worker during the outage fails or has nothing to do"
    );
    let got = http
        .get(format!("{}/api/v1/databases/{id}", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        got.status(),
        StatusCode::OK,
        "the API does not need the cluster"
    );
    rig.start_apiserver(&cmd);
    w.converge(&id, "medium after an API server outage mid-pass", |db| {
        db.current_size == Some(dbaas_core::domain::Size::Medium)
    })
    .await;

    // 2. The API server dies while a worker follows its OpsRequest.
    patch(&http, &api.base, &key, &id, json!({"storage_gb": 20})).await;
    w.pass().await.expect("a pass with the API server up");
    {
        let (args, dir) = (args.clone(), rig.dir.clone());
        w.inj.reset();
        w.inj.on("cluster.get", 2, move || {
            *args.lock().unwrap() = SecondRig { dir }.kill_apiserver()
        });
        let r = w.worker().await;
        w.inj.reset();
        assert!(r.is_err(), "a worker with the API server gone must fail");
        w.summary.faults += 1;
        w.summary.trials += 1;
    }
    let cmd = args.lock().unwrap().clone();
    rig.start_apiserver(&cmd);
    w.converge(
        &id,
        "20 GiB after an API server outage mid-operation",
        |db| db.current_storage_gb == Some(20),
    )
    .await;

    w.summary.extra = format!("secs={}", started.elapsed().as_secs());
    w.summary.print();
    drop_mongo_database(&uri, &database).await;
    drop_redis_prefix(&redis_url, &prefix).await;
}
