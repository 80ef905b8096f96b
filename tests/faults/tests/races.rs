//! Races: concurrent PATCHes on one database, with and without If-Match,
//! while writers of observed state (what the reconciler and workers do:
//! `update_observed`, `begin_operation`, `end_operation`) hammer the same
//! record and readers GET it.
//!
//! Every accepted PATCH answers with the generation it produced, so the
//! history can be checked: one desired state per generation, generations
//! without gaps, each one the previous with one accepted patch applied,
//! If-Match honoured, the last accepted value in the record at the end, and
//! the observed writer's last write there too (neither side clobbers the
//! other). Runs on MongoDB (FerretDB, whose updates are not atomic) and on
//! the embedded SQLite store. `DBAAS_RACE_PATCHES` (default 160; `just
//! test-faults` runs 2000) PATCHes per store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_core::domain::{Condition, DatabaseStatus, Size, random_token};
use dbaas_faults::{Summary, count, drop_mongo_database, rig_var, seed, serve_api, tenant_and_key};
use dbaas_store::embedded::SqliteStore;
use dbaas_store::mongo::MongoStore;
use dbaas_store::{ObservedUpdate, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATCHERS: u64 = 8;
const ADMIN: &str = "faults-race-admin-token-0123456789";

type Fields = (String, u64, u64);

fn fields(db: &Value) -> Fields {
    (
        db["size"].as_str().unwrap_or_default().to_string(),
        db["replicas"].as_u64().unwrap_or(0),
        db["storage_gb"].as_u64().unwrap_or(0),
    )
}

fn apply(base: &Fields, patch: &Value) -> Fields {
    (
        patch["size"]
            .as_str()
            .map_or(base.0.clone(), str::to_string),
        patch["replicas"].as_u64().unwrap_or(base.1),
        patch["storage_gb"].as_u64().unwrap_or(base.2),
    )
}

/// One accepted PATCH.
#[derive(Debug, Clone)]
struct Accepted {
    patch: Value,
    if_match: Option<u64>,
    generation: u64,
    fields: Fields,
}

#[derive(Debug, Default)]
struct Outcome {
    accepted: Vec<Accepted>,
    statuses: BTreeMap<u16, u64>,
    reads: Vec<(u64, Fields)>,
    server_errors: Vec<String>,
}

async fn race(store: Arc<dyn Store>, label: &'static str, patches: u64, seed: u64) -> Summary {
    let started = Instant::now();
    let api = serve_api(store.clone(), ADMIN, Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let (_, key) = tenant_and_key(
        &http,
        &api.base,
        ADMIN,
        &format!("race-{}", random_token(6)),
    )
    .await;
    let created: Value = http
        .post(format!("{}/api/v1/databases", api.base))
        .bearer_auth(&key)
        .json(&json!({"name": "contended", "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 10}))
        .send()
        .await
        .expect("POST database")
        .json()
        .await
        .expect("database JSON");
    let id = created["id"].as_str().expect("id").to_string();
    let url = format!("{}/api/v1/databases/{id}", api.base);
    let stop = Arc::new(AtomicBool::new(false));

    // Observed-state writers: current_* and status/conditions, as the
    // reconciler records them, and the active operation, as passes and
    // workers set and clear it.
    let observer = {
        let (store, id, stop) = (store.clone(), id.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0xabc);
            let mut last = None;
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let update = ObservedUpdate {
                    current_size: Some(Size::ALL[rng.random_range(0..Size::ALL.len())]),
                    current_replicas: Some(rng.random_range(1..=9)),
                    current_storage_gb: Some(rng.random_range(10..=12)),
                    observed_generation: Some(rng.random_range(0..=5)),
                    status: Some(if rng.random_bool(0.5) {
                        DatabaseStatus::Ready
                    } else {
                        DatabaseStatus::Updating
                    }),
                    conditions: Some(vec![Condition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        reason: "Ready".into(),
                        message: format!("write {writes}"),
                        last_transition_time: Utc::now(),
                    }]),
                    ..Default::default()
                };
                store
                    .update_observed(&id, &update)
                    .await
                    .expect("update_observed");
                last = Some(update);
                writes += 1;
            }
            (last, writes)
        })
    };
    let operator = {
        let (store, id, stop) = (store.clone(), id.clone(), stop.clone());
        tokio::spawn(async move {
            let mut cycles = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let db = store.get_database(&id).await.expect("get").expect("exists");
                let op = format!("op-race-{cycles}");
                if store
                    .begin_operation(&id, &op, db.operation_seq)
                    .await
                    .expect("begin")
                {
                    assert!(
                        store.end_operation(&id, &op).await.expect("end"),
                        "end_operation of the operation just begun failed"
                    );
                }
                cycles += 1;
            }
            cycles
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, key, stop) = (http.clone(), url.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let resp = http.get(&url).bearer_auth(&key).send().await.expect("GET");
                    if resp.status() == StatusCode::OK {
                        let db: Value = resp.json().await.expect("JSON");
                        reads.push((db["generation"].as_u64().unwrap_or(0), fields(&db)));
                    }
                }
                reads
            })
        })
        .collect();

    let patchers: Vec<_> = (0..PATCHERS)
        .map(|p| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            let n = patches / PATCHERS + u64::from(p < patches % PATCHERS);
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(p));
                let use_if_match = p % 2 == 1;
                let mut seen_gen = 1u64;
                let mut seen_storage = 10u64;
                let mut out = Outcome::default();
                for _ in 0..n {
                    let mut patch = serde_json::Map::new();
                    while patch.is_empty() {
                        if rng.random_bool(0.5) {
                            patch.insert(
                                "size".into(),
                                json!(Size::ALL[rng.random_range(0..Size::ALL.len())].as_str()),
                            );
                        }
                        if rng.random_bool(0.5) {
                            patch.insert(
                                "replicas".into(),
                                json!([1, 3, 5][rng.random_range(0..3)]),
                            );
                        }
                        if rng.random_bool(0.4) {
                            patch.insert(
                                "storage_gb".into(),
                                json!(seen_storage + rng.random_range(0..3)),
                            );
                        }
                    }
                    let patch = Value::Object(patch);
                    let mut req = http.patch(&url).bearer_auth(&key).json(&patch);
                    let if_match = use_if_match.then_some(seen_gen);
                    if let Some(g) = if_match {
                        req = req.header("If-Match", format!("\"g{g}\""));
                    }
                    let resp = req.send().await.expect("PATCH");
                    let status = resp.status();
                    *out.statuses.entry(status.as_u16()).or_default() += 1;
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    if status.is_server_error() {
                        out.server_errors
                            .push(format!("PATCH {patch} answered {status}: {body}"));
                    }
                    if status == StatusCode::OK {
                        let generation = body["generation"].as_u64().expect("generation");
                        seen_gen = generation;
                        seen_storage = seen_storage.max(body["storage_gb"].as_u64().unwrap_or(10));
                        out.accepted.push(Accepted {
                            patch,
                            if_match,
                            generation,
                            fields: fields(&body),
                        });
                    } else if status == StatusCode::PRECONDITION_FAILED
                        || status == StatusCode::UNPROCESSABLE_ENTITY
                    {
                        // Learn the current version, as a client would.
                        let db: Value = http
                            .get(&url)
                            .bearer_auth(&key)
                            .send()
                            .await
                            .expect("GET")
                            .json()
                            .await
                            .expect("JSON");
                        seen_gen = db["generation"].as_u64().unwrap_or(seen_gen);
                        seen_storage = seen_storage.max(db["storage_gb"].as_u64().unwrap_or(10));
                    }
                }
                out
            })
        })
        .collect();

    let mut all = Outcome::default();
    for p in patchers {
        let o = p.await.expect("a patcher panicked");
        all.accepted.extend(o.accepted);
        for (s, n) in o.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        all.server_errors.extend(o.server_errors);
    }
    stop.store(true, Ordering::Relaxed);
    let (last_observed, observed_writes) = observer.await.expect("the observer panicked");
    let operator_cycles = operator.await.expect("the operator panicked");
    for r in readers {
        all.reads.extend(r.await.expect("a reader panicked"));
    }
    let final_db: Value = http
        .get(&url)
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");

    // The history, generation by generation.
    let mut problems = Vec::new();
    let mut lost = 0u64;
    let mut by_gen: BTreeMap<u64, Fields> = BTreeMap::new();
    by_gen.insert(1, fields(&created));
    for a in &all.accepted {
        match by_gen.get(&a.generation) {
            Some(f) if *f != a.fields => {
                lost += 1;
                problems.push(format!(
                    "generation {} answered with two desired states: {f:?} and {:?} (patch {})",
                    a.generation, a.fields, a.patch
                ));
            }
            _ => {
                by_gen.insert(a.generation, a.fields.clone());
            }
        }
        if apply(&a.fields, &a.patch) != a.fields {
            lost += 1;
            problems.push(format!(
                "accepted patch {} is not in its answer {:?}",
                a.patch, a.fields
            ));
        }
        if let Some(g) = a.if_match
            && a.generation != g + 1
            && a.generation != g
        {
            problems.push(format!(
                "If-Match g{g} was accepted as generation {}",
                a.generation
            ));
        }
    }
    let max_gen = *by_gen.keys().last().expect("generation 1");
    for g in 2..=max_gen {
        let (Some(prev), Some(now)) = (by_gen.get(&(g - 1)), by_gen.get(&g)) else {
            problems.push(format!(
                "generation {g} (or {}) was produced by no accepted PATCH",
                g - 1
            ));
            continue;
        };
        let explained = all
            .accepted
            .iter()
            .any(|a| a.generation == g && apply(prev, &a.patch) == *now && now != prev);
        if !explained {
            lost += 1;
            problems.push(format!("generation {g} ({now:?}) is not generation {} ({prev:?}) with one accepted patch applied", g - 1));
        }
    }
    for (g, f) in &all.reads {
        if by_gen.get(g).is_some_and(|want| want != f) {
            lost += 1;
            problems.push(format!(
                "a GET saw generation {g} as {f:?}, accepted as {:?}",
                by_gen[g]
            ));
        }
    }
    let final_gen = final_db["generation"].as_u64().unwrap_or(0);
    if final_gen != max_gen || fields(&final_db) != by_gen[&max_gen] {
        lost += 1;
        problems.push(format!("the record ends at generation {final_gen} {:?}, the last accepted PATCH made generation {max_gen} {:?}", fields(&final_db), by_gen[&max_gen]));
    }
    if let Some(u) = &last_observed {
        let seen = (
            final_db["current_size"].as_str().map(str::to_string),
            final_db["current_replicas"].as_u64(),
            final_db["current_storage_gb"].as_u64(),
        );
        let want = (
            u.current_size.map(|s| s.as_str().to_string()),
            u.current_replicas.map(u64::from),
            u.current_storage_gb.map(u64::from),
        );
        if seen != want {
            lost += 1;
            problems.push(format!(
                "the last observed write {want:?} was clobbered: the record shows {seen:?}"
            ));
        }
    }
    if !final_db["active_operation_id"].is_null() {
        problems.push(format!(
            "the active operation was left set: {}",
            final_db["active_operation_id"]
        ));
    }
    problems.extend(all.server_errors.iter().cloned());

    let mut s = Summary::new(label);
    s.trials = patches;
    s.faults = observed_writes + operator_cycles;
    s.converged = u64::from(problems.is_empty());
    s.lost_writes = lost;
    s.extra = format!(
        "accepted={} generations={max_gen} statuses={:?} observed_writes={observed_writes} operation_cycles={operator_cycles} reads={} seed={seed} secs={}",
        all.accepted.len(),
        all.statuses,
        all.reads.len(),
        started.elapsed().as_secs()
    );
    s.print();
    assert!(
        problems.is_empty(),
        "{label}: {} problem(s) (seed {seed}):\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        all.accepted.len() as u64 >= patches / 4,
        "too few PATCHes were accepted to mean anything: {:?}",
        all.statuses
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_and_observed_writes_on_mongodb() {
    let uri = rig_var("MONGODB_URI");
    let database = format!("faults_race_{}", random_token(6));
    let store = Arc::new(MongoStore::new(&uri, &database).await.expect("mongodb uri"));
    race(
        store,
        "races_mongodb",
        count("DBAAS_RACE_PATCHES", 160),
        seed(),
    )
    .await;
    drop_mongo_database(&uri, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_and_observed_writes_on_sqlite() {
    let store = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
    race(
        store,
        "races_sqlite",
        count("DBAAS_RACE_PATCHES", 160),
        seed(),
    )
    .await;
}
