//! Exclusivity: many reconcilers started together; exactly one pass runs per
//! round.
//!
//! - `many_reconcilers_one_pass_per_round`: `DBAAS_EXCLUSIVITY_ROUNDS`
//!   rounds (default 5; `just test-faults` runs 40) of 8 reconcilers (the
//!   library's, distinct holders) started together against the rig's
//!   kube-apiserver Lease. The cluster seen by the passes holds every
//!   Lease release back until all 8 have tried to acquire it, so a pass
//!   that finished early cannot let a late starter in: exactly one must
//!   win, every round, whatever the timing.
//! - `many_reconciler_processes`: rounds of 6 `dbaas-reconciler` processes
//!   started together (e2e harness): all exit 0, at least one pass runs,
//!   and the operations planned are never duplicated. (Processes cannot be
//!   held back at the Lease, so more than one may run one after another.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dbaas_cluster::kube::KubeCluster;
use dbaas_cluster::{Cluster, Kind};
use dbaas_control::reconciler::{Reconciler, ReconcilerConfig};
use dbaas_core::Result;
use dbaas_core::domain::{Database, OperationType, Size, random_token};
use dbaas_core::engine::Engine;
use dbaas_faults::{Summary, count, drop_mongo_database, drop_redis_prefix, rig_var};
use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use dbaas_store::mongo::MongoStore;
use dbaas_store::{OperationQuery, Store};
use dbaas_testkit::config::reconciler_config;
use serde_json::Value;
use tokio::sync::Notify;

const CONTENDERS: u64 = 8;

/// A cluster whose Lease releases wait until every contender of the round
/// has tried to acquire.
struct Gate {
    inner: Arc<dyn Cluster>,
    attempts: AtomicU64,
    wins: AtomicU64,
    tried: Notify,
}

#[async_trait]
impl Cluster for Gate {
    async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>> {
        self.inner.list(kind, namespace).await
    }
    async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>> {
        self.inner.get(kind, namespace, name).await
    }
    async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value> {
        self.inner.create(kind, namespace, object).await
    }
    async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.inner.merge_patch(kind, namespace, name, patch).await
    }
    async fn merge_patch_status(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.inner
            .merge_patch_status(kind, namespace, name, patch)
            .await
    }
    async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool> {
        self.inner.delete(kind, namespace, name).await
    }
    async fn ensure_namespace(&self, namespace: &str) -> Result<()> {
        self.inner.ensure_namespace(namespace).await
    }
    async fn try_acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let won = self
            .inner
            .try_acquire_lease(namespace, name, holder, ttl, now)
            .await;
        if matches!(won, Ok(true)) {
            self.wins.fetch_add(1, Ordering::SeqCst);
        }
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.tried.notify_waiters();
        won
    }
    async fn release_lease(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.tried.notified();
            if self.attempts.load(Ordering::SeqCst) >= CONTENDERS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not every contender tried the Lease within 60 s"
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        self.inner.release_lease(namespace, name, holder).await
    }
    fn api_calls(&self) -> u64 {
        self.inner.api_calls()
    }
}

