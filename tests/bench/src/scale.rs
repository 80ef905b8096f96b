//! The reconciler pass at scale and the worker, on the rig: database CRs in
//! the API server, records in the store (FerretDB), the real binaries.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, SubsecRound, Utc};
use dbaas_cluster::kube::KubeCluster;
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::{
    self, Action, Condition, Connection, Database, DatabaseStatus, OnDelete, Operation, Size,
};
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::kubedb::{self, DatabaseManifest, DeletionPolicy};
use dbaas_core::naming;
use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use dbaas_store::mongo::MongoStore;
use dbaas_store::{DatabaseQuery, ObservedUpdate, Store};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::util::{Exit, Proc, Spread, loadavg, log_event, token};
use crate::{Ctx, Rig};

/// Concurrent API server calls while seeding.
const KUBE_CONCURRENCY: usize = 32;
/// Concurrent store inserts while seeding.
const STORE_CONCURRENCY: usize = 16;
/// The reconciler's page size for lists (KubeCluster's PAGE).
const PAGE: usize = 500;

/// One database of a scenario.
struct Seed {
    engine: Engine,
    drift: Drift,
}

#[derive(Clone, Copy, PartialEq)]
enum Drift {
    None,
    /// Desired size one class up from what the CR runs.
    Size,
    /// Desired storage 20 GiB, the CR has 10.
    Storage,
}

/// What seeding cost (not counted in the pass figures).
#[derive(Debug, Clone, Serialize)]
pub struct SeedCost {
    pub databases: usize,
    pub drifted: usize,
    pub create_crs_s: f64,
    pub insert_records_s: f64,
    /// Operations recorded and enqueued for the drifted databases, when
    /// the scenario starts with them planned (0 otherwise).
    pub plan_operations_s: f64,
}

/// One run of the reconciler binary.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    pub wall_ms: f64,
    /// `duration_ms` of its summary line (the pass without process start
    /// and metrics push).
    pub pass_ms: f64,
    pub kube_calls: u64,
    pub operations_created: u64,
    pub databases_seen: u64,
    pub peak_rss_kb: u64,
    /// The process exited non-zero after its summary line.
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    pub databases: usize,
    pub drifted: usize,
    pub kinds: usize,
    /// LIST pages the pass needs: database CRs per kind in pages of 500,
    /// plus one OpsRequest page per kind.
    pub list_pages: usize,
    pub seed: SeedCost,
    /// The first pass after seeding, when it plans an operation per drifted
    /// database (None: the operations were seeded as planned).
    pub first_pass: Option<Pass>,
    /// The following passes: steady state (drifted databases have their
    /// operation pending; nothing else to write).
    pub passes: Vec<Pass>,
    pub wall_ms: Spread,
    pub pass_ms: Spread,
    pub kube_calls: Spread,
    pub peak_rss_mb: Spread,
    /// Where a steady pass spends its time, measured in-process.
    pub breakdown: Breakdown,
    pub load: [f64; 3],
}

/// In-process timings of a pass's two reads.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Every LIST of the pass (CRs and OpsRequests of every kind).
    pub kube_lists_ms: f64,
    /// Every database from the store, in one query as the pass reads them.
    pub store_read_ms: f64,
    /// One field-level update of a record (the median of 20), which is
    /// what planning costs per drifted database, several times over.
    pub store_update_ms: f64,
    /// One read of a record by id (the median of 20), for comparison.
    pub store_get_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerResult {
    pub operations: usize,
    /// From dequeue to the OpsRequest created (the worker's `since_dequeue_ms`).
    pub dequeue_to_ops_request_ms: Spread,
    /// From exec to exit, following the OpsRequest to Successful.
    pub wall_ms: Spread,
    pub peak_rss_mb: Spread,
    pub exit_codes: Vec<i32>,
    /// The KubeDB stand-in's RSS while idle on this namespace.
    pub standin_rest_rss_mb: f64,
    pub load: [f64; 3],
}

/// One scenario's namespace, store database and queue prefix.
pub struct Scenario {
    pub namespace: String,
    pub mongodb_database: String,
    pub queue_prefix: String,
    pub store: MongoStore,
    pub cluster: Arc<KubeCluster>,
    tenant_id: String,
}

