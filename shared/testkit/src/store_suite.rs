//! The conformance suite every [`Store`] adapter must pass.
//!
//! Each check panics on failure. Records get random ids and names, so the
//! suite can run again and again against one shared server. Times are
//! compared at millisecond precision, the precision stores keep.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;

use dbaas_core::domain::{
    Action, ApiKeyRecord, Condition, Connection, Database, DatabaseStatus, Event, EventType,
    Operation, OperationStatus, Size, Spec, Tenant, hash_api_key, new_api_key, random_token,
};
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::error::Error;
use dbaas_store::{
    DatabaseQuery, DesiredChange, EventQuery, ObservedUpdate, OperationQuery, OperationUpdate,
    Store,
};

/// Runs every check.
pub async fn run_all(store: &dyn Store) {
    store.ping().await.expect("ping");
    tenants(store).await;
    api_keys(store).await;
    database_round_trip(store).await;
    list_databases(store).await;
    unique_names(store).await;
    update_desired(store).await;
    desired_and_observed_are_independent(store).await;
    operation_slot(store).await;
    insert_operation_is_idempotent(store).await;
    list_operations(store).await;
    update_operation(store).await;
    claim_operation(store).await;
    counters(store).await;
    concurrent_update_desired(store).await;
    rotation_and_connection(store).await;
    events(store).await;
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("time in range")
}

/// The record as a store returns it: times at millisecond precision.
fn stored_database(mut db: Database) -> Database {
    db.created_at = ms(db.created_at);
    db.updated_at = ms(db.updated_at);
    for c in &mut db.conditions {
        c.last_transition_time = ms(c.last_transition_time);
    }
    db
}

fn stored_operation(mut op: Operation) -> Operation {
    op.claimed_until = op.claimed_until.map(ms);
    op.next_attempt_at = op.next_attempt_at.map(ms);
    op.created_at = ms(op.created_at);
    op.updated_at = ms(op.updated_at);
    op.finished_at = op.finished_at.map(ms);
    op
}

async fn new_tenant(store: &dyn Store) -> Tenant {
    let tenant = Tenant {
        id: format!("tn-{}", random_token(12)),
        name: format!("tenant-{}", random_token(8)),
        created_at: Utc::now(),
    };
    store.insert_tenant(&tenant).await.expect("insert tenant");
    tenant
}

fn sample_database(tenant_id: &str, id: &str, name: &str) -> Database {
    let now = Utc::now();
    Database {
        id: id.to_string(),
        version: "16.4".into(),
        ..Database::declared(tenant_id, name, Engine::Postgres, Size::Small, 1, 10, now)
    }
}

async fn insert_database(store: &dyn Store, tenant_id: &str, name: &str) -> Database {
    let db = sample_database(tenant_id, &format!("db-{}", random_token(12)), name);
    store.insert_database(&db).await.expect("insert database");
    db
}