fn database(tenant: &str, name: &str, engine: Engine) -> Database {
    let now = Utc::now();
    Database::declared(tenant, name, engine, Size::Small, 1, 10, now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_reconcilers_one_pass_per_round() {
    let rounds = count("DBAAS_EXCLUSIVITY_ROUNDS", 5);
    let started = Instant::now();
    let (uri, redis_url) = (rig_var("MONGODB_URI"), rig_var("REDIS_URL"));
    let kubeconfig = std::path::PathBuf::from(rig_var("KUBECONFIG"));
    let kube: Arc<dyn Cluster> = Arc::new(
        KubeCluster::from_kubeconfig(Some(&kubeconfig))
            .await
            .expect("kubeconfig"),
    );
    let run = random_token(6);
    let namespace = format!("faults-lease-{run}");
    let database_name = format!("faults_lease_{run}");
    let prefix = format!("faults:{namespace}");
    let store: Arc<dyn Store> = Arc::new(
        MongoStore::new(&uri, &database_name)
            .await
            .expect("mongodb uri"),
    );
    let queue: Arc<dyn Queue> = Arc::new(RedisQueue::new(&redis_url, &prefix).expect("redis url"));
    let mut ids = Vec::new();
    for (i, engine) in Engine::ALL.into_iter().enumerate() {
        let db = database("tn-lease", &format!("db{i}"), engine);
        ids.push(db.id.clone());
        store
            .insert_database(&db, &[])
            .await
            .expect("insert a database");
    }

    let mut summary = Summary::new("exclusivity_in_process");
    let mut problems = Vec::new();
    for round in 0..rounds {
        let gate = Arc::new(Gate {
            inner: kube.clone(),
            attempts: AtomicU64::new(0),
            wins: AtomicU64::new(0),
            tried: Notify::new(),
        });
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|c| {
                let (store, queue, gate, namespace) = (
                    store.clone(),
                    queue.clone(),
                    gate.clone(),
                    namespace.clone(),
                );
                tokio::spawn(async move {
                    let config = ReconcilerConfig {
                        lease_ttl: Duration::from_secs(60),
                        processing_deadline: Duration::from_secs(60),
                        ..reconciler_config(&namespace, &format!("contender-{round}-{c}"))
                    };
                    Reconciler {
                        store: &*store,
                        queue: &*queue,
                        cluster: &*gate,
                        config: &config,
                    }
                    .run_pass()
                    .await
                })
            })
            .collect();
        let mut ran = 0;
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(120), t).await {
                Err(_) => panic!("round {round}: a reconciler did not finish within 120 s"),
                Ok(r) => match r.expect("a reconciler panicked") {
                    Ok(report) if !report.skipped => ran += 1,
                    Ok(_) => {}
                    Err(e) => problems.push(format!("round {round}: a pass failed: {e}")),
                },
            }
        }
        summary.trials += 1;
        summary.faults += CONTENDERS - 1;
        if ran != 1 {
            problems.push(format!(
                "round {round}: {ran} passes ran (Lease wins {})",
                gate.wins.load(Ordering::SeqCst)
            ));
        }
    }
    // However many rounds, each database got exactly one provision planned.
    let ops = store
        .list_operations(&OperationQuery::default())
        .await
        .expect("list operations");
    for id in &ids {
        let n = ops
            .iter()
            .filter(|o| &o.database_id == id && o.type_() == OperationType::Provision)
            .count();
        if n != 1 {
            summary.duplicate_ops += n.saturating_sub(1) as u64;
            problems.push(format!("database {id} has {n} provision operations"));
        }
    }
    summary.converged = u64::from(problems.is_empty());
    summary.extra = format!(
        "contenders_per_round={CONTENDERS} secs={}",
        started.elapsed().as_secs()
    );
    summary.print();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    drop_mongo_database(&uri, &database_name).await;
    drop_redis_prefix(&redis_url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_reconciler_processes() {
    let rounds = count("DBAAS_EXCLUSIVITY_PROCESS_ROUNDS", 2);
    const PROCESSES: usize = 6;
    let started = Instant::now();
    let env = dbaas_e2e::TestEnv::start("excl").await;
    let mut ids = Vec::new();
    for (i, engine) in ["postgres", "mongodb", "mysql"].into_iter().enumerate() {
        let db = env
            .api
            .create_database(&dbaas_e2e::new_database(
                &format!("ex{i}"),
                engine,
                "db.t3.small",
                1,
                10,
            ))
            .await;
        ids.push(dbaas_e2e::s(&db, "id").to_string());
    }
    let mut summary = Summary::new("exclusivity_processes");
    let mut per_round = Vec::new();
    for _ in 0..rounds {
        let procs: Vec<_> = (0..PROCESSES).map(|_| env.spawn_reconciler(&[])).collect();
        let mut ran = 0;
        for p in procs {
            let (status, log) = p.wait(Duration::from_secs(120)).await;
            assert!(
                status.success(),
                "a reconciler exited with {status}; its log:\n{}",
                dbaas_e2e::log_tail(&log)
            );
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("reconciliation pass done") {
                ran += 1;
            } else {
                assert!(
                    text.contains("another reconciler holds the lease"),
                    "a reconciler neither ran nor saw the Lease held:\n{text}"
                );
            }
        }
        assert!(ran >= 1, "no pass ran in a round of {PROCESSES}");
        per_round.push(ran);
        summary.trials += 1;
        summary.faults += PROCESSES as u64 - 1;
        env.drain_workers().await;
    }
    for id in &ids {
        let ops = env.api.operations(id).await;
        let provisions = ops.iter().filter(|o| o["type"] == "provision").count();
        assert_eq!(provisions, 1, "database {id}: {ops:?}");
    }
    summary.converged = ids.len() as u64;
    summary.extra = format!(
        "processes_per_round={PROCESSES} passes_per_round={per_round:?} secs={}",
        started.elapsed().as_secs()
    );
    summary.print();
    env.finish().await;
}
