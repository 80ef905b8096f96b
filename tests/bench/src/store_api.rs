//! The API on the rig's store (issue 17): `dbaas-api` on FerretDB at 1, 16
//! and 64 clients for GET by id, PATCH and the first page of the list,
//! each beside the store's own floor: the same store calls made straight
//! through the driver (`MongoStore`, as the API makes them) at the same
//! concurrency, with the same closed-loop generator. After each API PATCH
//! run and at the end, the `locks` collection is counted: a write lock
//! left behind would stall that record's next writer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{SubsecRound, Utc};
use dbaas_core::domain::{Database, Event, EventType, Size};
use dbaas_core::engine::Engine;
use dbaas_store::mongo::MongoStore;
use dbaas_store::{DatabaseQuery, DesiredChange, Store, WriteLocks};
use reqwest::header::{ETAG, RETRY_AFTER};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::Ctx;
use crate::api::{self, Backend, Footprint};
use crate::closed::{self, Outcome, Run, Status, StatusStat};
use crate::util::{Spread, loadavg, proc_kb};

/// The API's page size when `limit` is not given, and the page asked for.
const PAGE: usize = 50;
/// Concurrent inserts while seeding.
const SEED_CONCURRENCY: usize = 16;
/// The API key named in the floor's history events.
const FLOOR_KEY: &str = "bench-floor";
/// The API's request deadline (DBAAS_REQUEST_TIMEOUT_MS), which the floor's
/// calls get too: past it they count as timeouts, as the API's are 504s.
const DEADLINE: Duration = Duration::from_secs(5);
/// Longest wait for the store to be idle again before a run.
const SETTLE_MAX: Duration = Duration::from_secs(60);

pub struct Settings {
    pub databases: usize,
    pub clients: Vec<usize>,
    pub seconds: f64,
    pub repeats: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `GET /api/v1/databases/{id}`; the floor: `get_database`.
    Get,
    /// `PATCH /api/v1/databases/{id}` with a size the database does not
    /// have; the floor: `get_database`, then `update_desired` with the
    /// generation read, the new size and its history event.
    Patch,
    /// `GET /api/v1/databases?limit=50`; the floor: `list_databases` with
    /// the API's query (the tenant, not deleted, 51 by id).
    List,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Get, Op::Patch, Op::List];

    pub fn label(self) -> &'static str {
        match self {
            Op::Get => "GET by id",
            Op::Patch => "PATCH (a real change)",
            Op::List => "list, first page of 50",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Patch => "PATCH",
            Op::List => "LIST",
        }
    }
}

/// Lock records in the store's `locks` collection.
#[derive(Debug, Clone, Serialize)]
pub struct LockCount {
    pub locks: u64,
    /// Of them, past their lease (a holder that never released).
    pub expired: u64,
    /// The records they lock (at most 5).
    pub keys: Vec<String>,
}

/// The runs of one side (the API or the floor) of one row.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub runs: Vec<Run>,
    pub requests: u64,
    pub rps: Spread,
    pub p50_ms: Spread,
    pub p95_ms: Spread,
    pub p99_ms: Spread,
    /// Over every run; per-status latencies are the median of the runs'.
    pub statuses: Vec<StatusStat>,
    /// Share of requests answered with success (2xx, or a driver call
    /// that did what it was asked).
    pub success_share: f64,
    /// Writes answered with success that changed the record, and that did
    /// not (0 for reads).
    pub changed: u64,
    pub unchanged: u64,
}

impl Measured {
    fn of(runs: Vec<Run>) -> Measured {
        let s = |g: fn(&Run) -> f64| Spread::of(&runs.iter().map(g).collect::<Vec<_>>());
        let statuses = closed::merge_statuses(&runs);
        Measured {
            requests: runs.iter().map(|r| r.requests).sum(),
            rps: s(|r| r.rps),
            p50_ms: s(|r| r.p50_ms),
            p95_ms: s(|r| r.p95_ms),
            p99_ms: s(|r| r.p99_ms),
            success_share: closed::share_of(&statuses, Status::success),
            changed: runs.iter().map(|r| r.changed).sum(),
            unchanged: runs.iter().map(|r| r.unchanged).sum(),
            statuses,
            runs,
        }
    }

