//! The store conformance suite against every adapter.
//!
//! The MongoDB test needs a server: run `just rig-up` and
//! `source target/rig/env` (it exports MONGODB_URI) first.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_core::domain::{Tenant, random_token};
use dbaas_store::Store;
use dbaas_store::embedded::SqliteStore;
use dbaas_store::mongo::MongoStore;
use dbaas_testkit::store_suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    let store = SqliteStore::in_memory().expect("open in memory");
    store_suite::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_survives_reopen() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("store-{}", random_token(8)));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join("dbaas.sqlite");

    let tenant = Tenant {
        id: format!("tn-{}", random_token(12)),
        name: format!("persist-{}", random_token(6)),
        created_at: Utc::now(),
    };
    let (db, op, total) = {
        let store = SqliteStore::open(&path).expect("open file");
        store_suite::run_all(&store).await;
        store.insert_tenant(&tenant).await.expect("insert tenant");
        let dbs = store
            .list_databases(&Default::default())
            .await
            .expect("list");
        let db = dbs.last().expect("the suite left databases").clone();
        let ops = store
            .list_operations(&Default::default())
            .await
            .expect("list");
        let op = ops.first().expect("the suite left operations").clone();
        let total = store.add_to_counter("persisted", 2.5).await.expect("add");
        (db, op, total)
    };

    let store = SqliteStore::open(&path).expect("reopen file");
    let got = store
        .get_tenant(&tenant.id)
        .await
        .expect("get")
        .expect("tenant kept");
    assert_eq!(got.name, tenant.name);
    assert_eq!(store.get_database(&db.id).await.expect("get"), Some(db));
    assert_eq!(store.get_operation(&op.id).await.expect("get"), Some(op));
    assert_eq!(
        store.add_to_counter("persisted", 0.0).await.expect("add"),
        total
    );
    // The reopened file still enforces the schema's unique names.
    let dup = Tenant {
        id: format!("tn-{}", random_token(12)),
        ..tenant
    };
    assert!(matches!(
        store.insert_tenant(&dup).await,
        Err(dbaas_core::Error::Conflict(_))
    ));
    drop(store);
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo() {
    let uri = std::env::var("MONGODB_URI").expect(
        "MONGODB_URI is not set: start the test servers with `just rig-up`, \
         then `source target/rig/env` and run the tests again",
    );
    let name = format!("dbaas_conformance_{}", random_token(8));
    let store = MongoStore::new(&uri, &name).await.expect("create store");
    store.ensure_indexes().await.expect("create indexes");
    // Creating the indexes again (another process starting) is harmless.
    let second = MongoStore::new(&uri, &name).await.expect("create store");
    second.ensure_indexes().await.expect("create indexes again");

    assert!(
        store.uses_write_locks().await.expect("ask the server"),
        "FerretDB is recognised as needing write locks"
    );
    assert!(
        !store
            .clone()
            .with_write_locks(dbaas_store::WriteLocks::Never)
            .uses_write_locks()
            .await
            .expect("set, not asked")
    );
    store_suite::run_all(&store).await;
    stale_write_lock_is_taken_over(&store).await;
    cancelled_writes_leave_no_lock(&store).await;
    documents_without_new_fields(&store).await;
    full_outboxes_move_by_themselves(&store).await;
    batch_writes_wait_for_held_locks(&store).await;
    store.database().drop().await.expect("drop test database");
}

/// Writes move a record's outbox to the `events` collection once it fills,
/// without anyone calling a flush; what a reader sees does not change.
async fn full_outboxes_move_by_themselves(store: &MongoStore) {
    use dbaas_core::domain::{Database, Event, EventType, Size};
    use dbaas_core::engine::Engine;
    use dbaas_store::EventQuery;
    use mongodb::bson::{Document, doc};

    // Milliseconds: what the store keeps of a time.
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    let db = Database::declared(
        format!("tn-{}", random_token(12)),
        format!("busy-{}", random_token(6)),
        Engine::Postgres,
        Size::Small,
        1,
        10,
        now,
    );
    let created = Event::new(&db, EventType::Created, None, "declared", now);
    store
        .insert_database(&db, std::slice::from_ref(&created))
        .await
        .expect("insert database");
    let mut written = vec![created];
    written.extend(store_suite::observe_events(store, &db, 20, now).await);
    let raw = store
        .database()
        .collection::<Document>("databases")
        .find_one(doc! {"_id": &db.id})
        .await
        .expect("find")
        .expect("kept");
    let outbox = raw.get_array("pending_events").map_or(0, Vec::len);
    assert!(outbox < 8, "{outbox} events still in the outbox");
    let moved = store
        .database()
        .collection::<Document>("events")
        .count_documents(doc! {"database_id": &db.id})
        .await
        .expect("count");
    assert_eq!(
        moved as usize + outbox,
        written.len(),
        "each event in one place"
    );
    written.reverse();
    let query = EventQuery {
        database_id: db.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        store.list_events(&query).await.expect("list events"),
        written
    );
}

