//! Crash points: a worker (or a reconciler) dies at a random point of its
//! work, over many trials; afterwards every database converges, there is
//! exactly one OpsRequest per operation attempt, and no operation is lost
//! or stuck.
//!
//! Besides plain changes, some trials race a user against the crashing
//! role: a cancel through the real API router (one that wins leaves no
//! OpsRequest for its operation and its change taken back; one that loses
//! changes nothing), or a pause while the operation runs (it waits for the
//! operation, then the database halts; the resume brings every change).
//!
//! Two tests:
//! - `crash_trials_in_process` (the bulk, `DBAAS_FAULT_TRIALS`, default 24;
//!   `just test-faults` runs 200): the library's worker and reconciler on
//!   the rig's FerretDB, Redis and kube-apiserver, every call through an
//!   injector that crashes at call `k` (uniform over the calls a clean run
//!   makes, before or after the call). The role's future is dropped there:
//!   nothing of it runs afterwards, as after SIGKILL. This reaches every
//!   boundary (after dequeue, after claim, after the OpsRequest is created,
//!   while following, before and after each store update, before the ack),
//!   deterministically, at a cost of about a second a trial.
//! - `sigkill_worker_processes` (`DBAAS_FAULT_PROCESS_TRIALS`, default 3;
//!   `just test-faults` runs 24): the real `dbaas-worker` binary killed with
//!   SIGKILL when observable state says it reached a point (id in the
//!   processing list, operation claimed, OpsRequest created, OpsRequest
//!   progressing or successful) or at a random time, through the e2e
//!   harness. This checks what the in-process trials cannot: a process
//!   dying mid-call (a store write lock left behind, a half-read reply).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_cluster::kube::KubeCluster;
use dbaas_cluster::{Cluster, Kind};
use dbaas_control::worker::Outcome;
use dbaas_core::catalog::Catalog;
use dbaas_core::domain::{
    ApiKeyRecord, Database, DatabaseStatus, Operation, OperationStatus, OperationType, Size,
    Tenant, hash_api_key, new_api_key, new_database_id, random_token,
};
use dbaas_core::engine::Engine;
use dbaas_core::kubedb::DATABASE_ID_LABEL;
use dbaas_core::naming;
use dbaas_faults::inject::{CrashAt, Faulty, Injector};
use dbaas_faults::{Summary, count, drop_mongo_database, drop_redis_prefix, rig_var, seed};
use dbaas_queue::Queue;
use dbaas_queue::redis::RedisQueue;
use dbaas_rest::{AppState, Limits};
use dbaas_standin::{Standin, StandinConfig, catalog};
use dbaas_store::mongo::MongoStore;
use dbaas_store::{DesiredChange, OperationQuery, Store};
use dbaas_testkit::config::outage_worker_config;
use dbaas_testkit::control_loop::{Loop, Parts};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tower::ServiceExt;

const LANES: u64 = 4;
/// Longest a database may take to converge after a crash.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest one crashing role run may take (it either ends or crashes).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Which role a trial crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Worker,
    Reconciler,
}

/// What a trial does to desired state before the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Provision,
    Change,
    /// A change, then a user cancels its operation while a worker runs it.
    Cancel,
    /// A change, then a user pauses the database while a worker runs it.
    Pause,
    Delete,
}

/// The desired state the test wrote, to check nothing was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    size: Size,
    replicas: u32,
    storage_gb: u32,
    version: String,
    auth_rotation: u64,
}

#[derive(Default)]
struct Tally {
    trials: u64,
    faults: u64,
    converged: u64,
    duplicates: u64,
    lost: u64,
    /// Cancels that won (their change taken back) and that were refused.
    cancels_won: u64,
    cancels_refused: u64,
    pauses: u64,
    /// Where crashes landed, by role and call.
    points: BTreeMap<String, u64>,
    failures: Vec<String>,
}

struct Lane {
    n: u64,
    engine: Engine,
    /// The lane's store and queue and the shared cluster, as they are.
    real: Parts,
    /// The roles over the injector's wrappers of `real`.
    roles: Loop,
    inj: Arc<Injector>,
    rng: StdRng,
    /// The calls a clean run made, by name: crash points are drawn from
    /// them (a name first, then one of its calls), so rare calls such as
    /// `store.insert_operation` get hit as often as the many polls.
    worker_traces: HashMap<OperationType, Vec<&'static str>>,
    pass_trace: Vec<&'static str>,
    passes: u64,
    tally: Tally,
    /// The API over the lane's real store, and a key of the lane's tenant.
    api: axum::Router,
    api_key: String,
}

impl Lane {
    /// A new Lease holder for the next pass, as each pass is a new process.
    fn next_holder(&mut self) {
        self.passes += 1;
        self.roles.reconciler.holder = format!("lane{}-pass{}", self.n, self.passes);
    }