fn sample_operation(db: &Database, id: &str, created_at: DateTime<Utc>) -> Operation {
    let spec = Spec {
        size: db.size,
        replicas: db.replicas,
        storage_gb: db.storage_gb,
    };
    Operation {
        id: id.to_string(),
        attempts: 0,
        ..Operation::planned(db, Action::Provision(spec), created_at)
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: dbaas_core::Result<T>, what: &str) {
    match r {
        Err(Error::Conflict(_)) => {}
        other => panic!("{what}: expected Error::Conflict, got {other:?}"),
    }
}

async fn get_db(store: &dyn Store, id: &str) -> Database {
    store
        .get_database(id)
        .await
        .expect("get database")
        .unwrap_or_else(|| panic!("database {id} missing"))
}

async fn get_op(store: &dyn Store, id: &str) -> Operation {
    store
        .get_operation(id)
        .await
        .expect("get operation")
        .unwrap_or_else(|| panic!("operation {id} missing"))
}

/// Tenants round-trip; a duplicate name is a conflict.
pub async fn tenants(store: &dyn Store) {
    let t = new_tenant(store).await;
    let got = store.get_tenant(&t.id).await.expect("get tenant");
    let mut want = t.clone();
    want.created_at = ms(want.created_at);
    assert_eq!(got, Some(want));

    let dup = Tenant {
        id: format!("tn-{}", random_token(12)),
        ..t.clone()
    };
    assert_conflict(store.insert_tenant(&dup).await, "tenant with a taken name");
    assert_eq!(store.get_tenant(&dup.id).await.expect("get tenant"), None);
    assert_eq!(
        store.get_tenant("tn-missing").await.expect("get tenant"),
        None
    );
}

/// API keys are found by hash.
pub async fn api_keys(store: &dyn Store) {
    let t = new_tenant(store).await;
    let key = new_api_key();
    let record = ApiKeyRecord {
        key_hash: hash_api_key(&key),
        prefix: key[..8].to_string(),
        tenant_id: t.id.clone(),
        created_at: Utc::now(),
    };
    store.insert_api_key(&record).await.expect("insert key");
    let got = store
        .find_api_key(&record.key_hash)
        .await
        .expect("find key");
    assert_eq!(
        got,
        Some(ApiKeyRecord {
            created_at: ms(record.created_at),
            ..record.clone()
        })
    );
    let other = hash_api_key(&new_api_key());
    assert_eq!(store.find_api_key(&other).await.expect("find key"), None);
}

/// Databases round-trip exactly, with every optional field set or empty.
pub async fn database_round_trip(store: &dyn Store) {
    let t = new_tenant(store).await;
    let empty = insert_database(store, &t.id, "plain").await;
    assert_eq!(get_db(store, &empty.id).await, stored_database(empty));

    let mut full = sample_database(&t.id, &format!("db-{}", random_token(12)), "full");
    full.engine = Engine::Mysql;
    full.size = Size::Xlarge2;
    full.replicas = 3;
    full.storage_gb = 250;
    full.current_size = Some(Size::Large);
    full.current_replicas = Some(1);
    full.current_storage_gb = Some(100);
    full.generation = 7;
    full.observed_generation = 6;
    full.status = DatabaseStatus::Updating;
    full.conditions = vec![Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "Ready".into(),
        message: "all replicas ready".into(),
        last_transition_time: Utc::now() - Duration::seconds(30),
    }];
    full.active_operation_id = Some("op-0123456789abcdef".into());
    full.operation_seq = 4;
    full.updated_at = full.created_at + Duration::microseconds(1_234_567);
    store.insert_database(&full).await.expect("insert database");
    assert_eq!(get_db(store, &full.id).await, stored_database(full));
    assert_eq!(store.get_database("db-missing").await.expect("get"), None);
}

/// Listing filters by tenant, engine and status, and pages by id.
pub async fn list_databases(store: &dyn Store) {
    let t = new_tenant(store).await;
    let prefix = format!("db-{}-", random_token(10));
    let specs = [
        (Engine::Postgres, DatabaseStatus::Ready),
        (Engine::Mysql, DatabaseStatus::Provisioning),
        (Engine::Postgres, DatabaseStatus::Failed),
        (Engine::Redis, DatabaseStatus::Ready),
        (Engine::Postgres, DatabaseStatus::Deleting),
    ];
    // Inserted out of id order, to check the listing sorts.
    let mut dbs = Vec::new();
    for (i, (engine, status)) in specs.iter().enumerate().rev() {
        let mut db = sample_database(&t.id, &format!("{prefix}{i}"), &format!("list-{i}"));
        db.engine = *engine;
        db.status = *status;
        store.insert_database(&db).await.expect("insert database");
        dbs.push(db);
    }
    dbs.reverse();
    let ids = |v: &[Database]| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    let list = |q: DatabaseQuery| async move { store.list_databases(&q).await.expect("list") };
    let tenant = || DatabaseQuery {
        tenant_id: Some(t.id.clone()),
        ..Default::default()
    };

    let all = list(tenant()).await;
    assert_eq!(ids(&all), ids(&dbs));
    assert_eq!(all[0], stored_database(dbs[0].clone()));

    let postgres = list(DatabaseQuery {
        engine: Some(Engine::Postgres),
        ..tenant()
    })
    .await;
    assert_eq!(ids(&postgres), [0, 2, 4].map(|i| format!("{prefix}{i}")));

    let ready = list(DatabaseQuery {
        status: Some(DatabaseStatus::Ready),
        ..tenant()
    })
    .await;
    assert_eq!(ids(&ready), [0, 3].map(|i| format!("{prefix}{i}")));

    let ready_postgres = list(DatabaseQuery {
        status: Some(DatabaseStatus::Ready),
        engine: Some(Engine::Postgres),
        ..tenant()
    })
    .await;
    assert_eq!(ids(&ready_postgres), [format!("{prefix}0")]);

    assert!(store.finalize_deletion(&dbs[4].id).await.expect("finalize"));
    let live = list(DatabaseQuery {
        exclude_deleted: true,
        ..tenant()
    })
    .await;
    assert_eq!(ids(&live), ids(&dbs[..4]));
    let deleted = list(DatabaseQuery {
        status: Some(DatabaseStatus::Deleted),
        ..tenant()
    })
    .await;
    assert_eq!(ids(&deleted), [dbs[4].id.clone()]);
    assert_eq!(ids(&list(tenant()).await).len(), 5, "deleted records stay");

    // Pages of two, following the cursor.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(DatabaseQuery {
            after_id: after.clone(),
            limit: Some(2),
            ..tenant()
        })
        .await;
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|d| d.id.clone());
        seen.extend(ids(&page));
    }
    assert_eq!(seen, ids(&dbs));

    // Without a tenant, the listing spans tenants (for the reconciler); the
    // random id prefix keeps other records out of this window.
    let other = new_tenant(store).await;
    let mut foreign = sample_database(&other.id, &format!("{prefix}2a"), "foreign");
    foreign.status = DatabaseStatus::Ready;
    store
        .insert_database(&foreign)
        .await
        .expect("insert database");
    let across = list(DatabaseQuery {
        after_id: Some(prefix.clone()),
        limit: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(&across),
        [
            format!("{prefix}0"),
            format!("{prefix}1"),
            format!("{prefix}2")
        ]
    );
    let across = list(DatabaseQuery {
        after_id: Some(format!("{prefix}2")),
        limit: Some(2),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&across), [format!("{prefix}2a"), format!("{prefix}3")]);
}