impl Scenario {
    pub async fn new(rig: &Rig, label: &str) -> anyhow::Result<Scenario> {
        let id = token(6);
        let namespace = format!("bench-{label}-{id}");
        let mongodb_database = format!("bench_{label}_{id}");
        let store = MongoStore::new(&rig.mongodb_uri, &mongodb_database).await?;
        store.ensure_indexes().await.context("the rig's FerretDB")?;
        let cluster = Arc::new(KubeCluster::from_kubeconfig(Some(&rig.kubeconfig)).await?);
        cluster
            .ensure_namespace(&namespace)
            .await
            .context("the rig's API server")?;
        Ok(Scenario {
            queue_prefix: format!("bench:{namespace}"),
            namespace,
            mongodb_database,
            store,
            cluster,
            tenant_id: format!("tn-bench{id}"),
        })
    }

    /// The environment of a reconciler or worker on this scenario.
    pub fn command(&self, ctx: &Ctx, bin: &str) -> Command {
        let mut cmd = Command::new(ctx.bin(bin));
        cmd.envs(
            ctx.rig
                .role_env(&self.mongodb_database, &self.queue_prefix, &self.namespace),
        )
        .env("DBAAS_LOG_JSON", "true")
        .env_remove("PUSHGATEWAY_URL");
        cmd
    }

