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

    store_suite::run_all(&store).await;
    stale_write_lock_is_taken_over(&store).await;
    store.database().drop().await.expect("drop test database");
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