/// A live name is unique per tenant, free in other tenants, and reusable
/// once the deletion is finalized.
pub async fn unique_names(store: &dyn Store) {
    let t = new_tenant(store).await;
    let other = new_tenant(store).await;
    let first = insert_database(store, &t.id, "orders").await;

    let dup = sample_database(&t.id, &format!("db-{}", random_token(12)), "orders");
    assert_conflict(
        store.insert_database(&dup).await,
        "database with a taken name",
    );
    assert_eq!(store.get_database(&dup.id).await.expect("get"), None);

    let same_id = sample_database(&t.id, &first.id, "orders-2");
    assert_conflict(
        store.insert_database(&same_id).await,
        "database with a taken id",
    );

    insert_database(store, &other.id, "orders").await;

    // Requested deletion still holds the name; finalized deletion frees it.
    let del = DesiredChange {
        delete: true,
        status: Some(DatabaseStatus::Deleting),
        ..Default::default()
    };
    store
        .update_desired(&first.id, first.generation, &del)
        .await
        .expect("request deletion")
        .expect("deletion requested");
    assert_conflict(
        store.insert_database(&dup).await,
        "name of a deleting database",
    );
    assert!(store.finalize_deletion(&first.id).await.expect("finalize"));
    assert_eq!(
        get_db(store, &first.id).await.status,
        DatabaseStatus::Deleted
    );
    store
        .insert_database(&dup)
        .await
        .expect("reuse a freed name");
    assert_eq!(get_db(store, &dup.id).await.name, "orders");

    // And again: several deleted records may share a name.
    assert!(store.finalize_deletion(&dup.id).await.expect("finalize"));
    insert_database(store, &t.id, "orders").await;
    assert!(
        !store
            .finalize_deletion("db-missing")
            .await
            .expect("finalize")
    );
}

