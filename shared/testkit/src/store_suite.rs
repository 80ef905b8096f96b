//! The conformance suite every [`Store`] adapter must pass.
//!
//! Each check panics on failure. Records get random ids and names, so the
//! suite can run again and again against one shared server. Times are
//! compared at millisecond precision, the precision stores keep.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;

use dbaas_core::domain::{
    Action, ApiKeyRecord, Condition, Connection, Database, DatabaseStatus, Event, EventType,
    OnDelete, Operation, OperationStatus, Size, Spec, Tenant, hash_api_key, new_api_key,
    random_token,
};
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::error::Error;
use dbaas_store::{
    BeginOperation, DatabaseQuery, DesiredChange, EventQuery, ObservedUpdate, OperationQuery,
    OperationUpdate, Store,
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
    lifecycle_fields(store).await;
    events_ride_with_writes(store).await;
    events_page_across_flushes(store).await;
    cancel_operation(store).await;
    concurrent_cancel_operation(store).await;
    cancel_races_worker(store).await;
    events_ride_with_the_insert(store).await;
    batch_writes(store).await;
    batches_larger_than_a_connection_pool(store).await;
}

/// A batch that sets every database's status.
pub fn status_updates(dbs: &[Database], status: DatabaseStatus) -> Vec<(String, ObservedUpdate)> {
    dbs.iter()
        .map(|db| {
            let update = ObservedUpdate {
                status: Some(status),
                ..Default::default()
            };
            (db.id.clone(), update)
        })
        .collect()
}

/// A batch of more records than a server's connection pool holds (FerretDB
/// 1.24 pools 50 PostgreSQL connections and, without care, holds one per
/// record of an `update` command until the command ends) finishes.
pub async fn batches_larger_than_a_connection_pool(store: &dyn Store) {
    const RECORDS: usize = 120;
    let t = new_tenant(store).await;
    let mut dbs = Vec::new();
    for i in 0..RECORDS {
        dbs.push(insert_database(store, &t.id, &format!("pool-{i}")).await);
    }
    let updates = status_updates(&dbs, DatabaseStatus::Updating);
    let within = std::time::Duration::from_secs(60);
    tokio::time::timeout(within, store.update_observed_many(&updates))
        .await
        .expect("the batch update hung")
        .expect("update observed many");
    let begins: Vec<BeginOperation> = dbs
        .iter()
        .map(|db| BeginOperation {
            database_id: db.id.clone(),
            operation_id: format!("op-{}", random_token(16)),
            expected_seq: 0,
        })
        .collect();
    let begun = tokio::time::timeout(within, store.begin_operations(&begins))
        .await
        .expect("the batch begin hung")
        .expect("begin operations");
    assert_eq!(begun, vec![true; RECORDS]);
    let last = get_db(store, &dbs[RECORDS - 1].id).await;
    assert_eq!(
        (last.status, last.active_operation_id),
        (
            DatabaseStatus::Updating,
            Some(begins[RECORDS - 1].operation_id.clone())
        )
    );
}