    /// One reconciler pass, clean. Returns the calls it made (0 if skipped).
    async fn pass(&mut self) -> Result<u64, String> {
        self.next_holder();
        self.inj.reset();
        match tokio::time::timeout(RUN_TIMEOUT, self.roles.pass()).await {
            Err(_) => Err(format!(
                "a clean reconciler pass did not finish within {RUN_TIMEOUT:?}"
            )),
            Ok(Err(e)) => Err(format!("a clean reconciler pass failed: {e}")),
            Ok(Ok(report)) if report.skipped => Ok(0),
            Ok(Ok(_)) => {
                let trace = self.inj.trace();
                if self.pass_trace.is_empty() || trace.contains(&"store.insert_operations") {
                    self.pass_trace = trace;
                }
                Ok(self.inj.calls())
            }
        }
    }

    /// Workers, clean, until the pending list is empty.
    async fn drain(&mut self) -> Result<(), String> {
        for _ in 0..10 {
            let pending = self
                .real
                .queue
                .pending()
                .await
                .map_err(|e| format!("pending: {e}"))?;
            if pending.is_empty() {
                return Ok(());
            }
            let op = self
                .real
                .store
                .get_operation(&pending[0])
                .await
                .ok()
                .flatten();
            self.inj.reset();
            match tokio::time::timeout(RUN_TIMEOUT, self.roles.work_once()).await {
                Err(_) => {
                    return Err(format!(
                        "a clean worker did not finish within {RUN_TIMEOUT:?}"
                    ));
                }
                Ok(Err(e)) => return Err(format!("a clean worker failed: {e}")),
                Ok(Ok(Outcome::Succeeded(_))) => {
                    if let Some(op) = op {
                        self.worker_traces.insert(op.type_(), self.inj.trace());
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
        Err("the pending list did not empty after 10 workers".into())
    }

    /// Runs `role` with a crash at a random call; returns where it crashed
    /// (None: the run ended before the drawn call).
    async fn crash(
        &mut self,
        role: Role,
        type_hint: Option<OperationType>,
    ) -> Result<Option<String>, String> {
        let trace = match role {
            Role::Worker => type_hint
                .and_then(|t| self.worker_traces.get(&t).cloned())
                .unwrap_or_default(),
            Role::Reconciler => self.pass_trace.clone(),
        };
        let at = if trace.is_empty() {
            self.rng.random_range(1..=24)
        } else {
            let names: Vec<&str> = trace
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let name = names[self.rng.random_range(0..names.len())];
            let calls: Vec<usize> = (0..trace.len()).filter(|&i| trace[i] == name).collect();
            calls[self.rng.random_range(0..calls.len())] as u64 + 1
        };
        let at = CrashAt {
            at,
            after: self.rng.random_bool(0.5),
        };
        self.inj.reset();
        self.inj.arm_crash(at);
        let crashed = self.inj.crashed();
        let ended = match role {
            Role::Worker => {
                let run = async { self.roles.work_once().await.map(|_| ()) };
                tokio::time::timeout(RUN_TIMEOUT, async {
                    tokio::select! { r = run => Some(r), () = crashed => None }
                })
                .await
            }
            Role::Reconciler => {
                self.next_holder();
                let run = async { self.roles.pass().await.map(|_| ()) };
                tokio::time::timeout(RUN_TIMEOUT, async {
                    tokio::select! { r = run => Some(r), () = crashed => None }
                })
                .await
            }
        };
        match ended {
            Err(_) => Err(format!(
                "the {role:?} neither finished nor crashed within {RUN_TIMEOUT:?}"
            )),
            Ok(Some(Err(e))) => Err(format!("the {role:?} failed before its crash point: {e}")),
            Ok(Some(Ok(()))) => Ok(None),
            Ok(None) => Ok(self.inj.fired()),
        }
    }

    /// Rounds of a pass and workers until the database converged.
    async fn settle(&mut self, id: &str, step: Step) -> Result<Database, String> {
        let started = Instant::now();
        loop {
            self.pass().await?;
            self.drain().await?;
            let db = self
                .real
                .store
                .get_database(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the database record is gone")?;
            let queue_empty = self
                .real
                .queue
                .pending()
                .await
                .map_err(|e| e.to_string())?
                .is_empty()
                && self
                    .real
                    .queue
                    .processing(Utc::now())
                    .await
                    .map_err(|e| e.to_string())?
                    .is_empty();
            let open = self.open_operations(id).await?;
            let done = match step {
                Step::Delete => db.status == DatabaseStatus::Deleted,
                Step::Pause if db.paused => db.status == DatabaseStatus::Paused,
                _ => {
                    db.in_sync()
                        && db.status == DatabaseStatus::Ready
                        && db.observed_generation == db.generation
                }
            };
            if done && queue_empty && open.is_empty() && db.active_operation_id.is_none() {
                return Ok(db);
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                return Err(format!(
                    "not converged within {SETTLE_TIMEOUT:?}: status {:?}, desired {:?}/{}/{} current {:?}/{:?}/{:?}, active {:?}, queue empty {queue_empty}, open operations {open:?}",
                    db.status,
                    db.size,
                    db.replicas,
                    db.storage_gb,
                    db.current_size,
                    db.current_replicas,
                    db.current_storage_gb,
                    db.active_operation_id
                ));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn operations(&self, id: &str) -> Result<Vec<Operation>, String> {
        self.real
            .store
            .list_operations(&OperationQuery {
                database_id: Some(id.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// Operations not finished: pending, running or failed.
    async fn open_operations(&self, id: &str) -> Result<Vec<String>, String> {
        Ok(self
            .operations(id)
            .await?
            .into_iter()
            .filter(|o| !o.status.is_final())
            .map(|o| {
                format!(
                    "{} {} {} attempt {}",
                    o.id,
                    o.type_().as_str(),
                    o.status.as_str(),
                    o.attempts
                )
            })
            .collect())
    }

    /// Duplicate OpsRequests of the database: ones that belong to no
    /// recorded (operation, attempt), and extra operations for one change.
    async fn duplicates(&self, id: &str) -> Result<(u64, Vec<String>), String> {
        let ops: HashMap<String, Operation> = self
            .operations(id)
            .await?
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect();
        let requests = self
            .real
            .cluster
            .list(
                &Kind::ops_request(self.engine),
                &self.roles.reconciler.namespace,
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut found = Vec::new();
        let mut dup = 0;
        let mut per_change: HashMap<(OperationType, u64, String), Vec<String>> = HashMap::new();
        for r in requests
            .iter()
            .filter(|r| r["metadata"]["labels"][DATABASE_ID_LABEL] == id)
        {
            let name = r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let owner = name
                .rsplit_once('-')
                .and_then(|(op, n)| Some((ops.get(op)?, n.parse::<u32>().ok()?)));
            match owner {
                Some((op, attempt)) if attempt >= 1 && attempt <= op.attempts => {
                    per_change
                        .entry((op.type_(), op.target_generation, format!("{:?}", op.action)))
                        .or_default()
                        .push(op.id.clone());
                }
                _ => {
                    dup += 1;
                    found.push(format!("{name} belongs to no recorded operation attempt"));
                }
            }
        }
        for (change, mut owners) in per_change {
            owners.sort();
            owners.dedup();
            if owners.len() > 1 {
                dup += owners.len() as u64 - 1;
                found.push(format!(
                    "{change:?} has OpsRequests of {} operations: {owners:?}",
                    owners.len()
                ));
            }
        }
        // Each succeeded scaling operation has its last attempt's request, Successful.
        for op in ops
            .values()
            .filter(|o| o.status == OperationStatus::Succeeded)
        {
            if matches!(
                op.type_(),
                OperationType::Provision
                    | OperationType::Deprovision
                    | OperationType::Pause
                    | OperationType::Resume
                    | OperationType::SetDeletionPolicy
            ) {
                continue;
            }
            let name = op.ops_request_name_for_attempt();
            let phase = requests
                .iter()
                .find(|r| r["metadata"]["name"] == name.as_str())
                .map(|r| r["status"]["phase"].clone());
            if phase != Some(Value::from("Successful")) {
                found.push(format!(
                    "operation {} succeeded but its OpsRequest {name} is {phase:?}",
                    op.id
                ));
            }
        }
        Ok((dup, found))
    }

    /// `role` crashing at a random point while a user cancels the
    /// database's active operation through the API, a little later. Returns
    /// where it crashed and the operation if the cancel won.
    async fn crash_racing_a_cancel(
        &mut self,
        id: &str,
        role: Role,
        type_hint: Option<OperationType>,
    ) -> Result<(Option<String>, Option<String>), String> {
        let db = self
            .real
            .store
            .get_database(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("database gone")?;
        let Some(op) = db.active_operation_id else {
            return Ok((self.crash(role, type_hint).await?, None));
        };
        let delay = Duration::from_millis(self.rng.random_range(0..40));
        let (api, key) = (self.api.clone(), self.api_key.clone());
        let uri = format!("/api/v1/operations/{op}/cancel");
        let cancel = async move {
            tokio::time::sleep(delay).await;
            let req = axum::http::Request::post(uri)
                .header("authorization", format!("Bearer {key}"))
                .body(axum::body::Body::empty())
                .expect("a request");
            api.oneshot(req).await.map(|r| r.status())
        };
        let (fired, status) = tokio::join!(self.crash(role, type_hint), cancel);
        let status = status.map_err(|e| format!("the API: {e}"))?;
        match status.as_u16() {
            200 => {
                self.tally.cancels_won += 1;
                Ok((fired?, Some(op)))
            }
            409 => {
                self.tally.cancels_refused += 1;
                Ok((fired?, None))
            }
            other => Err(format!("the cancel answered {other}")),
        }
    }

    /// A worker crashing at a random point while a user pauses the
    /// database, a little later.
    async fn crash_racing_a_pause(
        &mut self,
        id: &str,
        type_hint: Option<OperationType>,
    ) -> Result<Option<String>, String> {
        let delay = Duration::from_millis(self.rng.random_range(0..40));
        let store = self.real.store.clone();
        let id = id.to_string();
        let pause = async move {
            tokio::time::sleep(delay).await;
            for _ in 0..5 {
                let db = store.get_database(&id).await?.expect("the database");
                let change = DesiredChange {
                    paused: Some(true),
                    ..Default::default()
                };
                if store
                    .update_desired(&id, db.generation, &change)
                    .await?
                    .is_some()
                {
                    return Ok(true);
                }
            }
            Ok::<_, dbaas_core::Error>(false)
        };
        self.tally.pauses += 1;
        let (fired, paused) = tokio::join!(self.crash(Role::Worker, type_hint), pause);
        if !paused.map_err(|e| e.to_string())? {
            return Err("the pause lost its compare-and-set 5 times in a row".into());
        }
        fired
    }

    /// Names of the OpsRequests of any attempt of operation `op`.
    async fn requests_of_operation(&self, op: &str) -> Result<Vec<String>, String> {
        let requests = self
            .real
            .cluster
            .list(
                &Kind::ops_request(self.engine),
                &self.roles.reconciler.namespace,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(requests
            .iter()
            .filter_map(|r| r["metadata"]["name"].as_str())
            .filter(|n| n.rsplit_once('-').is_some_and(|(o, _)| o == op))
            .map(str::to_string)
            .collect())
    }

    async fn halted(&self, db: &Database) -> Result<bool, String> {
        let cr = self
            .real
            .cluster
            .get(
                &Kind::database(self.engine),
                &self.roles.reconciler.namespace,
                &naming::cr_name(&db.name, &db.id),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(cr.is_some_and(|c| c["spec"]["halted"] == true && c["status"]["phase"] == "Halted"))
    }

    /// A change of one field to a new valid value.
    fn change(&mut self, want: &Want) -> DesiredChange {
        let engine = self.engine;
        loop {
            match self.rng.random_range(0..5) {
                3 => {
                    // The next version up the catalog's allowed paths.
                    let catalog = Catalog::new(engine, catalog::entries());
                    if let Some(to) = catalog.upgrades(&want.version).first() {
                        return DesiredChange {
                            version: Some(to.name.clone()),
                            status: Some(DatabaseStatus::Updating),
                            ..Default::default()
                        };
                    }
                }
                0 => {
                    let size = Size::ALL[self.rng.random_range(0..Size::ALL.len())];
                    if size != want.size {
                        return DesiredChange {
                            size: Some(size),
                            status: Some(DatabaseStatus::Updating),
                            ..Default::default()
                        };
                    }
                }
                1 => {
                    let r = self.rng.random_range(1..=5);
                    if r != want.replicas
                        && engine.replicas_error(r).is_none()
                        && engine.replica_change_error(want.replicas, r).is_none()
                    {
                        return DesiredChange {
                            replicas: Some(r),
                            status: Some(DatabaseStatus::Updating),
                            ..Default::default()
                        };
                    }
                }
                2 => {
                    return DesiredChange {
                        auth_rotation: Some(want.auth_rotation + 1),
                        status: Some(DatabaseStatus::Updating),
                        ..Default::default()
                    };
                }
                _ => {
                    let g = want.storage_gb + self.rng.random_range(1..=20);
                    return DesiredChange {
                        storage_gb: Some(g),
                        status: Some(DatabaseStatus::Updating),
                        ..Default::default()
                    };
                }
            }
        }
    }

    /// Writes desired state as the API does (compare-and-set on generation).
    async fn write_desired(
        &mut self,
        id: &str,
        change: &DesiredChange,
        want: &mut Want,
    ) -> Result<(), String> {
        for _ in 0..5 {
            let db = self
                .real
                .store
                .get_database(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("database gone")?;
            if self
                .real
                .store
                .update_desired(id, db.generation, change)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                want.size = change.size.unwrap_or(want.size);
                want.replicas = change.replicas.unwrap_or(want.replicas);
                want.storage_gb = change.storage_gb.unwrap_or(want.storage_gb);
                want.auth_rotation = change.auth_rotation.unwrap_or(want.auth_rotation);
                if let Some(v) = &change.version {
                    want.version = v.clone();
                }
                return Ok(());
            }
        }
        Err("the desired-state write lost its compare-and-set 5 times in a row".into())
    }

    async fn trial(&mut self, id: &str, step: Step, want: &mut Want) -> Result<(), String> {
        let role = if step != Step::Provision && self.rng.random_bool(0.25) {
            Role::Reconciler
        } else {
            Role::Worker
        };
        let type_hint = match step {
            Step::Provision => Some(OperationType::Provision),
            Step::Delete => Some(OperationType::Deprovision),
            Step::Change | Step::Cancel | Step::Pause => None,
        };
        let mut change = None;
        let before = want.clone();
        match step {
            Step::Provision => {}
            Step::Cancel | Step::Pause => {
                let c = self.change(want);
                self.write_desired(id, &c, want).await?;
                change = Some(c);
            }
            Step::Delete => {
                let c = DesiredChange {
                    delete: true,
                    status: Some(DatabaseStatus::Deleting),
                    ..Default::default()
                };
                self.write_desired(id, &c, want).await?;
            }
            Step::Change => {
                let c = self.change(want);
                self.write_desired(id, &c, want).await?;
                change = Some(c);
            }
        }
        let type_hint = type_hint.or(change.as_ref().map(|c| {
            if c.size.is_some() {
                OperationType::ScaleVertical
            } else if c.replicas.is_some() {
                OperationType::ScaleHorizontal
            } else if c.version.is_some() {
                OperationType::UpdateVersion
            } else if c.auth_rotation.is_some() {
                OperationType::RotateAuth
            } else {
                OperationType::ExpandStorage
            }
        }));
        if role == Role::Worker || matches!(step, Step::Cancel | Step::Pause) {
            // The pass that plans the operation runs clean; the worker crashes.
            self.pass().await?;
        }
        let role = match step {
            Step::Pause => Role::Worker,
            // A cancel races the worker, or a pass settling the operation.
            Step::Cancel if self.rng.random_bool(0.3) => Role::Reconciler,
            Step::Cancel => Role::Worker,
            _ => role,
        };
        let (fired, cancelled) = match step {
            Step::Cancel => self.crash_racing_a_cancel(id, role, type_hint).await?,
            Step::Pause => (self.crash_racing_a_pause(id, type_hint).await?, None),
            _ => (self.crash(role, type_hint).await?, None),
        };
        if let Some(op) = &cancelled {
            // The cancel won: the change is taken back.
            *want = before.clone();
            let requests = self.requests_of_operation(op).await?;
            if !requests.is_empty() {
                return Err(format!(
                    "operation {op} was cancelled, yet OpsRequests {requests:?} exist"
                ));
            }
        }
        // Sometimes desired state changes again right after the crash: an
        // operation planned by the dead role must then be superseded.
        if step == Step::Change
            && self
                .rng
                .random_bool(if role == Role::Reconciler { 0.5 } else { 0.25 })
        {
            let c = self.change(want);
            self.write_desired(id, &c, want).await?;
        }
        self.tally.trials += 1;
        if let Some(point) = &fired {
            self.tally.faults += 1;
            *self
                .tally
                .points
                .entry(format!("{role:?} {point}").to_lowercase())
                .or_default() += 1;
        }
        let at = fired.as_deref().unwrap_or("no crash (the run ended first)");
        let mut db = self
            .settle(id, step)
            .await
            .map_err(|e| format!("after a {role:?} crash at {at}: {e}"))?;
        if step == Step::Pause {
            if !self.halted(&db).await? {
                return Err(format!(
                    "after a {role:?} crash at {at}: paused, but the CR is not halted"
                ));
            }
            let resume = DesiredChange {
                paused: Some(false),
                ..Default::default()
            };
            self.write_desired(id, &resume, want).await?;
            db = self
                .settle(id, Step::Change)
                .await
                .map_err(|e| format!("resuming after a {role:?} crash at {at}: {e}"))?;
        }
        if let Some(op) = &cancelled {
            let requests = self.requests_of_operation(op).await?;
            if !requests.is_empty() {
                return Err(format!(
                    "after a {role:?} crash at {at}: the cancelled operation {op} got OpsRequests {requests:?}"
                ));
            }
        }
        self.tally.converged += 1;
        let written = (
            want.size,
            want.replicas,
            want.storage_gb,
            want.version.as_str(),
            want.auth_rotation,
        );
        let stored = (
            db.size,
            db.replicas,
            db.storage_gb,
            db.version.as_str(),
            db.auth_rotation,
        );
        if step != Step::Delete && stored != written {
            self.tally.lost += 1;
            return Err(format!(
                "after a {role:?} crash at {at}: desired state {stored:?} is not what was written: {want:?}"
            ));
        }
        let (dup, found) = self.duplicates(id).await?;
        self.tally.duplicates += dup;
        if !found.is_empty() {
            return Err(format!(
                "after a {role:?} crash at {at}: {}",
                found.join("; ")
            ));
        }
        if step == Step::Delete {
            let cr = self
                .real
                .cluster
                .get(
                    &Kind::database(self.engine),
                    &self.roles.reconciler.namespace,
                    &naming::cr_name(&db.name, &db.id),
                )
                .await
                .map_err(|e| e.to_string())?;
            if cr.is_some() {
                return Err(format!(
                    "after a {role:?} crash at {at}: the database is deleted but its CR remains"
                ));
            }
        }
        Ok(())
    }

    async fn run(mut self, trials: u64, tenant: &str) -> Tally {
        let now = Utc::now();
        let id = new_database_id();
        let mut want = Want {
            size: Size::Small,
            replicas: 1,
            storage_gb: 10 + self.n as u32,
            // The oldest usable version: room to upgrade.
            version: Catalog::new(self.engine, catalog::entries())
                .versions()
                .iter()
                .find(|v| !v.deprecated)
                .map(|v| v.name.clone())
                .expect("a usable version"),
            auth_rotation: 0,
        };
        let db = Database {
            id: id.clone(),
            version: want.version.clone(),
            ..Database::declared(
                tenant,
                format!("lane{}", self.n),
                self.engine,
                want.size,
                want.replicas,
                want.storage_gb,
                now,
            )
        };
        if let Err(e) = self.real.store.insert_database(&db, &[]).await {
            self.tally
                .failures
                .push(format!("lane {}: inserting the database: {e}", self.n));
            return self.tally;
        }
        for t in 0..trials {
            let step = if t == 0 {
                Step::Provision
            } else if t + 1 == trials && trials > 2 {
                Step::Delete
            } else {
                match self.rng.random_range(0..6) {
                    0 => Step::Cancel,
                    1 => Step::Pause,
                    _ => Step::Change,
                }
            };
            if let Err(e) = self.trial(&id, step, &mut want).await {
                self.tally.failures.push(format!(
                    "lane {} ({}) trial {t} ({step:?}): {e}",
                    self.n,
                    self.engine.as_str()
                ));
                break;
            }
        }
        self.tally
    }
}

/// The API over `store`, with a key of tenant `tenant_id` recorded there.
async fn lane_api(store: &Arc<dyn Store>, tenant_id: &str, key: &str) -> axum::Router {
    store
        .insert_tenant(&Tenant {
            id: tenant_id.to_string(),
            name: tenant_id.to_string(),
            created_at: Utc::now(),
        })
        .await
        .expect("insert the tenant");
    store
        .insert_api_key(&ApiKeyRecord {
            key_hash: hash_api_key(key),
            prefix: key[..8].to_string(),
            tenant_id: tenant_id.to_string(),
            created_at: Utc::now(),
        })
        .await
        .expect("insert the API key");
    dbaas_rest::router(AppState::new(store.clone(), None, Limits::default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_trials_in_process() {
    let trials = count("DBAAS_FAULT_TRIALS", 24);
    let seed = seed();
    let started = Instant::now();
    let (mongodb_uri, redis_url) = (rig_var("MONGODB_URI"), rig_var("REDIS_URL"));
    let kubeconfig = std::path::PathBuf::from(rig_var("KUBECONFIG"));
    let cluster: Arc<dyn Cluster> = Arc::new(
        KubeCluster::from_kubeconfig(Some(&kubeconfig))
            .await
            .expect("the rig's kubeconfig"),
    );
    catalog::install(&*cluster)
        .await
        .expect("install the version catalog");
    let run_id = random_token(6);
    let namespace = format!("faults-crash-{run_id}");
    cluster
        .ensure_namespace(&namespace)
        .await
        .expect("create the test namespace on the rig");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let standin = Standin::new(
        cluster.clone(),
        StandinConfig {
            provision_delay: Duration::from_millis(100),
            phase_delay: Duration::from_millis(50),
            failure_ratio: 0.0,
            namespaces: vec![namespace.clone()],
            seed,
        },
    );
    let standin_task = tokio::spawn(async move {
        standin
            .run(Duration::from_millis(100), async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await;
    });

    let per_lane = trials.div_ceil(LANES).max(1);
    let tenant_id = format!("tn-faults{run_id}");
    let mut lanes = Vec::new();
    let mut cleanup = Vec::new();
    for n in 0..LANES {
        let database = format!("faults_crash_{run_id}_{n}");
        let prefix = format!("faults:{namespace}:{n}");
        cleanup.push((database.clone(), prefix.clone()));
        let store: Arc<dyn Store> = Arc::new(
            MongoStore::new(&mongodb_uri, &database)
                .await
                .expect("mongodb uri"),
        );
        let queue: Arc<dyn Queue> =
            Arc::new(RedisQueue::new(&redis_url, &prefix).expect("redis url"));
        let real = Parts {
            store,
            queue,
            cluster: cluster.clone(),
        };
        let faulty = Faulty::new(&real);
        let mut roles = Loop::new(faulty.parts, &namespace, "");
        roles.reconciler.lease_name = format!("faults-lane-{n}");
        roles.reconciler.lease_ttl = Duration::from_secs(1);
        roles.reconciler.max_attempts = 5;
        roles.worker = outage_worker_config(&namespace);
        let api_key = new_api_key();
        let api = lane_api(&real.store, &tenant_id, &api_key).await;
        lanes.push(Lane {
            api,
            api_key,
            n,
            engine: Engine::ALL[(n as usize + seed as usize) % Engine::ALL.len()],
            real,
            roles,
            inj: faulty.inj,
            rng: StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(n)),
            worker_traces: HashMap::new(),
            pass_trace: Vec::new(),
            passes: 0,
            tally: Tally::default(),
        });
    }
    let tenant = tenant_id.clone();
    let handles: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let t = tenant.clone();
            tokio::spawn(async move { lane.run(per_lane, &t).await })
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        let t = h.await.expect("a lane panicked");
        total.trials += t.trials;
        total.faults += t.faults;
        total.converged += t.converged;
        total.duplicates += t.duplicates;
        total.lost += t.lost;
        total.cancels_won += t.cancels_won;
        total.cancels_refused += t.cancels_refused;
        total.pauses += t.pauses;
        for (k, v) in t.points {
            *total.points.entry(k).or_default() += v;
        }
        total.failures.extend(t.failures);
    }
    let _ = stop_tx.send(true);
    let _ = standin_task.await;

    let mut summary = Summary::new("crash_points_in_process");
    summary.trials = total.trials;
    summary.faults = total.faults;
    summary.converged = total.converged;
    summary.duplicate_ops = total.duplicates;
    summary.lost_writes = total.lost;
    let distinct = total.points.len();
    summary.extra = format!(
        "crash_points_hit={distinct} cancels_won={} cancels_refused={} pauses={} seed={seed} secs={}",
        total.cancels_won,
        total.cancels_refused,
        total.pauses,
        started.elapsed().as_secs()
    );
    summary.print();
    for (point, n) in &total.points {
        eprintln!("  {n:4}  {point}");
    }
    assert!(
        total.failures.is_empty(),
        "{} lane(s) failed (seed {seed}):\n{}",
        total.failures.len(),
        total.failures.join("\n")
    );
    assert!(
        total.trials >= trials,
        "ran {} trials of {trials}",
        total.trials
    );
    assert!(
        total.faults * 2 >= total.trials,
        "too few crashes landed: {} of {} trials",
        total.faults,
        total.trials
    );
    for (database, prefix) in cleanup {
        drop_mongo_database(&mongodb_uri, &database).await;
        drop_redis_prefix(&redis_url, &prefix).await;
    }
}

/// Where a process trial kills the worker, judged from outside.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// The id is in the processing list.
    Dequeued,
    /// The operation is `running`.
    Claimed,
    /// The OpsRequest exists.
    Created,
    /// The OpsRequest is `Progressing` (the worker follows it).
    Following,
    /// The OpsRequest is `Successful`: the worker may not have recorded it.
    Succeeded,
    /// A random moment in the first 1.5 s.
    Random,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_worker_processes() {
    use dbaas_e2e::{TestEnv, new_database, s};
    let trials = count("DBAAS_FAULT_PROCESS_TRIALS", 3);
    let seed = seed();
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut env = TestEnv::start("sigkill").await;
    env.settings
        .insert("DBAAS_CLAIM_TTL_SECONDS".into(), "1".into());
    env.settings
        .insert("DBAAS_PROCESSING_DEADLINE_SECONDS".into(), "0".into());
    // An old version, so that upgrades have somewhere to go.
    let mut body = new_database("killed", "postgres", "db.t3.small", 1, 10);
    body["version"] = Value::from("14.13");
    let db = env.create_ready(body).await;
    let id = s(&db, "id").to_string();
    let points = [
        KillAt::Dequeued,
        KillAt::Claimed,
        KillAt::Created,
        KillAt::Following,
        KillAt::Succeeded,
        KillAt::Random,
    ];
    let mut want = (Value::from("db.t3.small"), Value::from(1), Value::from(10));
    let mut rotations = 0_u64;
    let mut version = Value::from("14.13");
    let mut summary = Summary::new("crash_points_sigkill");
    let mut hits: BTreeMap<String, u64> = BTreeMap::new();
    for t in 0..trials {
        let point = points[(t as usize + seed as usize) % points.len()];
        let upgrade = env
            .api
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/databases/{id}/upgrades"),
                env.api.key(),
                None,
            )
            .await
            .1["items"][0]["name"]
            .clone();
        let patch = match rng.random_range(0..5) {
            3 if upgrade.is_string() => {
                version = upgrade.clone();
                Some(serde_json::json!({"version": upgrade}))
            }
            0 => {
                let size = Size::ALL
                    .iter()
                    .map(|z| z.as_str())
                    .filter(|z| want.0 != *z)
                    .nth(rng.random_range(0..5))
                    .expect("a size");
                want.0 = Value::from(size);
                Some(serde_json::json!({"size": size}))
            }
            1 => {
                let r = if want.1 == 1 { 3 } else { 1 };
                want.1 = Value::from(r);
                Some(serde_json::json!({"replicas": r}))
            }
            2 => {
                rotations += 1;
                None
            }
            _ => {
                let g = want.2.as_u64().unwrap_or(10) + rng.random_range(1..=10);
                want.2 = Value::from(g);
                Some(serde_json::json!({"storage_gb": g}))
            }
        };
        match patch {
            Some(patch) => {
                env.api.patch_database(&id, &patch).await;
            }
            None => {
                env.api.rotate_credentials(&id).await;
            }
        }
        env.reconcile().await;
        let pending = env.pending().await;
        assert_eq!(
            pending.len(),
            1,
            "trial {t}: one operation queued: {pending:?}"
        );
        let op_id = pending[0].clone();
        let mut worker = env.spawn_worker(&[]);
        let kind = Kind::ops_request(Engine::Postgres);
        let random_delay = Duration::from_millis(rng.random_range(0..1500));
        let t0 = Instant::now();
        let reached = loop {
            if let Ok(Some(_)) = worker.child.try_wait() {
                break false;
            }
            let request_phase = || async {
                env.cluster
                    .get(&kind, &env.namespace, &format!("{op_id}-1"))
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r["status"]["phase"].as_str().unwrap_or("").to_string())
            };
            let now = match point {
                KillAt::Dequeued => env.processing().await.contains(&op_id),
                KillAt::Claimed => env.api.operation(&op_id).await["status"] == "running",
                KillAt::Created => request_phase().await.is_some(),
                KillAt::Following => request_phase().await.is_some_and(|p| p == "Progressing"),
                KillAt::Succeeded => request_phase().await.is_some_and(|p| p == "Successful"),
                KillAt::Random => t0.elapsed() >= random_delay,
            };
            if now {
                break true;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "trial {t}: {point:?} not reached in 60 s (logs in {})",
                env.procs.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        summary.trials += 1;
        if reached && worker.child.try_wait().ok().flatten().is_none() {
            worker.kill9().await;
            summary.faults += 1;
            *hits.entry(format!("{point:?}")).or_default() += 1;
        } else {
            let (status, log) = worker.wait(Duration::from_secs(60)).await;
            assert!(
                status.success(),
                "trial {t}: the worker failed: {}",
                dbaas_e2e::log_tail(&log)
            );
        }
        // Converged: desired as written and current equal to it, ready,
        // nothing queued, no operation open.
        let want_now = want.clone();
        let rotations_now = Value::from(rotations);
        let version_now = version.clone();
        env.converge(
            &format!("trial {t} after a kill at {point:?}"),
            30,
            async |env| {
                let d = env.api.get_database(&id).await;
                let desired = (
                    d["size"].clone(),
                    d["replicas"].clone(),
                    d["storage_gb"].clone(),
                );
                let current = (
                    d["current_size"].clone(),
                    d["current_replicas"].clone(),
                    d["current_storage_gb"].clone(),
                );
                let ops = env.api.operations(&id).await;
                let open = ops.iter().any(|o| {
                    !["succeeded", "superseded", "cancelled"]
                        .contains(&o["status"].as_str().unwrap_or(""))
                });
                let quiet = env.pending().await.is_empty() && env.processing().await.is_empty();
                (desired == want_now
                    && current == want_now
                    && d["auth_rotation"] == rotations_now
                    && d["version"] == version_now
                    && d["current_version"] == version_now
                    && d["current_auth_rotation"] == rotations_now
                    && d["status"] == "ready"
                    && !open
                    && quiet)
                    .then_some(())
            },
        )
        .await;
        summary.converged += 1;
        // One OpsRequest per (operation, attempt), none for an unknown one,
        // and no two operations for one change.
        let ops = env.api.operations(&id).await;
        let requests = env.ops_requests_of(&db).await;
        let mut owners: HashMap<String, Vec<String>> = HashMap::new();
        for r in &requests {
            let name = dbaas_e2e::name(r).to_string();
            let owner = name.rsplit_once('-').and_then(|(op, n)| {
                let op = ops.iter().find(|o| o["id"] == op)?;
                let n: u64 = n.parse().ok()?;
                (n >= 1 && n <= op["attempts"].as_u64()?).then_some(op)
            });
            match owner {
                Some(op) => owners
                    .entry(format!(
                        "{}/{}/{}",
                        op["type"], op["target_generation"], op["desired_state"]
                    ))
                    .or_default()
                    .push(s(op, "id").to_string()),
                None => {
                    summary.duplicate_ops += 1;
                    panic!("trial {t}: OpsRequest {name} belongs to no operation attempt: {ops:?}");
                }
            }
        }
        for (change, mut ids) in owners {
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                1,
                "trial {t}: change {change} has OpsRequests of several operations: {ids:?}"
            );
        }
    }
    summary.extra = format!(
        "points={hits:?} seed={seed} secs={}",
        started.elapsed().as_secs()
    );
    summary.print();
    env.finish().await;
}