/// `update_desired` is a compare-and-set on the generation.
pub async fn update_desired(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "desired").await;
    let before = get_db(store, &db.id).await;

    let change = DesiredChange {
        replicas: Some(3),
        ..Default::default()
    };
    assert_eq!(
        store
            .update_desired(&db.id, db.generation + 1, &change)
            .await
            .expect("update"),
        None,
        "wrong generation"
    );
    assert_eq!(
        get_db(store, &db.id).await,
        before,
        "failed CAS changed nothing"
    );
    assert_eq!(
        store
            .update_desired("db-missing", 1, &change)
            .await
            .expect("update"),
        None
    );

    let after = store
        .update_desired(&db.id, db.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    let mut want = before.clone();
    want.replicas = 3;
    want.generation += 1;
    want.updated_at = after.updated_at;
    assert_eq!(after, want, "only replicas and generation changed");
    assert!(after.updated_at >= before.updated_at);
    assert_eq!(get_db(store, &db.id).await, after);

    let change = DesiredChange {
        size: Some(Size::Large),
        storage_gb: Some(40),
        status: Some(DatabaseStatus::Updating),
        ..Default::default()
    };
    let after2 = store
        .update_desired(&db.id, after.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    assert_eq!(after2.generation, after.generation + 1);
    assert_eq!(
        (
            after2.size,
            after2.replicas,
            after2.storage_gb,
            after2.status
        ),
        (Size::Large, 3, 40, DatabaseStatus::Updating)
    );
    assert!(!after2.deletion_requested);

    let delete = DesiredChange {
        delete: true,
        status: Some(DatabaseStatus::Deleting),
        ..Default::default()
    };
    let deleting = store
        .update_desired(&db.id, after2.generation, &delete)
        .await
        .expect("update")
        .expect("generation matched");
    assert!(deleting.deletion_requested);
    assert_eq!(deleting.status, DatabaseStatus::Deleting);
    assert_eq!(deleting.generation, after2.generation + 1);
    assert_eq!(
        store
            .update_desired(&db.id, deleting.generation, &change)
            .await
            .expect("update"),
        None,
        "no change after deletion was requested"
    );
}

/// Observed and desired writes never undo each other.
pub async fn desired_and_observed_are_independent(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "split").await;
    let condition = Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "Ready".into(),
        message: "ok".into(),
        last_transition_time: Utc::now(),
    };
    let observed = ObservedUpdate {
        current_size: Some(Size::Small),
        current_replicas: Some(1),
        current_storage_gb: Some(10),
        observed_generation: Some(1),
        status: Some(DatabaseStatus::Ready),
        conditions: Some(vec![condition.clone()]),
        ..Default::default()
    };
    assert!(
        store
            .update_observed(&db.id, &observed)
            .await
            .expect("observe")
    );
    let got = get_db(store, &db.id).await;
    assert_eq!(got.current_size, Some(Size::Small));
    assert_eq!(
        got.conditions,
        vec![Condition {
            last_transition_time: ms(condition.last_transition_time),
            ..condition.clone()
        }]
    );
    assert_eq!(
        (got.generation, got.size),
        (1, Size::Small),
        "desired untouched"
    );

    // Interleave: each side's fields survive the other's writes, including
    // writes issued concurrently.
    let mut generation = got.generation;
    for round in 0..5_u32 {
        let desired = DesiredChange {
            replicas: Some(round + 2),
            ..Default::default()
        };
        let observed = ObservedUpdate {
            current_storage_gb: Some(20 + round),
            ..Default::default()
        };
        let (d, o) = futures::join!(
            store.update_desired(&db.id, generation, &desired),
            store.update_observed(&db.id, &observed),
        );
        generation = d.expect("update").expect("generation matched").generation;
        assert!(o.expect("observe"));
        let got = get_db(store, &db.id).await;
        assert_eq!(got.replicas, round + 2);
        assert_eq!(got.current_storage_gb, Some(20 + round));
        assert_eq!(got.generation, generation);
    }
    let got = get_db(store, &db.id).await;
    assert_eq!(
        (
            got.current_size,
            got.current_replicas,
            got.observed_generation,
            got.status
        ),
        (Some(Size::Small), Some(1), 1, DatabaseStatus::Ready),
        "observed fields not named by later updates are kept"
    );
    assert_eq!((got.size, got.storage_gb), (Size::Small, 10));

    // An observed update leaves the generation alone.
    let bump = ObservedUpdate {
        observed_generation: Some(generation),
        ..Default::default()
    };
    assert!(store.update_observed(&db.id, &bump).await.expect("observe"));
    let got = get_db(store, &db.id).await;
    assert_eq!(
        (got.generation, got.observed_generation),
        (generation, generation)
    );
    assert!(
        !store
            .update_observed("db-missing", &bump)
            .await
            .expect("observe")
    );
}