/// Documents written before the lifecycle fields and the outboxes existed
/// read back with the fields' defaults, and take events and flushes.
async fn documents_without_new_fields(store: &MongoStore) {
    use dbaas_core::domain::{Database, Event, EventType, OnDelete, Size};
    use dbaas_core::engine::Engine;
    use dbaas_store::{EventQuery, ObservedUpdate};
    use mongodb::bson::{Document, doc};

    // Empty the outboxes the suite left, so the flush below counts ours.
    store.flush_events().await.expect("flush");
    let mut db = Database::declared(
        format!("tn-{}", random_token(12)),
        format!("old-{}", random_token(6)),
        Engine::Postgres,
        Size::Small,
        1,
        10,
        Utc::now(),
    );
    db.paused = true;
    db.deletion_policy = OnDelete::Halt;
    db.current_restarts = 3;
    store
        .insert_database(&db, &[])
        .await
        .expect("insert database");
    store
        .database()
        .collection::<Document>("databases")
        .update_one(
            doc! {"_id": &db.id},
            doc! {"$unset": {
                "paused": "", "current_paused": "", "deletion_protection": "",
                "deletion_policy": "", "restarts": "", "current_restarts": "",
            }},
        )
        .await
        .expect("strip fields");
    let got = store
        .get_database(&db.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        (
            got.paused,
            got.current_paused,
            got.deletion_protection,
            got.deletion_policy,
            got.restarts,
            got.current_restarts
        ),
        (false, false, false, OnDelete::Wipeout, 0, 0)
    );
    // `$max` and `$push` on fields the document lacks.
    let event = Event::new(&got, EventType::StatusChanged, None, "old", Utc::now());
    let update = ObservedUpdate {
        current_restarts: Some(2),
        events: vec![event.clone()],
        ..Default::default()
    };
    assert!(
        store
            .update_observed(&db.id, &update)
            .await
            .expect("observe")
    );
    let got = store
        .get_database(&db.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(got.current_restarts, 2);
    let query = EventQuery {
        database_id: db.id.clone(),
        ..Default::default()
    };
    let listed = store.list_events(&query).await.expect("list events");
    assert_eq!(
        listed.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&event.id]
    );
    assert_eq!(store.flush_events().await.expect("flush"), 1);
    assert_eq!(
        store.list_events(&query).await.expect("list events"),
        listed
    );
    let outbox = store
        .database()
        .collection::<Document>("databases")
        .find_one(doc! {"_id": &db.id})
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(
        outbox
            .get_array("pending_events")
            .map(Vec::len)
            .unwrap_or(0),
        0,
        "the outbox is emptied"
    );
}