/// The batch writes do what their single forms do, record by record:
/// observed fields with their events, operations inserted unless there,
/// begins that hold only where their precondition does.
pub async fn batch_writes(store: &dyn Store) {
    let t = new_tenant(store).await;
    let mut dbs = Vec::new();
    for i in 0..4 {
        dbs.push(insert_database(store, &t.id, &format!("batch-{i}")).await);
    }
    let now = ms(Utc::now());
    let updates: Vec<(String, ObservedUpdate)> = dbs
        .iter()
        .enumerate()
        .map(|(i, db)| {
            let update = ObservedUpdate {
                current_replicas: Some(i as u32 + 1),
                status: Some(DatabaseStatus::Ready),
                events: vec![Event::new(
                    db,
                    EventType::StatusChanged,
                    None,
                    "provisioning → ready",
                    now,
                )],
                ..Default::default()
            };
            (db.id.clone(), update)
        })
        .chain([("db-missing".to_string(), ObservedUpdate::default())])
        .collect();
    store
        .update_observed_many(&updates)
        .await
        .expect("update observed many");
    for (i, db) in dbs.iter().enumerate() {
        let got = get_db(store, &db.id).await;
        assert_eq!(
            (got.current_replicas, got.status, got.generation),
            (Some(i as u32 + 1), DatabaseStatus::Ready, db.generation),
            "observed fields of {}",
            db.id
        );
        let events = all_events(store, &db.id).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.type_ == EventType::StatusChanged)
                .count(),
            1,
            "the status event of {} rides with its update",
            db.id
        );
    }
    store
        .update_observed_many(&[])
        .await
        .expect("an empty batch");

    // Operations: one already there (inserted before, a re-planned one).
    let ops: Vec<Operation> = dbs
        .iter()
        .map(|db| sample_operation(db, &format!("op-{}", random_token(16)), now))
        .collect();
    assert!(store.insert_operation(&ops[1], &[]).await.expect("insert"));
    let planned: Vec<(Operation, Vec<Event>)> = ops
        .iter()
        .map(|op| {
            let event = Event::of_operation(op, EventType::OperationPlanned, "planned", now);
            (op.clone(), vec![event])
        })
        .collect();
    assert_eq!(
        store
            .insert_operations(&planned)
            .await
            .expect("insert operations"),
        vec![true, false, true, true]
    );
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(get_op(store, &op.id).await, stored_operation(op.clone()));
        let planned_events = all_events(store, &dbs[i].id)
            .await
            .into_iter()
            .filter(|e| e.type_ == EventType::OperationPlanned)
            .count();
        assert_eq!(
            planned_events,
            usize::from(i != 1),
            "events only with a new operation"
        );
    }
    assert_eq!(
        store
            .insert_operations(&planned)
            .await
            .expect("insert again"),
        vec![false; 4]
    );

    // Begins: database 2 already has an active operation, database 3 is
    // read at a stale seq, and one database does not exist.
    assert!(
        store
            .begin_operation(&dbs[2].id, "op-other", 0)
            .await
            .expect("begin")
    );
    let begins: Vec<BeginOperation> = dbs
        .iter()
        .zip(&ops)
        .enumerate()
        .map(|(i, (db, op))| BeginOperation {
            database_id: db.id.clone(),
            operation_id: op.id.clone(),
            expected_seq: if i == 3 { 7 } else { 0 },
        })
        .chain([BeginOperation {
            database_id: "db-missing".into(),
            operation_id: "op-missing".into(),
            expected_seq: 0,
        }])
        .collect();
    assert_eq!(
        store
            .begin_operations(&begins)
            .await
            .expect("begin operations"),
        vec![true, true, false, false, false]
    );
    let active: Vec<(Option<String>, u64)> = join_all(dbs.iter().map(|db| get_db(store, &db.id)))
        .await
        .into_iter()
        .map(|d| (d.active_operation_id, d.operation_seq))
        .collect();
    assert_eq!(
        active,
        vec![
            (Some(ops[0].id.clone()), 1),
            (Some(ops[1].id.clone()), 1),
            (Some("op-other".to_string()), 1),
            (None, 0),
        ]
    );
    // Repeated (a batch cut off and made again): it holds, changing nothing.
    assert_eq!(
        store
            .begin_operations(&begins[..2])
            .await
            .expect("begin again"),
        vec![true, true]
    );
    assert_eq!(get_db(store, &dbs[0].id).await.operation_seq, 1);
    assert!(
        store
            .begin_operations(&[])
            .await
            .expect("an empty batch")
            .is_empty()
    );
}