/// One active operation per database, tracked by a sequence number.
pub async fn operation_slot(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "slot").await;
    assert!(
        !store
            .begin_operation(&db.id, "op-a", 1)
            .await
            .expect("begin"),
        "wrong seq"
    );
    assert!(
        store
            .begin_operation(&db.id, "op-a", 0)
            .await
            .expect("begin")
    );
    let got = get_db(store, &db.id).await;
    assert_eq!(
        (got.active_operation_id.as_deref(), got.operation_seq),
        (Some("op-a"), 1)
    );
    assert!(
        !store
            .begin_operation(&db.id, "op-b", 1)
            .await
            .expect("begin"),
        "slot taken"
    );
    assert!(
        !store.end_operation(&db.id, "op-b").await.expect("end"),
        "not the active op"
    );
    assert!(store.end_operation(&db.id, "op-a").await.expect("end"));
    assert!(
        !store.end_operation(&db.id, "op-a").await.expect("end"),
        "already ended"
    );
    let got = get_db(store, &db.id).await;
    assert_eq!((got.active_operation_id, got.operation_seq), (None, 1));
    assert!(
        store
            .begin_operation(&db.id, "op-b", 1)
            .await
            .expect("begin")
    );
    assert_eq!(get_db(store, &db.id).await.operation_seq, 2);
    assert!(
        !store
            .begin_operation("db-missing", "op-c", 0)
            .await
            .expect("begin")
    );

    // Concurrent begins with one seq: exactly one wins.
    assert!(store.end_operation(&db.id, "op-b").await.expect("end"));
    let ids: Vec<String> = (0..10).map(|i| format!("op-race-{i}")).collect();
    let wins = join_all(ids.iter().map(|id| store.begin_operation(&db.id, id, 2))).await;
    let winners: Vec<&String> = ids
        .iter()
        .zip(wins)
        .filter_map(|(id, r)| r.expect("begin").then_some(id))
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(
        get_db(store, &db.id).await.active_operation_id.as_ref(),
        Some(winners[0])
    );
}

/// Inserting an existing operation is a no-op that says so.
pub async fn insert_operation_is_idempotent(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "ops").await;
    let mut op = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
    op.action = Action::Change(Change::StorageGb(20));
    op.status = OperationStatus::Failed;
    op.attempts = 2;
    op.error = Some("volume expansion timed out".into());
    op.ops_request_name = Some(format!("{}-2", op.id));
    op.ops_request_phase = Some("Failed".into());
    op.claimed_until = Some(Utc::now() + Duration::seconds(60));
    op.next_attempt_at = Some(Utc::now() + Duration::seconds(120));
    op.finished_at = Some(Utc::now());
    assert!(store.insert_operation(&op).await.expect("insert"));
    assert_eq!(get_op(store, &op.id).await, stored_operation(op.clone()));

    let mut again = op.clone();
    again.status = OperationStatus::Pending;
    again.attempts = 0;
    assert!(!store.insert_operation(&again).await.expect("insert"));
    assert_eq!(get_op(store, &op.id).await, stored_operation(op.clone()));

    let plain = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
    assert!(store.insert_operation(&plain).await.expect("insert"));
    assert_eq!(get_op(store, &plain.id).await, stored_operation(plain));
    assert_eq!(store.get_operation("op-missing").await.expect("get"), None);
}