/// A write whose caller gives up at any point (a request timing out drops
/// its future) leaves no lock behind: the next writer is not kept waiting.
async fn cancelled_writes_leave_no_lock(store: &MongoStore) {
    use dbaas_core::domain::{Database, Size};
    use dbaas_core::engine::Engine;
    use dbaas_store::DesiredChange;
    use mongodb::bson::doc;

    let db = Database::declared(
        format!("tn-{}", random_token(12)),
        format!("cut-{}", random_token(6)),
        Engine::Postgres,
        Size::Small,
        1,
        10,
        Utc::now(),
    );
    store.insert_database(&db, &[]).await.expect("insert");
    let change = |g: u32| DesiredChange {
        storage_gb: Some(10 + g),
        ..Default::default()
    };
    // Cut off after 0.1 ms, 0.3 ms, ... up to ~10 ms: some before the lock,
    // some holding it, some after the write.
    let mut generation = db.generation;
    for step in 0..40_u32 {
        let cut = Duration::from_micros(100 + 250 * u64::from(step));
        if let Ok(written) =
            tokio::time::timeout(cut, store.update_desired(&db.id, generation, &change(step))).await
            && let Some(d) = written.expect("update")
        {
            generation = d.generation;
        }
    }
    let locks = store
        .database()
        .collection::<mongodb::bson::Document>("locks");
    let key = format!("databases/{}", db.id);
    let deadline = Instant::now() + Duration::from_secs(5);
    while locks
        .count_documents(doc! {"_id": &key})
        .await
        .expect("count locks")
        > 0
    {
        assert!(Instant::now() < deadline, "a cancelled write left its lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let current = store
        .get_database(&db.id)
        .await
        .expect("get")
        .expect("kept");
    let started = Instant::now();
    store
        .update_desired(&db.id, current.generation, &change(99))
        .await
        .expect("update")
        .expect("generation matched");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the next write waited {:?}",
        started.elapsed()
    );
}

/// A batch write whose record another writer holds writes that record
/// once the lock is free, the rest at once, and leaves no lock behind.
async fn batch_writes_wait_for_held_locks(store: &MongoStore) {
    use dbaas_core::domain::{Database, DatabaseStatus, Size};
    use dbaas_core::engine::Engine;
    use dbaas_store::BeginOperation;
    use mongodb::bson::doc;

    let tenant = format!("tn-{}", random_token(12));
    let mut dbs = Vec::new();
    for i in 0..3 {
        let db = Database::declared(
            &tenant,
            format!("held-{i}"),
            Engine::Postgres,
            Size::Small,
            1,
            10,
            Utc::now(),
        );
        store.insert_database(&db, &[]).await.expect("insert");
        dbs.push(db);
    }
    let locks = store
        .database()
        .collection::<mongodb::bson::Document>("locks");
    // Another writer holds record 1 for 300 ms, then lets go.
    let hold = |id: &str| {
        let (locks, key) = (locks.clone(), format!("databases/{id}"));
        async move {
            let expires =
                mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() + 5_000);
            locks
                .insert_one(doc! {"_id": &key, "token": "busy-writer", "expires_at": expires})
                .await
                .expect("hold a lock");
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                locks.delete_one(doc! {"_id": &key}).await.expect("let go");
            });
        }
    };
    hold(&dbs[1].id).await;
    let started = Instant::now();
    let updates = store_suite::status_updates(&dbs, DatabaseStatus::Ready);
    store
        .update_observed_many(&updates)
        .await
        .expect("update observed many");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the holder"
    );
    for db in &dbs {
        let got = store
            .get_database(&db.id)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(got.status, DatabaseStatus::Ready, "{} written", db.id);
    }

    hold(&dbs[2].id).await;
    let begins: Vec<BeginOperation> = dbs
        .iter()
        .enumerate()
        .map(|(i, db)| BeginOperation {
            database_id: db.id.clone(),
            operation_id: format!("op-held-{i}"),
            expected_seq: if i == 0 { 3 } else { 0 },
        })
        .collect();
    assert_eq!(
        store
            .begin_operations(&begins)
            .await
            .expect("begin operations"),
        vec![false, true, true]
    );
    let ours: Vec<String> = dbs.iter().map(|d| format!("databases/{}", d.id)).collect();
    assert_eq!(
        locks
            .count_documents(doc! {"_id": {"$in": ours}})
            .await
            .expect("count locks"),
        0,
        "no lock left behind"
    );
}

/// A write lock left by a writer that died does not block the record
/// beyond its lease.
async fn stale_write_lock_is_taken_over(store: &MongoStore) {
    let tenant = Tenant {
        id: format!("tn-{}", random_token(12)),
        name: format!("locks-{}", random_token(6)),
        created_at: Utc::now(),
    };
    store.insert_tenant(&tenant).await.expect("insert tenant");
    let op_id = format!("op-{}", random_token(16));
    let expired = mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() - 1_000);
    store
        .database()
        .collection::<mongodb::bson::Document>("locks")
        .insert_one(mongodb::bson::doc! {
            "_id": format!("counters/{op_id}"),
            "token": "dead-writer",
            "expires_at": expired,
        })
        .await
        .expect("plant a stale lock");
    let started = Instant::now();
    assert_eq!(store.add_to_counter(&op_id, 1.0).await.expect("add"), 1.0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn mongo_store_starts_without_a_server() {
    let started = Instant::now();
    let store = MongoStore::with_server_selection_timeout(
        "mongodb://127.0.0.1:1/",
        "unreachable",
        Duration::from_millis(300),
    )
    .await
    .expect("construction does not connect");
    assert!(started.elapsed() < Duration::from_secs(1));
    let err = store.ping().await.expect_err("no server");
    assert!(matches!(err, dbaas_core::Error::Store(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
}