/// A new database's events are written with it, and not when the insert
/// fails (a duplicate name).
pub async fn events_ride_with_the_insert(store: &dyn Store) {
    let t = new_tenant(store).await;
    let now = ms(Utc::now());
    let db = Database::declared(&t.id, "born", Engine::Postgres, Size::Small, 1, 10, now);
    let created = Event::new(&db, EventType::Created, Some("dbk_test"), "declared", now);
    store
        .insert_database(&db, std::slice::from_ref(&created))
        .await
        .expect("insert database");
    let dup = Database::declared(&t.id, "born", Engine::Postgres, Size::Small, 1, 10, now);
    let lost = Event::new(&dup, EventType::Created, None, "never", now);
    assert!(matches!(
        store.insert_database(&dup, &[lost]).await,
        Err(Error::Conflict(_))
    ));
    for query in [db.id.clone(), dup.id.clone()] {
        let listed = store
            .list_events(&EventQuery {
                database_id: query.clone(),
                ..Default::default()
            })
            .await
            .expect("list events");
        let want = if query == db.id {
            vec![created.clone()]
        } else {
            Vec::new()
        };
        assert_eq!(listed, want);
    }
    // Many writes later (more events than any outbox holds before the
    // adapter moves it), a reader still sees every event once, in order.
    let mut want = vec![created];
    want.extend(observe_events(store, &db, 20, now).await);
    want.reverse();
    let listed = store
        .list_events(&EventQuery {
            database_id: db.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list events");
    assert_eq!(listed, want);
}

/// `count` observed-state writes to `db`, each carrying one status event
/// dated a millisecond after the previous (from `after`); the events, oldest
/// first.
pub async fn observe_events(
    store: &dyn Store,
    db: &Database,
    count: i64,
    after: DateTime<Utc>,
) -> Vec<Event> {
    let mut written = Vec::new();
    for i in 1..=count {
        let e = Event::new(
            db,
            EventType::StatusChanged,
            None,
            format!("write {i}"),
            after + Duration::milliseconds(i),
        );
        let update = ObservedUpdate {
            events: vec![e.clone()],
            ..Default::default()
        };
        assert!(
            store
                .update_observed(&db.id, &update)
                .await
                .expect("observe")
        );
        written.push(e);
    }
    written
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
    store
        .insert_database(&db, &[])
        .await
        .expect("insert database");
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
    store
        .insert_database(&full, &[])
        .await
        .expect("insert database");
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
        store
            .insert_database(&db, &[])
            .await
            .expect("insert database");
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

    assert!(
        store
            .finalize_deletion(&dbs[4].id, &[])
            .await
            .expect("finalize")
    );
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
        .insert_database(&foreign, &[])
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
        store.insert_database(&dup, &[]).await,
        "database with a taken name",
    );
    assert_eq!(store.get_database(&dup.id).await.expect("get"), None);

    let same_id = sample_database(&t.id, &first.id, "orders-2");
    assert_conflict(
        store.insert_database(&same_id, &[]).await,
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
        store.insert_database(&dup, &[]).await,
        "name of a deleting database",
    );
    assert!(
        store
            .finalize_deletion(&first.id, &[])
            .await
            .expect("finalize")
    );
    assert_eq!(
        get_db(store, &first.id).await.status,
        DatabaseStatus::Deleted
    );
    store
        .insert_database(&dup, &[])
        .await
        .expect("reuse a freed name");
    assert_eq!(get_db(store, &dup.id).await.name, "orders");

    // And again: several deleted records may share a name.
    assert!(
        store
            .finalize_deletion(&dup.id, &[])
            .await
            .expect("finalize")
    );
    insert_database(store, &t.id, "orders").await;
    assert!(
        !store
            .finalize_deletion("db-missing", &[])
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
    assert!(store.insert_operation(&op, &[]).await.expect("insert"));
    assert_eq!(get_op(store, &op.id).await, stored_operation(op.clone()));

    let mut again = op.clone();
    again.status = OperationStatus::Pending;
    again.attempts = 0;
    assert!(!store.insert_operation(&again, &[]).await.expect("insert"));
    assert_eq!(get_op(store, &op.id).await, stored_operation(op.clone()));

    let plain = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
    assert!(store.insert_operation(&plain, &[]).await.expect("insert"));
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
        assert!(store.insert_operation(&op, &[]).await.expect("insert"));
        ops.push(stored_operation(op));
    }
    let foreign = sample_operation(
        &other_db,
        &format!("{prefix}-x"),
        base - Duration::minutes(1),
    );
    assert!(store.insert_operation(&foreign, &[]).await.expect("insert"));

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
    assert!(store.insert_operation(&op, &[]).await.expect("insert"));

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
    assert!(store.insert_operation(&op, &[]).await.expect("insert"));
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
    assert!(store.insert_operation(&failed, &[]).await.expect("insert"));
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

/// Pause, deletion protection and policy, and restarts: desired fields
/// round-trip and are set by desired changes; their observed counterparts
/// by observed updates, the restart count only ever raised.
pub async fn lifecycle_fields(store: &dyn Store) {
    let t = new_tenant(store).await;
    let plain = insert_database(store, &t.id, "lifecycle").await;
    let before = get_db(store, &plain.id).await;
    assert_eq!(
        (
            before.paused,
            before.current_paused,
            before.deletion_protection,
            before.deletion_policy,
            before.restarts,
            before.current_restarts
        ),
        (false, false, false, OnDelete::Wipeout, 0, 0),
        "defaults"
    );

    let mut set = sample_database(&t.id, &format!("db-{}", random_token(12)), "lifecycle-set");
    set.paused = true;
    set.current_paused = true;
    set.deletion_protection = true;
    set.deletion_policy = OnDelete::Halt;
    set.restarts = 3;
    set.current_restarts = 2;
    store
        .insert_database(&set, &[])
        .await
        .expect("insert database");
    assert_eq!(get_db(store, &set.id).await, stored_database(set));

    // A desired change sets them, and nothing else but the generation.
    let change = DesiredChange {
        paused: Some(true),
        deletion_protection: Some(true),
        deletion_policy: Some(OnDelete::Delete),
        restarts: Some(1),
        ..Default::default()
    };
    let after = store
        .update_desired(&plain.id, before.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    let mut want = before.clone();
    want.paused = true;
    want.deletion_protection = true;
    want.deletion_policy = OnDelete::Delete;
    want.restarts = 1;
    want.generation += 1;
    want.updated_at = after.updated_at;
    assert_eq!(after, want, "only the named fields and the generation");
    assert_eq!(get_db(store, &plain.id).await, after);

    // `None` keeps a field; `Some(false)` clears a flag.
    let change = DesiredChange {
        paused: Some(false),
        ..Default::default()
    };
    let after = store
        .update_desired(&plain.id, after.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    assert_eq!(
        (
            after.paused,
            after.deletion_protection,
            after.deletion_policy,
            after.restarts
        ),
        (false, true, OnDelete::Delete, 1)
    );
    let mut generation = after.generation;
    for policy in OnDelete::ALL {
        let change = DesiredChange {
            deletion_policy: Some(policy),
            deletion_protection: Some(false),
            ..Default::default()
        };
        generation = store
            .update_desired(&plain.id, generation, &change)
            .await
            .expect("update")
            .expect("generation matched")
            .generation;
        let got = get_db(store, &plain.id).await;
        assert_eq!(
            (got.deletion_policy, got.deletion_protection),
            (policy, false)
        );
    }
    let desired = get_db(store, &plain.id).await;

    // Observed: set by observed updates, desired fields untouched.
    let observe = |paused, restarts| ObservedUpdate {
        current_paused: paused,
        current_restarts: restarts,
        ..Default::default()
    };
    assert!(
        store
            .update_observed(&plain.id, &observe(Some(true), Some(2)))
            .await
            .expect("observe")
    );
    let got = get_db(store, &plain.id).await;
    assert_eq!((got.current_paused, got.current_restarts), (true, 2));
    assert_eq!(
        (got.paused, got.restarts, got.generation),
        (desired.paused, desired.restarts, desired.generation),
        "desired untouched"
    );
    assert!(
        store
            .update_observed(&plain.id, &observe(None, Some(1)))
            .await
            .expect("observe")
    );
    let got = get_db(store, &plain.id).await;
    assert_eq!(
        (got.current_paused, got.current_restarts),
        (true, 2),
        "a late, older restart count changes nothing"
    );
    assert!(
        store
            .update_observed(&plain.id, &observe(Some(false), Some(5)))
            .await
            .expect("observe")
    );
    assert!(
        store
            .update_observed(&plain.id, &observe(None, None))
            .await
            .expect("observe")
    );
    let got = get_db(store, &plain.id).await;
    assert_eq!((got.current_paused, got.current_restarts), (false, 5));
    // And desired changes leave observed fields alone.
    let change = DesiredChange {
        paused: Some(true),
        restarts: Some(6),
        ..Default::default()
    };
    let got = store
        .update_desired(&plain.id, got.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    assert_eq!(
        (
            got.paused,
            got.restarts,
            got.current_paused,
            got.current_restarts
        ),
        (true, 6, false, 5)
    );
}

/// Newest first by `(at, id)`: the order `list_events` returns.
fn newest_first(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    events
}

async fn all_events(store: &dyn Store, database_id: &str) -> Vec<Event> {
    store
        .list_events(&EventQuery {
            database_id: database_id.to_string(),
            before: None,
            limit: None,
        })
        .await
        .expect("list events")
}

/// Every event of the database, read in pages of `limit` along the cursor.
async fn paged_events(store: &dyn Store, database_id: &str, limit: usize) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_events(&EventQuery {
                database_id: database_id.to_string(),
                before: before.clone(),
                limit: Some(limit),
            })
            .await
            .expect("list events");
        assert!(page.len() <= limit, "a page holds at most its limit");
        let Some(last) = page.last() else {
            return seen;
        };
        before = Some((last.at, last.id.clone()));
        seen.extend(page);
    }
}

/// Events written with the writes that cause them are listed at once,
/// before and after they are flushed, and only when the write happened.
pub async fn events_ride_with_writes(store: &dyn Store) {
    // Start from empty outboxes, so the flush below counts only ours.
    store.flush_events().await.expect("flush");
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "chronicle").await;
    let other = insert_database(store, &t.id, "chronicle-other").await;
    let base = ms(Utc::now()) - Duration::minutes(10);
    let at = |i: i64| base + Duration::milliseconds(10 * i);
    let event =
        |type_, i: i64| Event::new(&db, type_, Some("dbk_test"), format!("event {i}"), at(i));
    let mut want: Vec<Event> = Vec::new();
    let mut lost: Vec<Event> = Vec::new();

    async fn check(store: &dyn Store, id: &str, want: &[Event], lost: &[Event], when: &str) {
        let got = all_events(store, id).await;
        assert_eq!(got, newest_first(want.to_vec()), "{when}");
        for l in lost {
            assert!(
                !got.iter().any(|e| e.id == l.id),
                "{when}: {l:?} not written"
            );
        }
    }

    // update_desired: a stale generation writes no event.
    let e = event(EventType::DesiredChanged, 0);
    let stale = DesiredChange {
        replicas: Some(3),
        events: vec![e.clone()],
        ..Default::default()
    };
    assert_eq!(
        store
            .update_desired(&db.id, db.generation + 1, &stale)
            .await
            .expect("update"),
        None
    );
    lost.push(e);
    check(store, &db.id, &want, &lost, "stale update_desired").await;
    let e = event(EventType::DesiredChanged, 1);
    let change = DesiredChange {
        replicas: Some(3),
        status: Some(DatabaseStatus::Updating),
        events: vec![e.clone()],
        ..Default::default()
    };
    let updated = store
        .update_desired(&db.id, db.generation, &change)
        .await
        .expect("update")
        .expect("generation matched");
    want.push(e);
    check(store, &db.id, &want, &lost, "update_desired").await;

    // update_observed, of this database and of another one.
    let (e1, e2) = (
        event(EventType::StatusChanged, 2),
        event(EventType::StatusChanged, 3),
    );
    let observed = ObservedUpdate {
        status: Some(DatabaseStatus::Ready),
        events: vec![e1.clone(), e2.clone()],
        ..Default::default()
    };
    assert!(
        store
            .update_observed(&db.id, &observed)
            .await
            .expect("observe")
    );
    want.extend([e1, e2]);
    let foreign = Event::new(&other, EventType::StatusChanged, None, "other", at(2));
    let observed = ObservedUpdate {
        status: Some(DatabaseStatus::Ready),
        events: vec![foreign.clone()],
        ..Default::default()
    };
    assert!(
        store
            .update_observed(&other.id, &observed)
            .await
            .expect("observe")
    );
    let e = event(EventType::StatusChanged, 4);
    let missing = ObservedUpdate {
        status: Some(DatabaseStatus::Ready),
        events: vec![e.clone()],
        ..Default::default()
    };
    assert!(
        !store
            .update_observed("db-missing", &missing)
            .await
            .expect("observe")
    );
    lost.push(e);
    check(store, &db.id, &want, &lost, "update_observed").await;
    assert_eq!(all_events(store, &other.id).await, vec![foreign.clone()]);

    // insert_operation: only a new operation writes its events.
    let op = sample_operation(&updated, &format!("op-{}", random_token(16)), Utc::now());
    let planned = Event::of_operation(&op, EventType::OperationPlanned, "planned", at(5));
    assert!(
        store
            .insert_operation(&op, std::slice::from_ref(&planned))
            .await
            .expect("insert")
    );
    want.push(planned.clone());
    let e = event(EventType::OperationPlanned, 6);
    assert!(
        !store
            .insert_operation(&op, std::slice::from_ref(&e))
            .await
            .expect("insert")
    );
    lost.push(e);
    check(store, &db.id, &want, &lost, "insert_operation").await;

    // update_operation and update_claimed_operation: only when the status
    // or the claim holds.
    let e = event(EventType::OperationStarted, 7);
    let wrong = OperationUpdate {
        attempts: Some(1),
        events: vec![e.clone()],
        ..Default::default()
    };
    assert_eq!(
        store
            .update_operation(&op.id, &[OperationStatus::Running], &wrong)
            .await
            .expect("update"),
        None
    );
    lost.push(e);
    let now = Utc::now();
    store
        .claim_operation(&op.id, now, now + Duration::seconds(30), "w1")
        .await
        .expect("claim")
        .expect("pending is claimable");
    let e = event(EventType::OperationStarted, 8);
    let lost_claim = OperationUpdate {
        ops_request_name: Some(Some(op.ops_request_name_for_attempt())),
        events: vec![e.clone()],
        ..Default::default()
    };
    assert_eq!(
        store
            .update_claimed_operation(&op.id, "w2", &lost_claim)
            .await
            .expect("update"),
        None
    );
    lost.push(e);
    let started = Event::of_operation(&op, EventType::OperationStarted, "started", at(9));
    let start = OperationUpdate {
        ops_request_name: Some(Some(op.ops_request_name_for_attempt())),
        events: vec![started.clone()],
        ..Default::default()
    };
    store
        .update_claimed_operation(&op.id, "w1", &start)
        .await
        .expect("update")
        .expect("the holder writes");
    want.push(started);
    let succeeded = Event::of_operation(&op, EventType::OperationSucceeded, "done", at(10));
    let done = OperationUpdate {
        status: Some(OperationStatus::Succeeded),
        events: vec![succeeded.clone()],
        ..Default::default()
    };
    store
        .update_operation(&op.id, &[OperationStatus::Running], &done)
        .await
        .expect("update")
        .expect("running");
    want.push(succeeded);
    check(store, &db.id, &want, &lost, "operation updates").await;

    // Deletion: requested (then no more desired changes), then finalized once.
    let e = event(EventType::DeletionRequested, 11);
    let delete = DesiredChange {
        delete: true,
        status: Some(DatabaseStatus::Deleting),
        events: vec![e.clone()],
        ..Default::default()
    };
    let deleting = store
        .update_desired(&db.id, updated.generation, &delete)
        .await
        .expect("update")
        .expect("generation matched");
    want.push(e);
    let e = event(EventType::DesiredChanged, 12);
    let late = DesiredChange {
        replicas: Some(5),
        events: vec![e.clone()],
        ..Default::default()
    };
    assert_eq!(
        store
            .update_desired(&db.id, deleting.generation, &late)
            .await
            .expect("update"),
        None
    );
    lost.push(e);
    let e = event(EventType::Deleted, 13);
    assert!(
        store
            .finalize_deletion(&db.id, std::slice::from_ref(&e))
            .await
            .expect("finalize")
    );
    want.push(e);
    let e = event(EventType::Deleted, 14);
    store
        .finalize_deletion(&db.id, std::slice::from_ref(&e))
        .await
        .expect("finalize again");
    lost.push(e);
    let e = Event::new(&db, EventType::Deleted, None, "missing", at(15));
    assert!(
        !store
            .finalize_deletion("db-missing", std::slice::from_ref(&e))
            .await
            .expect("finalize")
    );
    lost.push(e);
    assert_eq!(get_db(store, &db.id).await.status, DatabaseStatus::Deleted);
    check(
        store,
        &db.id,
        &want,
        &lost,
        "deletion (events of a deleted database stay)",
    )
    .await;

    // An event copied to the history but still in its outbox (a flush that
    // stopped halfway) is listed once.
    store.insert_event(&want[1]).await.expect("insert event");
    check(store, &db.id, &want, &lost, "copied, not yet taken out").await;

    // Flushing moves them (or finds nothing to move where they were written
    // to the history directly) and changes nothing a reader sees.
    let moved = store.flush_events().await.expect("flush");
    assert!(
        moved == 0 || moved == want.len() + 1,
        "moved {moved}: none, or the {} written with writes",
        want.len() + 1
    );
    check(store, &db.id, &want, &lost, "after a flush").await;
    assert_eq!(
        store.flush_events().await.expect("flush"),
        0,
        "nothing left"
    );
    check(store, &db.id, &want, &lost, "after a second flush").await;
    assert_eq!(all_events(store, &other.id).await, vec![foreign]);

    // insert_event is idempotent by id, also for events written with writes.
    store
        .insert_event(&want[0])
        .await
        .expect("insert event again");
    let fresh = event(EventType::CredentialsRead, 16);
    store.insert_event(&fresh).await.expect("insert event");
    store
        .insert_event(&fresh)
        .await
        .expect("insert event twice");
    want.push(fresh);
    check(store, &db.id, &want, &lost, "insert_event twice").await;
}

/// Paging newest first works across events in the history and events not
/// flushed yet, with times that interleave and tie.
pub async fn events_page_across_flushes(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "pages").await;
    let base = ms(Utc::now()) - Duration::minutes(5);
    let mut generation = db.generation;
    let mut written = Vec::new();
    for round in 0..2_i64 {
        for i in 0..3_i64 {
            // Round 0 takes the even slots, round 1 the odd ones; within a
            // slot a direct and an observed event share a time.
            let at = base + Duration::milliseconds(10 * (2 * i + round));
            let direct = Event::new(&db, EventType::CredentialsRead, Some("dbk_p"), "read", at);
            store.insert_event(&direct).await.expect("insert event");
            let observed = Event::new(&db, EventType::StatusChanged, None, "status", at);
            let update = ObservedUpdate {
                observed_generation: Some(generation),
                events: vec![observed.clone()],
                ..Default::default()
            };
            assert!(
                store
                    .update_observed(&db.id, &update)
                    .await
                    .expect("observe")
            );
            let desired = Event::new(
                &db,
                EventType::DesiredChanged,
                Some("dbk_p"),
                "desired",
                at + Duration::milliseconds(1),
            );
            let change = DesiredChange {
                storage_gb: Some(u32::try_from(20 + 2 * i + round).expect("small")),
                events: vec![desired.clone()],
                ..Default::default()
            };
            generation = store
                .update_desired(&db.id, generation, &change)
                .await
                .expect("update")
                .expect("generation matched")
                .generation;
            let op = sample_operation(&db, &format!("op-{}", random_token(16)), Utc::now());
            let planned = Event::of_operation(
                &op,
                EventType::OperationPlanned,
                "planned",
                at + Duration::milliseconds(2),
            );
            assert!(
                store
                    .insert_operation(&op, std::slice::from_ref(&planned))
                    .await
                    .expect("insert")
            );
            written.extend([direct, observed, desired, planned]);
        }
        if round == 0 {
            store.flush_events().await.expect("flush");
        }
    }
    let want = newest_first(written);
    async fn check(store: &dyn Store, id: &str, want: &[Event], when: &str) {
        assert_eq!(all_events(store, id).await, want, "{when}");
        for limit in [1, 2, 3, 5, 30] {
            assert_eq!(
                paged_events(store, id, limit).await,
                want,
                "{when}: pages of {limit}"
            );
        }
        // A page from the middle: strictly older than the cursor.
        let cursor = &want[6];
        let page = store
            .list_events(&EventQuery {
                database_id: id.to_string(),
                before: Some((cursor.at, cursor.id.clone())),
                limit: Some(4),
            })
            .await
            .expect("list events");
        assert_eq!(page, want[7..11], "{when}: page after a cursor");
    }
    check(store, &db.id, &want, "half flushed").await;
    store.flush_events().await.expect("flush");
    check(store, &db.id, &want, "flushed").await;
    store.flush_events().await.expect("flush");
    check(store, &db.id, &want, "flushed twice").await;
}

/// An operation of `db` in `status`, inserted; `named`: with the name of
/// its attempt's OpsRequest recorded.
async fn insert_op(
    store: &dyn Store,
    db: &Database,
    status: OperationStatus,
    named: bool,
) -> Operation {
    let mut op = sample_operation(db, &format!("op-{}", random_token(16)), Utc::now());
    op.status = status;
    op.attempts = 1;
    if named {
        op.ops_request_name = Some(op.ops_request_name_for_attempt());
    }
    if status == OperationStatus::Running {
        op.claimed_until = Some(Utc::now() + Duration::seconds(60));
        op.claimed_by = Some("w0".into());
    }
    if status == OperationStatus::Failed {
        op.error = Some("OpsRequest failed".into());
        op.next_attempt_at = Some(Utc::now() + Duration::seconds(30));
    }
    assert!(store.insert_operation(&op, &[]).await.expect("insert"));
    stored_operation(op)
}

fn cancelled_event(db: &Database, op: &Operation) -> Event {
    Event {
        api_key: Some("dbk_cancel".into()),
        operation_id: Some(op.id.clone()),
        ..Event::new(
            db,
            EventType::OperationCancelled,
            None,
            "cancelled",
            ms(Utc::now()),
        )
    }
}

/// A cancel ends the operation only while no KubeDB object exists for its
/// current attempt: pending or running with no name recorded, or failed.
pub async fn cancel_operation(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "cancels").await;
    let now = Utc::now();
    let mut want_events = Vec::new();
    let mut lost = Vec::new();

    // Cancellable: the record ends cancelled, at `now`, with no claim.
    let pending = insert_op(store, &db, OperationStatus::Pending, false).await;
    let running = insert_op(store, &db, OperationStatus::Running, false).await;
    let failed = insert_op(store, &db, OperationStatus::Failed, true).await;
    for (what, op) in [
        ("pending", pending),
        ("running, unnamed", running),
        ("failed", failed),
    ] {
        let e = cancelled_event(&db, &op);
        let got = store
            .cancel_operation(&op.id, now, std::slice::from_ref(&e))
            .await
            .expect("cancel")
            .unwrap_or_else(|| panic!("{what} is cancellable"));
        let mut want = op.clone();
        want.status = OperationStatus::Cancelled;
        want.finished_at = Some(ms(now));
        want.claimed_until = None;
        want.updated_at = got.updated_at;
        assert_eq!(
            got, want,
            "{what}: only status, finished_at and the claim change"
        );
        assert_eq!(get_op(store, &op.id).await, got);
        want_events.push(e);
        // Cancelled is final: no second cancel, no claim.
        let e = cancelled_event(&db, &op);
        assert_eq!(
            store
                .cancel_operation(&op.id, now, std::slice::from_ref(&e))
                .await
                .expect("cancel"),
            None,
            "{what}: cancelled twice"
        );
        lost.push(e);
        let later = now + Duration::days(1);
        assert_eq!(
            store
                .claim_operation(&op.id, later, later, "w9")
                .await
                .expect("claim"),
            None,
            "{what}: a cancelled operation is not claimed"
        );
    }

    // Not cancellable: a KubeDB object may exist, or the operation is over.
    let named = insert_op(store, &db, OperationStatus::Running, true).await;
    let named_pending = insert_op(store, &db, OperationStatus::Pending, true).await;
    let succeeded = insert_op(store, &db, OperationStatus::Succeeded, false).await;
    let superseded = insert_op(store, &db, OperationStatus::Superseded, false).await;
    for (what, op) in [
        ("running with its OpsRequest named", named),
        ("pending with a name", named_pending),
        ("succeeded", succeeded),
        ("superseded", superseded),
    ] {
        let e = cancelled_event(&db, &op);
        assert_eq!(
            store
                .cancel_operation(&op.id, now, std::slice::from_ref(&e))
                .await
                .expect("cancel"),
            None,
            "{what} is not cancellable"
        );
        assert_eq!(get_op(store, &op.id).await, op, "{what}: unchanged");
        lost.push(e);
    }
    let e = Event::new(&db, EventType::OperationCancelled, None, "missing", ms(now));
    assert_eq!(
        store
            .cancel_operation("op-missing", now, std::slice::from_ref(&e))
            .await
            .expect("cancel"),
        None
    );
    lost.push(e);

    let got = all_events(store, &db.id).await;
    assert_eq!(
        got,
        newest_first(want_events),
        "only the cancels that happened"
    );
    for l in &lost {
        assert!(!got.iter().any(|e| e.id == l.id), "{l:?} not written");
    }
}