/// Operations list newest first, with filters and a `(created_at, id)` cursor.
pub async fn list_operations(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "oplist").await;
    let other_db = insert_database(store, &t.id, "oplist-2").await;
    let base = Utc::now() - Duration::hours(1);
    let prefix = format!("op-{}", random_token(10));
    // Two share a creation time, to exercise the id tie-break.
    let plan = [
        (0, OperationStatus::Succeeded),
        (1, OperationStatus::Failed),
        (2, OperationStatus::Pending),
        (2, OperationStatus::Running),
        (3, OperationStatus::Pending),
    ];
    let mut ops = Vec::new();
    for (i, (minute, status)) in plan.iter().enumerate() {
        let at = base + Duration::minutes(*minute) + Duration::microseconds(250);
        let mut op = sample_operation(&db, &format!("{prefix}-{i}"), at);
        op.status = *status;
        assert!(store.insert_operation(&op).await.expect("insert"));
        ops.push(stored_operation(op));
    }
    let foreign = sample_operation(
        &other_db,
        &format!("{prefix}-x"),
        base - Duration::minutes(1),
    );
    assert!(store.insert_operation(&foreign).await.expect("insert"));

    let ids = |v: &[Operation]| v.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    let want = |idx: &[usize]| {
        idx.iter()
            .map(|i| format!("{prefix}-{i}"))
            .collect::<Vec<_>>()
    };
    let list = |q: OperationQuery| async move { store.list_operations(&q).await.expect("list") };
    let by_db = || OperationQuery {
        database_id: Some(db.id.clone()),
        ..Default::default()
    };

    let all = list(by_db()).await;
    assert_eq!(ids(&all), want(&[4, 3, 2, 1, 0]));
    assert_eq!(all[0], ops[4]);

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = list(OperationQuery {
            before: before.clone(),
            limit: Some(2),
            ..by_db()
        })
        .await;
        if page.is_empty() {
            break;
        }
        before = page.last().map(|o| (o.created_at, o.id.clone()));
        seen.extend(ids(&page));
    }
    assert_eq!(seen, want(&[4, 3, 2, 1, 0]));

    let open = list(OperationQuery {
        statuses: vec![OperationStatus::Pending, OperationStatus::Running],
        ..by_db()
    })
    .await;
    assert_eq!(ids(&open), want(&[4, 3, 2]));

    let tenant = list(OperationQuery {
        tenant_id: Some(t.id.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(tenant.len(), 6);
    assert_eq!(
        tenant.last().map(|o| o.id.clone()),
        Some(foreign.id.clone())
    );

    let none = list(OperationQuery {
        tenant_id: Some(t.id.clone()),
        database_id: Some(other_db.id.clone()),
        statuses: vec![OperationStatus::Succeeded],
        ..Default::default()
    })
    .await;
    assert!(none.is_empty());
}

/// `update_operation` is a compare-and-set on the status.
pub async fn update_operation(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "opupdate").await;
    let op = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
    assert!(store.insert_operation(&op).await.expect("insert"));

    let running = OperationUpdate {
        status: Some(OperationStatus::Running),
        attempts: Some(1),
        ops_request_name: Some(Some(op.ops_request_name_for_attempt())),
        error: Some(Some("transient".into())),
        ..Default::default()
    };
    assert_eq!(
        store
            .update_operation(&op.id, &[OperationStatus::Running], &running)
            .await
            .expect("update"),
        None,
        "status is not running"
    );
    assert_eq!(
        store
            .update_operation(&op.id, &[], &running)
            .await
            .expect("update"),
        None,
        "no status is expected"
    );
    assert_eq!(get_op(store, &op.id).await, stored_operation(op.clone()));

    let got = store
        .update_operation(
            &op.id,
            &[OperationStatus::Pending, OperationStatus::Failed],
            &running,
        )
        .await
        .expect("update")
        .expect("status matched");
    assert_eq!(got.status, OperationStatus::Running);
    assert_eq!(got.attempts, 1);
    assert_eq!(got.ops_request_name, Some(format!("{}-1", op.id)));
    assert_eq!(got.error.as_deref(), Some("transient"));
    assert_eq!(got.created_at, ms(op.created_at));
    assert!(got.updated_at >= ms(op.updated_at));
    assert_eq!(get_op(store, &op.id).await, got);

    let finished_at = Utc::now();
    let done = OperationUpdate {
        status: Some(OperationStatus::Succeeded),
        error: Some(None),
        ops_request_phase: Some(Some("Successful".into())),
        finished_at: Some(Some(finished_at)),
        ..Default::default()
    };
    let got = store
        .update_operation(&op.id, &[OperationStatus::Running], &done)
        .await
        .expect("update")
        .expect("status matched");
    assert_eq!(got.status, OperationStatus::Succeeded);
    assert_eq!(got.error, None, "Some(None) clears");
    assert_eq!(
        got.ops_request_name,
        Some(format!("{}-1", op.id)),
        "None keeps"
    );
    assert_eq!(got.ops_request_phase.as_deref(), Some("Successful"));
    assert_eq!(got.finished_at, Some(ms(finished_at)));
    assert_eq!(got.attempts, 1);
    assert_eq!(
        store
            .update_operation("op-missing", &[OperationStatus::Pending], &done)
            .await
            .expect("update"),
        None
    );
}

/// Claims go to pending operations and to running ones whose claim expired.
pub async fn claim_operation(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "claims").await;
    let op = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
    assert!(store.insert_operation(&op).await.expect("insert"));
    let now = Utc::now();
    let until = now + Duration::seconds(30);

    let claimed = store
        .claim_operation(&op.id, now, until, "w1")
        .await
        .expect("claim")
        .expect("pending is claimable");
    assert_eq!(claimed.status, OperationStatus::Running);
    assert_eq!(claimed.claimed_until, Some(ms(until)));
    assert_eq!(claimed.claimed_by.as_deref(), Some("w1"));
    assert_eq!(claimed.attempts, op.attempts, "a claim is not an attempt");

    let later = now + Duration::seconds(10);
    assert_eq!(
        store
            .claim_operation(&op.id, later, later + Duration::seconds(30), "w2")
            .await
            .expect("claim"),
        None,
        "live claim"
    );

    let after_expiry = until + Duration::seconds(1);
    let until2 = after_expiry + Duration::seconds(30);
    let reclaimed = store
        .claim_operation(&op.id, after_expiry, until2, "w2")
        .await
        .expect("claim")
        .expect("expired claim is claimable");
    assert_eq!(reclaimed.claimed_until, Some(ms(until2)));
    assert_eq!(reclaimed.claimed_by.as_deref(), Some("w2"));

    // Only the holder of the claim writes to the running operation.
    let renew = OperationUpdate {
        claimed_until: Some(Some(until2)),
        ops_request_phase: Some(Some("Progressing".into())),
        ..Default::default()
    };
    assert_eq!(
        store
            .update_claimed_operation(&op.id, "w1", &renew)
            .await
            .expect("update"),
        None,
        "a lost claim writes nothing"
    );
    assert_eq!(get_op(store, &op.id).await.ops_request_phase, None);
    let renewed = store
        .update_claimed_operation(&op.id, "w2", &renew)
        .await
        .expect("update")
        .expect("the holder writes");
    assert_eq!(renewed.ops_request_phase.as_deref(), Some("Progressing"));
    assert_eq!(renewed.claimed_by.as_deref(), Some("w2"));

    // Concurrent claims: one winner.
    let late = until2 + Duration::seconds(1);
    let results = join_all((0..8).map(|i| {
        let token = format!("c{i}");
        let id = &op.id;
        async move {
            let r = store
                .claim_operation(id, late, late + Duration::seconds(30 + i), &token)
                .await;
            (token, r)
        }
    }))
    .await;
    let winners: Vec<String> = results
        .into_iter()
        .filter(|(_, r)| r.as_ref().expect("claim").is_some())
        .map(|(token, _)| token)
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(
        get_op(store, &op.id).await.claimed_by.as_ref(),
        Some(&winners[0])
    );
    for i in 0..8 {
        let token = format!("c{i}");
        let wrote = store
            .update_claimed_operation(&op.id, &token, &OperationUpdate::default())
            .await
            .expect("update")
            .is_some();
        assert_eq!(wrote, token == winners[0], "only the winner's claim holds");
    }

    let done = OperationUpdate {
        status: Some(OperationStatus::Succeeded),
        ..Default::default()
    };
    store
        .update_operation(&op.id, &[OperationStatus::Running], &done)
        .await
        .expect("update")
        .expect("running");
    let far = late + Duration::days(1);
    assert_eq!(
        store
            .claim_operation(&op.id, far, far, "w3")
            .await
            .expect("claim"),
        None,
        "succeeded"
    );

    let mut failed = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
    failed.status = OperationStatus::Failed;
    assert!(store.insert_operation(&failed).await.expect("insert"));
    assert_eq!(
        store
            .claim_operation(&failed.id, far, far, "w4")
            .await
            .expect("claim"),
        None,
        "failed waits for the reconciler"
    );
    assert_eq!(
        store
            .claim_operation("op-missing", now, until, "w5")
            .await
            .expect("claim"),
        None
    );
}