    /// Creates `seeds` as Ready CRs and matching records at steady state;
    /// with `planned`, each drifted database also has its operation pending
    /// and enqueued, as the pass that saw the drift would have left it.
    async fn seed(&self, rig: &Rig, seeds: &[Seed], planned: bool) -> anyhow::Result<SeedCost> {
        let now: DateTime<Utc> = Utc::now().trunc_subsecs(3);
        let mut pairs = Vec::with_capacity(seeds.len());
        for (i, s) in seeds.iter().enumerate() {
            let id = domain::new_database_id();
            let name = format!("b{i}");
            let cr = DatabaseManifest {
                engine: s.engine,
                name: naming::cr_name(&name, &id),
                namespace: self.namespace.clone(),
                version: s.engine.spec().default_version.to_string(),
                size: Size::Small,
                replicas: 1,
                storage_gb: 10,
                database_id: id.clone(),
                tenant_id: self.tenant_id.clone(),
                deletion_policy: DeletionPolicy::WipeOut,
            };
            let mut db = record(&self.tenant_id, id, name, s, now);
            db.connection = Some(Connection::of(
                s.engine,
                &cr.name,
                &cr.namespace,
                &naming::auth_secret(&cr.name),
                1,
            ));
            let op = (planned && s.drift != Drift::None).then(|| plan(&mut db, now));
            pairs.push((cr, db, op));
        }

        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (cr, _, _) in &pairs {
            if tasks.len() >= KUBE_CONCURRENCY {
                tasks.join_next().await.expect("a task")??;
            }
            let cluster = self.cluster.clone();
            let (cr, ns) = (cr.clone(), self.namespace.clone());
            tasks.spawn(async move {
                let kind = Kind::database(cr.engine);
                cluster
                    .create(&kind, &ns, &kubedb::database_object(&cr))
                    .await?;
                cluster
                    .merge_patch_status(
                        &kind,
                        &ns,
                        &cr.name,
                        &json!({"status": {"phase": "Ready"}}),
                    )
                    .await?;
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let create_crs_s = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut tasks = JoinSet::new();
        let mut ops = Vec::new();
        for (_, db, op) in pairs {
            if tasks.len() >= STORE_CONCURRENCY {
                tasks.join_next().await.expect("a task")??;
            }
            ops.extend(op);
            let store = self.store.clone();
            tasks.spawn(async move {
                store
                    .insert_database(&db, &[])
                    .await
                    .map_err(anyhow::Error::from)
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let insert_records_s = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let queue = RedisQueue::new(&rig.redis_url, &self.queue_prefix)?;
        for chunk in ops.chunks(STORE_CONCURRENCY) {
            let mut tasks = JoinSet::new();
            for op in chunk {
                let (store, op) = (self.store.clone(), op.clone());
                tasks.spawn(async move {
                    store
                        .insert_operation(&op, &[])
                        .await
                        .map_err(anyhow::Error::from)
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            for op in chunk {
                queue.enqueue(&op.id).await?;
            }
        }
        Ok(SeedCost {
            databases: seeds.len(),
            drifted: seeds.iter().filter(|s| s.drift != Drift::None).count(),
            create_crs_s,
            insert_records_s,
            plan_operations_s: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs the reconciler binary once; its figures from its summary line.
    pub fn pass(&self, ctx: &Ctx, log_name: &str) -> anyhow::Result<Pass> {
        let log = ctx.logs.join(format!("{log_name}.log"));
        let mut cmd = self.command(ctx, "dbaas-reconciler");
        cmd.env("POD_NAME", "dbaas-bench");
        let exit = Proc::spawn("dbaas-reconciler", cmd, &log)?.wait(Duration::from_secs(300))?;
        let Some(summary) = log_event(&log, "reconciliation pass done") else {
            bail!(
                "dbaas-reconciler exited with {} without its summary line; log {}",
                exit.code,
                log.display()
            );
        };
        // A pass that finished but did not exit cleanly still counts, and
        // the failure is reported with it.
        let failure = (exit.code != 0).then(|| {
            let f = format!(
                "{log_name} exited {}: {}",
                exit.code,
                crate::util::panic_of(&log)
            );
            eprintln!("  note: {f}");
            f
        });
        let num = |k: &str| summary[k].as_u64().unwrap_or(0);
        Ok(Pass {
            wall_ms: ms(exit.wall),
            pass_ms: num("duration_ms") as f64,
            kube_calls: num("kube_calls"),
            operations_created: num("operations_created"),
            databases_seen: num("databases"),
            peak_rss_kb: exit.peak_rss_kb,
            failure,
        })
    }

    /// The pass's reads, timed in-process.
    async fn breakdown(&self) -> anyhow::Result<Breakdown> {
        // All LISTs at once, as the pass makes them.
        let started = Instant::now();
        let kinds = Engine::ALL
            .into_iter()
            .flat_map(|e| [Kind::database(e), Kind::ops_request(e)]);
        futures::future::try_join_all(kinds.map(|kind| {
            let cluster = self.cluster.clone();
            let ns = self.namespace.clone();
            async move { cluster.list(&kind, &ns).await }
        }))
        .await?;
        let kube_lists_ms = ms(started.elapsed());
        // As the pass reads the store: every database not yet finalized,
        // in one query.
        let started = Instant::now();
        let databases = self
            .store
            .list_databases(&DatabaseQuery {
                exclude_deleted: true,
                ..Default::default()
            })
            .await?;
        let store_read_ms = ms(started.elapsed());
        // Writes the values the records already hold: the cost without a change.
        let (mut updates, mut gets) = (Vec::new(), Vec::new());
        for db in databases.iter().take(20) {
            let started = Instant::now();
            self.store.get_database(&db.id).await?;
            gets.push(ms(started.elapsed()));
        }
        for db in databases.iter().take(20) {
            let started = Instant::now();
            self.store
                .update_observed(
                    &db.id,
                    &ObservedUpdate {
                        current_size: db.current_size,
                        ..Default::default()
                    },
                )
                .await?;
            updates.push(ms(started.elapsed()));
        }
        Ok(Breakdown {
            kube_lists_ms,
            store_read_ms,
            store_update_ms: Spread::of(&updates).median,
            store_get_ms: Spread::of(&gets).median,
        })
    }

    /// Removes the CRs and OpsRequests, the store database and the queue keys.
    pub async fn clean(&self, rig: &Rig) {
        if let Err(e) = delete_collections(rig, &self.namespace).await {
            eprintln!("  cleaning namespace {}: {e:#}", self.namespace);
        }
        let _ = self.store.database().drop().await;
        dbaas_testkit::rig::drop_redis_prefix(&rig.redis_url, &self.queue_prefix).await;
    }
}

/// A record at the steady state the reconciler would have written: current
/// state as the CR shows, status and conditions as it words them, so that
/// the passes measured write only what the drift calls for.
fn record(tenant_id: &str, id: String, name: String, s: &Seed, now: DateTime<Utc>) -> Database {
    let cond = |type_: &str, ok: bool, reason: &str, message: &str| Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now,
    };
    let in_sync = s.drift == Drift::None;
    let synced = match s.drift {
        Drift::None => cond(
            "Synced",
            true,
            "InSync",
            "current state matches desired state",
        ),
        Drift::Size => cond("Synced", false, "Drift", "drift in size"),
        Drift::Storage => cond("Synced", false, "Drift", "drift in storage"),
    };
    Database {
        id,
        tenant_id: tenant_id.to_string(),
        name,
        engine: s.engine,
        version: s.engine.spec().default_version.to_string(),
        current_version: Some(s.engine.spec().default_version.to_string()),
        size: if s.drift == Drift::Size {
            Size::Medium
        } else {
            Size::Small
        },
        replicas: 1,
        storage_gb: if s.drift == Drift::Storage { 20 } else { 10 },
        current_size: Some(Size::Small),
        current_replicas: Some(1),
        current_storage_gb: Some(10),
        auth_rotation: 0,
        current_auth_rotation: 0,
        connection: None,
        paused: false,
        current_paused: false,
        deletion_protection: false,
        // As the CRs above are made.
        deletion_policy: OnDelete::Wipeout,
        current_deletion_policy: Some(OnDelete::Wipeout),
        restarts: 0,
        current_restarts: 0,
        deletion_requested: false,
        generation: if in_sync { 1 } else { 2 },
        observed_generation: 1,
        status: if in_sync {
            DatabaseStatus::Ready
        } else {
            DatabaseStatus::Updating
        },
        conditions: vec![cond("Ready", true, "Ready", "KubeDB phase Ready"), synced],
        active_operation_id: None,
        operation_seq: 0,
        created_at: now,
        updated_at: now,
    }
}

/// The operation the pass plans for a drifted record, made the record's
/// active one (as `plan_operation` and `begin_operation` leave them).
fn plan(db: &mut Database, now: DateTime<Utc>) -> Operation {
    let change = if db.size != db.current_size.unwrap_or(db.size) {
        Change::Size(db.size)
    } else {
        Change::StorageGb(db.storage_gb)
    };
    let op = Operation::planned(db, Action::Change(change), now);
    db.active_operation_id = Some(op.id.clone());
    db.operation_seq += 1;
    op
}

/// `n` databases over every engine; one in ten drifted (two thirds of
/// those in size, one third in storage), spread evenly over the engines.
fn seeds(n: usize, engines: &[Engine]) -> Vec<Seed> {
    (0..n)
        .map(|i| {
            let round = i / engines.len();
            let drift = match (round % 10 == 3, (round / 10) % 3) {
                (false, _) => Drift::None,
                (true, 2) => Drift::Storage,
                (true, _) => Drift::Size,
            };
            Seed {
                engine: engines[i % engines.len()],
                drift,
            }
        })
        .collect()
}

/// Deletes every database CR and OpsRequest of the namespace, one call per
/// kind (the namespace itself stays: the rig has no namespace controller).
async fn delete_collections(rig: &Rig, namespace: &str) -> anyhow::Result<()> {
    use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use kube::core::ApiResource;
    let kc = Kubeconfig::read_from(&rig.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    for engine in Engine::ALL {
        for kind in [Kind::database(engine), Kind::ops_request(engine)] {
            let ar = ApiResource {
                group: kind.group.into(),
                version: kind.version.into(),
                api_version: kind.api_version(),
                kind: kind.kind.into(),
                plural: kind.plural.into(),
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
            api.delete_collection(&DeleteParams::default(), &ListParams::default())
                .await?;
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The reconciler at `n` databases: seed, then `passes` steady passes.
/// Without `planned`, a first pass plans the drifted databases' operations
/// (timed apart); with it, they are seeded as planned.
pub async fn reconciler_at(
    ctx: &Ctx,
    n: usize,
    passes: usize,
    planned: bool,
) -> anyhow::Result<ScaleResult> {
    let label = format!("r{n}");
    let sc = Scenario::new(&ctx.rig, &label).await?;
    let result = async {
        let seeds = seeds(n, &Engine::ALL);
        println!("  seeding {n} databases in {} ...", sc.namespace);
        let seed = sc.seed(&ctx.rig, &seeds, planned).await?;
        println!(
            "  seeded: CRs {:.1} s, records {:.1} s, operations {:.1} s",
            seed.create_crs_s, seed.insert_records_s, seed.plan_operations_s
        );
        let load = loadavg();
        let first_pass = if planned {
            None
        } else {
            let p = sc.pass(ctx, &format!("reconciler-{n}-first"))?;
            println!(
                "  first pass: wall {:.0} ms, {} operations planned",
                p.wall_ms, p.operations_created
            );
            if p.operations_created as usize != seed.drifted {
                eprintln!(
                    "  note: the first pass planned {} operations for {} drifted databases",
                    p.operations_created, seed.drifted
                );
            }
            Some(p)
        };
        let mut runs = Vec::new();
        for i in 0..passes {
            let p = sc.pass(ctx, &format!("reconciler-{n}-{i}"))?;
            if p.operations_created != 0 || p.databases_seen as usize != n {
                eprintln!(
                    "  note: pass {i} saw {} databases and planned {} operations",
                    p.databases_seen, p.operations_created
                );
            }
            println!(
                "  pass {i}: wall {:.0} ms, pass {:.0} ms, {} kube calls",
                p.wall_ms, p.pass_ms, p.kube_calls
            );
            runs.push(p);
        }
        let breakdown = sc.breakdown().await?;
        let per_kind = n.div_ceil(Engine::ALL.len());
        let f = |g: fn(&Pass) -> f64| Spread::of(&runs.iter().map(g).collect::<Vec<_>>());
        Ok(ScaleResult {
            databases: n,
            drifted: seed.drifted,
            kinds: Engine::ALL.len(),
            list_pages: Engine::ALL.len() * (per_kind.div_ceil(PAGE).max(1) + 1),
            seed,
            first_pass,
            wall_ms: f(|p| p.wall_ms),
            pass_ms: f(|p| p.pass_ms),
            kube_calls: f(|p| p.kube_calls as f64),
            peak_rss_mb: f(|p| p.peak_rss_kb as f64 / 1024.0),
            passes: runs,
            breakdown,
            load,
        })
    }
    .await;
    sc.clean(&ctx.rig).await;
    result
}

/// The worker: `ops` drifted databases, one reconciler pass to plan their
/// operations, then one worker process per operation with the stand-in
/// playing KubeDB.
pub async fn worker(ctx: &Ctx, ops: usize) -> anyhow::Result<WorkerResult> {
    let sc = Scenario::new(&ctx.rig, "worker").await?;
    let mut standin: Option<Proc> = None;
    let result = async {
        let seeds: Vec<Seed> = (0..ops)
            .map(|_| Seed {
                engine: Engine::Postgres,
                drift: Drift::Size,
            })
            .collect();
        sc.seed(&ctx.rig, &seeds, false).await?;
        let planned = sc.pass(ctx, "worker-plan")?;
        if planned.operations_created as usize != ops {
            bail!(
                "the pass planned {} operations, not {ops}",
                planned.operations_created
            );
        }
        let mut cmd = Command::new(ctx.bin("kubedb-standin"));
        cmd.env("KUBECONFIG", &ctx.rig.kubeconfig)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .args(["--namespaces", &sc.namespace])
            .args([
                "--provision-delay-ms",
                "100",
                "--phase-delay-ms",
                "50",
                "--poll-interval-ms",
                "50",
            ]);
        let s = Proc::spawn("kubedb-standin", cmd, &ctx.logs.join("worker-standin.log"))?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let standin_rest_rss_mb = crate::util::proc_kb(s.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0;
        standin = Some(s);
        let load = loadavg();
        let mut since = Vec::new();
        let mut exits: Vec<Exit> = Vec::new();
        for i in 0..ops {
            let log = ctx.logs.join(format!("worker-{i}.log"));
            let mut cmd = sc.command(ctx, "dbaas-worker");
            cmd.env("DBAAS_DEQUEUE_TIMEOUT_SECONDS", "2")
                .env("DBAAS_POLL_INTERVAL_SECONDS", "0.05")
                .env("DBAAS_OPERATION_DEADLINE_SECONDS", "30");
            let exit = Proc::spawn("dbaas-worker", cmd, &log)?.wait(Duration::from_secs(60))?;
            match log_event(&log, "following").and_then(|f| f["since_dequeue_ms"].as_f64()) {
                Some(ms) => since.push(ms),
                None => bail!(
                    "worker {i} logged no since_dequeue_ms (exit {}); log {}",
                    exit.code,
                    log.display()
                ),
            }
            exits.push(exit);
        }
        Ok(WorkerResult {
            operations: ops,
            dequeue_to_ops_request_ms: Spread::of(&since),
            wall_ms: Spread::of(&exits.iter().map(|e| ms(e.wall)).collect::<Vec<_>>()),
            peak_rss_mb: Spread::of(
                &exits
                    .iter()
                    .map(|e| e.peak_rss_kb as f64 / 1024.0)
                    .collect::<Vec<_>>(),
            ),
            exit_codes: exits.iter().map(|e| e.code).collect(),
            standin_rest_rss_mb,
            load,
        })
    }
    .await;
    sc.clean(&ctx.rig).await;
    if let Some(s) = standin {
        // After the clean-up, so it can release any finalizer it set.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = s.stop();
    }
    result
}