/// Concurrent cancels of one operation: exactly one ends it, and only its
/// event is written.
pub async fn concurrent_cancel_operation(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "cancel-race").await;
    let op = insert_op(store, &db, OperationStatus::Pending, false).await;
    let events: Vec<Event> = (0..8).map(|_| cancelled_event(&db, &op)).collect();
    let now = Utc::now();
    let results = join_all(
        events
            .iter()
            .map(|e| store.cancel_operation(&op.id, now, std::slice::from_ref(e))),
    )
    .await;
    let winners: Vec<(&Event, Operation)> = events
        .iter()
        .zip(results)
        .filter_map(|(e, r)| r.expect("cancel").map(|op| (e, op)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one cancel wins");
    assert_eq!(winners[0].1.status, OperationStatus::Cancelled);
    assert_eq!(get_op(store, &op.id).await, winners[0].1);
    assert_eq!(all_events(store, &db.id).await, vec![winners[0].0.clone()]);
}

/// A cancel racing the worker that records the OpsRequest's name (it
/// creates the object next): exactly one of them succeeds, every time.
pub async fn cancel_races_worker(store: &dyn Store) {
    let t = new_tenant(store).await;
    let db = insert_database(store, &t.id, "cancel-worker").await;
    for round in 0..8 {
        let op = insert_op(store, &db, OperationStatus::Pending, false).await;
        let now = Utc::now();
        store
            .claim_operation(&op.id, now, now + Duration::seconds(30), "w")
            .await
            .expect("claim")
            .expect("pending is claimable");
        let cancel_event = cancelled_event(&db, &op);
        let started = Event::of_operation(&op, EventType::OperationStarted, "started", ms(now));
        let record_name = OperationUpdate {
            ops_request_name: Some(Some(op.ops_request_name_for_attempt())),
            events: vec![started.clone()],
            ..Default::default()
        };
        let cancel = store.cancel_operation(&op.id, now, std::slice::from_ref(&cancel_event));
        let record = store.update_claimed_operation(&op.id, "w", &record_name);
        // Alternate which is polled first.
        let (cancelled, recorded) = if round % 2 == 0 {
            futures::join!(cancel, record)
        } else {
            let (r, c) = futures::join!(record, cancel);
            (c, r)
        };
        let (cancelled, recorded) = (cancelled.expect("cancel"), recorded.expect("update"));
        let got = get_op(store, &op.id).await;
        let events = all_events(store, &db.id).await;
        let has = |e: &Event| events.iter().any(|x| x.id == e.id);
        match (cancelled, recorded) {
            (Some(c), None) => {
                assert_eq!(got, c);
                assert_eq!(
                    (got.status, got.ops_request_name),
                    (OperationStatus::Cancelled, None)
                );
                assert!(
                    has(&cancel_event) && !has(&started),
                    "only the cancel's event"
                );
            }
            (None, Some(r)) => {
                assert_eq!(got, r);
                assert_eq!(got.status, OperationStatus::Running);
                assert_eq!(
                    got.ops_request_name,
                    Some(op.ops_request_name_for_attempt())
                );
                assert!(
                    has(&started) && !has(&cancel_event),
                    "only the worker's event"
                );
            }
            (c, r) => panic!("round {round}: cancel {c:?} and worker {r:?}: exactly one wins"),
        }
    }
}