/// Counters accumulate, also under concurrent increments.
pub async fn counters(store: &dyn Store) {
    let name = format!("test_counter_{}", random_token(8));
    assert_eq!(store.add_to_counter(&name, 1.5).await.expect("add"), 1.5);
    assert_eq!(store.add_to_counter(&name, 2.0).await.expect("add"), 3.5);
    assert_eq!(store.add_to_counter(&name, 0.0).await.expect("add"), 3.5);

    let fresh = format!("test_counter_{}", random_token(8));
    let results = join_all((0..10).map(|_| store.add_to_counter(&fresh, 1.0))).await;
    let mut totals: Vec<f64> = results.into_iter().map(|r| r.expect("add")).collect();
    totals.sort_by(f64::total_cmp);
    assert_eq!(totals, (1..=10).map(f64::from).collect::<Vec<_>>());
}

/// 20 concurrent updates with one expected generation: exactly one wins.
pub async fn concurrent_update_desired(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "race").await;
    let changes: Vec<DesiredChange> = (0..20)
        .map(|i| DesiredChange {
            storage_gb: Some(100 + i),
            ..Default::default()
        })
        .collect();
    let results = join_all(
        changes
            .iter()
            .map(|c| store.update_desired(&db.id, db.generation, c)),
    )
    .await;
    let winners: Vec<Database> = results
        .into_iter()
        .filter_map(|r| r.expect("update"))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one update wins");
    let got = get_db(store, &db.id).await;
    assert_eq!(got.generation, db.generation + 1);
    assert_eq!(got.storage_gb, winners[0].storage_gb);
}