    /// `200 98.1%, 503 1.9% (p99 104 ms, Retry-After 100%)`.
    pub fn show_statuses(&self) -> String {
        self.statuses
            .iter()
            .map(|s| {
                let mut t = format!("{} {}", s.status, pct(s.share));
                match closed::parse_label(&s.status) {
                    // Whether an HTTP failure came fast and said when to retry.
                    Status::Http(_) if !closed::parse_label(&s.status).success() => {
                        t += &format!(
                            " (p99 {:.0} ms, Retry-After {})",
                            s.p99_ms,
                            pct(s.retry_after as f64 / s.count.max(1) as f64)
                        );
                    }
                    st if !st.success() => t += &format!(" (p99 {:.0} ms)", s.p99_ms),
                    _ => {}
                }
                t
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Requests per second, with a decimal below 10.
pub fn show_rps(rps: &Spread) -> String {
    rps.show(if rps.median < 10.0 { 1 } else { 0 })
}

/// A share as a percentage with enough digits to tell 0 from a few.
pub fn pct(share: f64) -> String {
    if share > 0.0 && share < 0.001 {
        format!("{:.3}%", share * 100.0)
    } else {
        format!("{:.1}%", share * 100.0)
    }
}

/// One operation at one concurrency: the API and its floor.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub op: Op,
    pub clients: usize,
    pub api: Measured,
    pub floor: Measured,
    /// API req/s over the floor's (medians).
    pub rps_ratio: f64,
    /// API p50 and p99 over the floor's (medians).
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// Locks left a moment after the last API run of this row (PATCH only).
    pub locks_after: Option<LockCount>,
    /// Seconds spent before this row's runs waiting for the store to be
    /// idle (see `settle`).
    pub settle_s: f64,
    pub load: [f64; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreApiResult {
    pub databases: usize,
    /// A read by id on the idle store (median of 20), and the latency under
    /// which the store counts as idle again between runs.
    pub idle_get_ms: f64,
    pub idle_threshold_ms: f64,
    /// Inserting the databases straight into the store (not timed in rows).
    pub seed_s: f64,
    pub seconds: f64,
    pub repeats: usize,
    pub rows: Vec<Row>,
    /// Locks left at the end of the section, after every run.
    pub locks_final: LockCount,
    /// How the API was configured.
    pub api_settings: String,
}

pub struct Results {
    pub result: StoreApiResult,
    pub footprint: Footprint,
}

/// What the load knows of one database: the size it has (as last
/// confirmed) with its generation, and the sizes sent since without a
/// success answer (they may or may not have been applied).
struct Tracked {
    id: String,
    state: Mutex<SizeState>,
}

struct SizeState {
    size: Size,
    generation: u64,
    maybe: Vec<Size>,
}

impl SizeState {
    /// A size the database has not got, whatever happened to the writes
    /// not answered with success; it joins those until an answer comes.
    fn next(&mut self, not: Option<Size>) -> Size {
        let pick = Size::ALL
            .into_iter()
            .find(|s| *s != self.size && Some(*s) != not && !self.maybe.contains(s))
            .or_else(|| {
                Size::ALL
                    .into_iter()
                    .find(|s| *s != self.size && Some(*s) != not)
            })
            .expect("six sizes");
        self.maybe.push(pick);
        pick
    }

    /// A success answer: the database now has `size` at `generation`;
    /// whether that was a change.
    fn confirmed(&mut self, size: Size, generation: u64) -> bool {
        let changed = generation > self.generation;
        if generation >= self.generation {
            self.size = size;
            self.generation = generation;
        }
        self.maybe.clear();
        changed
    }
}

/// The databases of the load. Client `c` of `clients` takes those at
/// `c, c + clients, c + 2·clients, …` in turn, so no two clients write one
/// database and each request of a client goes to another database than
/// its previous one.
struct Targets {
    dbs: Vec<Tracked>,
}

impl Targets {
    fn pick(&self, client: usize, clients: usize, n: u64) -> &Tracked {
        let len = (self.dbs.len() - client).div_ceil(clients);
        &self.dbs[client + (n as usize % len) * clients]
    }
}

/// Inserts `n` databases of `tenant_id` straight into the store, as the
/// API would have created them (a `created` event in the outbox each).
async fn seed(store: &MongoStore, tenant_id: &str, n: usize) -> anyhow::Result<Vec<Tracked>> {
    let now = Utc::now().trunc_subsecs(3);
    let dbs: Vec<Database> = (0..n)
        .map(|i| {
            Database::declared(
                tenant_id,
                format!("api{i}"),
                Engine::Postgres,
                Size::Small,
                1,
                10,
                now,
            )
        })
        .collect();
    let mut tasks = JoinSet::new();
    for db in &dbs {
        if tasks.len() >= SEED_CONCURRENCY {
            tasks.join_next().await.expect("a task")??;
        }
        let (store, db) = (store.clone(), db.clone());
        tasks.spawn(async move {
            let created = Event::new(
                &db,
                EventType::Created,
                Some(FLOOR_KEY),
                format!("declared by the benchmark (API key {FLOOR_KEY})"),
                now,
            );
            store
                .insert_database(&db, &[created])
                .await
                .map_err(anyhow::Error::from)
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(dbs
        .into_iter()
        .map(|db| Tracked {
            id: db.id,
            state: Mutex::new(SizeState {
                size: db.size,
                generation: db.generation,
                maybe: Vec::new(),
            }),
        })
        .collect())
}

/// The lock records of the store, and how many are past their lease.
async fn count_locks(store: &MongoStore) -> anyhow::Result<LockCount> {
    use futures::TryStreamExt;
    let locks = store.database().collection::<Value>("locks");
    let docs: Vec<Value> = locks
        .find(serde_json::from_value(json!({}))?)
        .await?
        .try_collect()
        .await?;
    let now = Utc::now().timestamp_millis();
    let expired = docs
        .iter()
        .filter(|d| millis(&d["expires_at"]).is_some_and(|t| t < now))
        .count() as u64;
    Ok(LockCount {
        locks: docs.len() as u64,
        expired,
        keys: docs
            .iter()
            .take(5)
            .map(|d| d["_id"].as_str().unwrap_or("?").to_string())
            .collect(),
    })
}

/// Milliseconds since the epoch of a BSON date read as JSON (extended JSON
/// `{"$date": {"$numberLong": "…"}}`, `{"$date": n}` or `{"$date": "<RFC 3339>"}`).
fn millis(v: &Value) -> Option<i64> {
    let d = v.get("$date").unwrap_or(v);
    if let Some(n) = d.get("$numberLong").and_then(Value::as_str) {
        return n.parse().ok();
    }
    if let Some(n) = d.as_i64() {
        return Some(n);
    }
    d.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
}

/// The API's side: HTTP requests on `base` with `key`.
#[derive(Clone)]
struct ApiSide {
    http: reqwest::Client,
    base: String,
    key: String,
    targets: Arc<Targets>,
}

impl ApiSide {
    async fn request(&self, op: Op, client: usize, clients: usize, n: u64) -> Outcome {
        let db = self.targets.pick(client, clients, n);
        let (req, sent) = match op {
            Op::Get => (
                self.http
                    .get(format!("{}/api/v1/databases/{}", self.base, db.id)),
                None,
            ),
            Op::List => (
                self.http
                    .get(format!("{}/api/v1/databases?limit={PAGE}", self.base)),
                None,
            ),
            Op::Patch => {
                let size = db.state.lock().expect("not poisoned").next(None);
                (
                    self.http
                        .patch(format!("{}/api/v1/databases/{}", self.base, db.id))
                        .json(&json!({ "size": size })),
                    Some(size),
                )
            }
        };
        let resp = match req.bearer_auth(&self.key).send().await {
            Ok(r) => r,
            Err(_) => return Outcome::of(Status::NoResponse),
        };
        let status = resp.status();
        let retry_after = resp.headers().contains_key(RETRY_AFTER);
        // The ETag is `"g<generation>"`.
        let generation = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').strip_prefix('g')?.parse::<u64>().ok());
        // The whole answer, as a client reads it.
        if resp.bytes().await.is_err() {
            return Outcome::of(Status::NoResponse);
        }
        let changed = match (sent, status.is_success(), generation) {
            (Some(size), true, Some(g)) => {
                Some(db.state.lock().expect("not poisoned").confirmed(size, g))
            }
            (Some(_), true, None) => Some(false),
            _ => None,
        };
        Outcome {
            status: Status::Http(status.as_u16()),
            retry_after,
            changed,
        }
    }
}

/// The floor's side: the API's store calls through the driver.
#[derive(Clone)]
struct FloorSide {
    store: MongoStore,
    tenant_id: String,
    targets: Arc<Targets>,
}

impl FloorSide {
    /// One request within the API's deadline.
    async fn request(&self, op: Op, client: usize, clients: usize, n: u64) -> Outcome {
        tokio::time::timeout(DEADLINE, self.call(op, client, clients, n))
            .await
            .unwrap_or(Outcome::of(Status::Timeout))
    }

    async fn call(&self, op: Op, client: usize, clients: usize, n: u64) -> Outcome {
        let db = self.targets.pick(client, clients, n);
        let status = match op {
            Op::Get => match self.store.get_database(&db.id).await {
                Ok(Some(_)) => Status::Ok,
                Ok(None) => Status::Missing,
                Err(_) => Status::Error,
            },
            Op::List => {
                // As `list` in shared/rest/src/databases.rs builds it.
                let query = DatabaseQuery {
                    tenant_id: Some(self.tenant_id.clone()),
                    exclude_deleted: true,
                    limit: Some(PAGE + 1),
                    ..Default::default()
                };
                match self.store.list_databases(&query).await {
                    Ok(_) => Status::Ok,
                    Err(_) => Status::Error,
                }
            }
            Op::Patch => return self.patch(db).await,
        };
        Outcome::of(status)
    }

    /// The PATCH handler's store calls: read, then a compare-and-set on the
    /// generation read, with the history event the API writes.
    async fn patch(&self, db: &Tracked) -> Outcome {
        let current = match self.store.get_database(&db.id).await {
            Ok(Some(d)) => d,
            Ok(None) => return Outcome::of(Status::Missing),
            Err(_) => return Outcome::of(Status::Error),
        };
        let size = db
            .state
            .lock()
            .expect("not poisoned")
            .next(Some(current.size));
        let change = DesiredChange {
            size: Some(size),
            events: vec![Event::new(
                &current,
                EventType::DesiredChanged,
                Some(FLOOR_KEY),
                format!("size: {} → {size} (API key {FLOOR_KEY})", current.size),
                Utc::now().trunc_subsecs(3),
            )],
            ..Default::default()
        };
        match self
            .store
            .update_desired(&db.id, current.generation, &change)
            .await
        {
            Ok(Some(updated)) => {
                db.state
                    .lock()
                    .expect("not poisoned")
                    .confirmed(size, updated.generation);
                Outcome {
                    status: Status::Ok,
                    retry_after: false,
                    changed: Some(updated.generation > current.generation),
                }
            }
            Ok(None) => Outcome::of(Status::Conflict),
            Err(_) => Outcome::of(Status::Error),
        }
    }
}

/// The latency of one read by id, in ms (a failed read counts as slow).
async fn probe(store: &MongoStore, id: &str) -> f64 {
    let t = Instant::now();
    match store.get_database(id).await {
        Ok(_) => t.elapsed().as_secs_f64() * 1000.0,
        Err(_) => f64::INFINITY,
    }
}

/// Waits until the store is idle again: five reads by id in a row, 50 ms
/// apart, each within `threshold_ms`. Requests a run abandoned at its
/// deadline (the API's 504s, the floor's timeouts) may still keep the
/// store busy, and must not slow the next run. The seconds waited.
async fn settle(store: &MongoStore, id: &str, threshold_ms: f64) -> f64 {
    let started = Instant::now();
    let mut good = 0;
    while good < 5 && started.elapsed() < SETTLE_MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if probe(store, id).await <= threshold_ms {
            good += 1;
        } else {
            good = 0;
        }
    }
    started.elapsed().as_secs_f64()
}

async fn api_run(side: &ApiSide, op: Op, clients: usize, seconds: f64) -> Run {
    let side = side.clone();
    closed::run(clients, Duration::from_secs_f64(seconds), move |c, n| {
        let side = side.clone();
        async move { side.request(op, c, clients, n).await }
    })
    .await
}

async fn floor_run(side: &FloorSide, op: Op, clients: usize, seconds: f64) -> Run {
    let side = side.clone();
    closed::run(clients, Duration::from_secs_f64(seconds), move |c, n| {
        let side = side.clone();
        async move { side.request(op, c, clients, n).await }
    })
    .await
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn line(side: &str, op: Op, clients: usize, m: &Measured) -> String {
    let mut s = format!(
        "    {side:5} {:5} c={clients:<3} p50 {} p99 {} ms, {} req/s, {}",
        op.short(),
        m.p50_ms.show(2),
        m.p99_ms.show(2),
        show_rps(&m.rps),
        m.show_statuses()
    );
    if op == Op::Patch {
        s += &format!(", {} changed, {} unchanged", m.changed, m.unchanged);
    }
    s
}

pub async fn run(ctx: &Ctx, settings: &Settings) -> anyhow::Result<Results> {
    let most = settings.clients.iter().copied().max().unwrap_or(1);
    if settings.databases < 2 * most.max(PAGE) {
        bail!(
            "{} databases are too few for {most} clients (each client writes its own databases in turn: at least {})",
            settings.databases,
            2 * most.max(PAGE)
        );
    }
    let server = api::start(ctx, Backend::Ferretdb).await?;
    let db_name = server
        .mongodb_database
        .clone()
        .context("a store database")?;
    // The floor locks records as the API does: the API reads the same
    // setting from the environment it inherits.
    let locks = std::env::var("DBAAS_MONGODB_WRITE_LOCKS").unwrap_or_else(|_| "auto".into());
    let mode = <WriteLocks as clap::ValueEnum>::from_str(&locks, true)
        .map_err(|e| anyhow::anyhow!("DBAAS_MONGODB_WRITE_LOCKS: {e}"))?;
    let store = MongoStore::new(&ctx.rig.mongodb_uri, &db_name)
        .await?
        .with_write_locks(mode);
    let result = async {
        println!(
            "  seeding {} databases in {db_name} ...",
            settings.databases
        );
        let started = Instant::now();
        let dbs = seed(&store, &server.tenant_id, settings.databases).await?;
        let seed_s = started.elapsed().as_secs_f64();
        println!("  seeded in {seed_s:.1} s");
        let targets = Arc::new(Targets { dbs });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = format!("http://127.0.0.1:{}", server.port);
        let api = ApiSide {
            http: http.clone(),
            base: base.clone(),
            key: server.key.clone(),
            targets: targets.clone(),
        };
        let floor = FloorSide {
            store: store.clone(),
            tenant_id: server.tenant_id.clone(),
            targets,
        };

        // The list must answer a full first page of this tenant's databases.
        let page: Value = http
            .get(format!("{base}/api/v1/databases?limit={PAGE}"))
            .bearer_auth(&server.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let items = page["items"].as_array().map_or(0, Vec::len);
        if items != PAGE {
            bail!("the first page has {items} databases, not {PAGE}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rest = proc_kb(server.proc.pid, "VmRSS").unwrap_or(0);
        // What an idle store answers a read by id in; "idle" is within 4×.
        let probe_id = api.targets.dbs[0].id.clone();
        let mut idle = Vec::new();
        for _ in 0..20 {
            idle.push(probe(&store, &probe_id).await);
        }
        let idle_ms = Spread::of(&idle).median;
        let threshold_ms = (4.0 * idle_ms).max(10.0);
        // Warm-up, not counted: it must be answered 200.
        let warm = api_run(&api, Op::Get, 16.min(most), 1.0).await;
        if warm.success_share() < 0.9 {
            bail!(
                "the warm-up got {:?}; see {}",
                warm.statuses,
                server.proc.log.display()
            );
        }
        floor_run(&floor, Op::Get, 16.min(most), 1.0).await;

        let mut rows = Vec::new();
        for op in Op::ALL {
            for &clients in &settings.clients {
                let load = loadavg();
                let (mut a, mut f) = (Vec::new(), Vec::new());
                let mut locks_after = None;
                let mut settle_s = 0.0;
                // The API and the floor in turn, so both see the machine alike.
                for _ in 0..settings.repeats {
                    settle_s += settle(&store, &probe_id, threshold_ms).await;
                    a.push(api_run(&api, op, clients, settings.seconds).await);
                    if op == Op::Patch {
                        // In-flight writes have been answered; a lock
                        // released on cancellation goes in the background.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let count = count_locks(&store).await?;
                        if count.locks > 0 {
                            eprintln!(
                                "  note: {} lock record(s) ({} expired) after the API's PATCH run at {clients} clients: {:?}",
                                count.locks, count.expired, count.keys
                            );
                        }
                        if locks_after
                            .as_ref()
                            .is_none_or(|l: &LockCount| count.locks >= l.locks)
                        {
                            locks_after = Some(count);
                        }
                    }
                    settle_s += settle(&store, &probe_id, threshold_ms).await;
                    f.push(floor_run(&floor, op, clients, settings.seconds).await);
                }
                let (api_m, floor_m) = (Measured::of(a), Measured::of(f));
                println!("{}", line("API", op, clients, &api_m));
                println!(
                    "{}  → API/floor req/s {:.2}, p50 {:.1}×",
                    line("floor", op, clients, &floor_m),
                    ratio(api_m.rps.median, floor_m.rps.median),
                    ratio(api_m.p50_ms.median, floor_m.p50_ms.median)
                );
                if settle_s > 5.0 {
                    println!(
                        "    waited {settle_s:.1} s in all for the store to be idle before the runs"
                    );
                }
                if let Some(l) = &locks_after {
                    println!(
                        "    locks after the API's PATCH runs: {} ({} expired)",
                        l.locks, l.expired
                    );
                }
                rows.push(Row {
                    op,
                    clients,
                    rps_ratio: ratio(api_m.rps.median, floor_m.rps.median),
                    p50_ratio: ratio(api_m.p50_ms.median, floor_m.p50_ms.median),
                    p99_ratio: ratio(api_m.p99_ms.median, floor_m.p99_ms.median),
                    api: api_m,
                    floor: floor_m,
                    locks_after,
                    settle_s,
                    load,
                });
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let locks_final = count_locks(&store).await?;
        println!(
            "  lock records left after the run: {} ({} expired){}",
            locks_final.locks,
            locks_final.expired,
            if locks_final.keys.is_empty() {
                String::new()
            } else {
                format!(": {:?}", locks_final.keys)
            }
        );
        let footprint = Footprint {
            backend: Backend::Ferretdb,
            binary: "dbaas-api".into(),
            databases: settings.databases,
            rest_rss_mb: rest as f64 / 1024.0,
            after_load_rss_mb: proc_kb(server.proc.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0,
            peak_rss_mb: proc_kb(server.proc.pid, "VmHWM").unwrap_or(0) as f64 / 1024.0,
        };
        anyhow::Ok(Results {
            result: StoreApiResult {
                databases: settings.databases,
                idle_get_ms: idle_ms,
                idle_threshold_ms: threshold_ms,
                seed_s,
                seconds: settings.seconds,
                repeats: settings.repeats,
                rows,
                locks_final,
                api_settings: format!(
                    "DBAAS_MAX_IN_FLIGHT 64, DBAAS_ADMISSION_WAIT_MS 100, DBAAS_REQUEST_TIMEOUT_MS 5000, \
                     API keys cached 30 s (the defaults); rate limit lifted; DBAAS_MONGODB_WRITE_LOCKS {locks} (API and floor)"
                ),
            },
            footprint,
        })
    }
    .await;
    let _ = server.proc.stop();
    let _ = store.database().drop().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(size: Size) -> SizeState {
        SizeState {
            size,
            generation: 1,
            maybe: Vec::new(),
        }
    }

    #[test]
    fn every_size_sent_is_a_change_even_after_unanswered_writes() {
        let mut s = state(Size::Small);
        let a = s.next(None);
        assert_ne!(a, Size::Small);
        // Unanswered: it may have been applied, so the next one avoids it.
        let b = s.next(None);
        assert!(b != a && b != Size::Small);
        assert!(s.confirmed(b, 3));
        let c = s.next(None);
        assert_ne!(c, b);
        // The same generation again is no change.
        assert!(!s.confirmed(c, 3));
        // The floor also avoids what it read.
        let mut s = state(Size::Small);
        assert!(![Size::Small, Size::Micro].contains(&s.next(Some(Size::Micro))));
    }

    #[test]
    fn clients_take_their_own_databases_in_turn() {
        let t = Targets {
            dbs: (0..10)
                .map(|i| Tracked {
                    id: i.to_string(),
                    state: Mutex::new(state(Size::Small)),
                })
                .collect(),
        };
        let seen: Vec<&str> = (0..5).map(|n| t.pick(1, 4, n).id.as_str()).collect();
        assert_eq!(seen, ["1", "5", "9", "1", "5"]);
        let seen: Vec<&str> = (0..3).map(|n| t.pick(3, 4, n).id.as_str()).collect();
        assert_eq!(seen, ["3", "7", "3"]);
        assert_eq!(t.pick(0, 1, 12).id, "2");
    }

    #[test]
    fn dates_of_lock_records() {
        assert_eq!(
            millis(&json!({"$date": {"$numberLong": "1700000000000"}})),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            millis(&json!({"$date": "2023-11-14T22:13:20Z"})),
            Some(1_700_000_000_000)
        );
        assert_eq!(millis(&json!(null)), None);
    }

    #[test]
    fn statuses_show_latency_and_retry_after_of_failures() {
        let m = Measured::of(vec![Run {
            clients: 1,
            wall_s: 1.0,
            requests: 100,
            rps: 100.0,
            p50_ms: 1.0,
            p95_ms: 1.0,
            p99_ms: 1.0,
            max_ms: 1.0,
            statuses: vec![
                StatusStat {
                    status: "200".into(),
                    count: 98,
                    share: 0.98,
                    p50_ms: 1.0,
                    p99_ms: 2.0,
                    max_ms: 2.0,
                    retry_after: 0,
                },
                StatusStat {
                    status: "503".into(),
                    count: 2,
                    share: 0.02,
                    p50_ms: 100.0,
                    p99_ms: 101.0,
                    max_ms: 101.0,
                    retry_after: 2,
                },
            ],
            changed: 0,
            unchanged: 0,
        }]);
        assert_eq!(
            m.show_statuses(),
            "200 98.0%, 503 2.0% (p99 101 ms, Retry-After 100.0%)"
        );
        assert!((m.success_share - 0.98).abs() < 1e-9);
    }
}