/// The rotation count is desired state; the recorded one only grows; the
/// connection round-trips.
pub async fn rotation_and_connection(store: &dyn Store) {
    let tenant = new_tenant(store).await;
    let db = insert_database(store, &tenant.id, "rotating").await;
    assert_eq!((db.auth_rotation, db.current_auth_rotation), (0, 0));
    assert_eq!(db.connection, None);
    let change = DesiredChange {
        auth_rotation: Some(1),
        ..Default::default()
    };
    let got = store
        .update_desired(&db.id, db.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    assert_eq!((got.auth_rotation, got.generation), (1, db.generation + 1));
    let connection = Connection::of(Engine::Postgres, "rotating-x", "ns", "rotating-x-auth", 3);
    let observe = |n| ObservedUpdate {
        current_auth_rotation: Some(n),
        connection: Some(connection.clone()),
        ..Default::default()
    };
    assert!(
        store
            .update_observed(&db.id, &observe(2))
            .await
            .expect("observe")
    );
    assert!(
        store
            .update_observed(&db.id, &observe(1))
            .await
            .expect("observe")
    );
    let got = get_db(store, &db.id).await;
    assert_eq!(
        got.current_auth_rotation, 2,
        "a late, older rotation changes nothing"
    );
    assert_eq!(got.connection.as_ref(), Some(&connection));
    assert_eq!(
        connection.standby_service.as_deref(),
        Some("rotating-x-standby")
    );
}

/// A database's events come newest first, in pages, and only its own.
pub async fn events(store: &dyn Store) {
    let tenant = new_tenant(store).await;
    let db = insert_database(store, &tenant.id, "audited").await;
    let other = insert_database(store, &tenant.id, "quiet").await;
    let base = ms(Utc::now());
    let mut written = Vec::new();
    for i in 0..5_i64 {
        // Two events share a time: the id breaks the tie.
        let at = base + Duration::milliseconds(i / 2 * 10);
        let e = Event::new(
            &db,
            EventType::CredentialsRead,
            Some("dbk_abc"),
            format!("read {i}"),
            at,
        );
        store.insert_event(&e).await.expect("insert event");
        written.push(e);
    }
    let e = Event::new(&other, EventType::CredentialsRead, None, "other", base);
    store.insert_event(&e).await.expect("insert event");
    written.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    let query = |before, limit| EventQuery {
        database_id: db.id.clone(),
        before,
        limit,
    };
    let all = store.list_events(&query(None, None)).await.expect("list");
    assert_eq!(all, written, "newest first, ties by id");
    let first = store
        .list_events(&query(None, Some(2)))
        .await
        .expect("list");
    assert_eq!(first, written[..2]);
    let last = &first[1];
    let rest = store
        .list_events(&query(Some((last.at, last.id.clone())), None))
        .await
        .expect("list");
    assert_eq!(rest, written[2..]);
}
