//! The queue conformance suite against every adapter.
//!
//! The Redis test needs a server: run `just rig-up` and
//! `source target/rig/env` (it exports REDIS_URL) first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use dbaas_core::domain::random_token;
use dbaas_queue::Queue;
use dbaas_queue::embedded::SqliteQueue;
use dbaas_queue::redis::RedisQueue;
use dbaas_testkit::queue_suite;

fn temp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("queue-{}", random_token(8)));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Deletes a recorded time through a second connection to the file.
fn forget_sqlite_time(path: &Path, id: &str) {
    let conn = rusqlite::Connection::open(path).expect("open queue file");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let n = conn
        .execute(
            "DELETE FROM queue_processing_since WHERE operation_id = ?1",
            [id],
        )
        .expect("delete time");
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    let queue = SqliteQueue::in_memory().expect("open in memory");
    queue_suite::run_all(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_survives_reopen() {
    let dir = temp_dir();
    let path = dir.join("queue.sqlite");
    {
        let queue = SqliteQueue::open(&path).expect("open file");
        queue_suite::run_all(&queue).await;
        queue_suite::untimed_ids_get_now(&queue, async |id: &str| forget_sqlite_time(&path, id))
            .await;
        for id in ["op-a", "op-b", "op-c"] {
            queue.enqueue(id).await.expect("enqueue");
        }
        assert_eq!(
            queue
                .dequeue(Duration::from_secs(1))
                .await
                .expect("dequeue"),
            Some("op-a".to_string())
        );
    }
    let queue = SqliteQueue::open(&path).expect("reopen file");
    assert_eq!(queue.pending().await.expect("pending"), ["op-b", "op-c"]);
    let processing = queue.processing(Utc::now()).await.expect("processing");
    assert_eq!(processing.len(), 1);
    assert_eq!(processing[0].operation_id, "op-a");
    assert!(processing[0].since.is_some_and(|t| t <= Utc::now()));
    drop(queue);
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_queue_and_store_share_a_file() {
    let dir = temp_dir();
    let path = dir.join("dbaas.sqlite");
    let store = dbaas_store::embedded::SqliteStore::open(&path).expect("open store");
    let queue = SqliteQueue::open(&path).expect("open queue");
    queue.enqueue("op-shared").await.expect("enqueue");
    dbaas_store::Store::add_to_counter(&store, "shared", 1.0)
        .await
        .expect("add");
    assert_eq!(queue.pending().await.expect("pending"), ["op-shared"]);
    drop((store, queue));
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis() {
    let url = std::env::var("REDIS_URL").expect(
        "REDIS_URL is not set: start the test servers with `just rig-up`, \
         then `source target/rig/env` and run the tests again",
    );
    let prefix = format!("dbaas-test-{}", random_token(8));
    let queue = RedisQueue::new(&url, &prefix).expect("create queue");
    queue_suite::run_all(&queue).await;

    let client = redis::Client::open(url.as_str()).expect("redis url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let since_key = format!("{prefix}:processing_since");
    queue_suite::untimed_ids_get_now(&queue, async |id: &str| {
        let n: i64 = redis::cmd("HDEL")
            .arg(&since_key)
            .arg(id)
            .query_async(&mut conn.clone())
            .await
            .expect("HDEL");
        assert_eq!(n, 1);
    })
    .await;
}

#[tokio::test]
async fn redis_queue_starts_without_a_server() {
    let started = Instant::now();
    let queue = RedisQueue::new("redis://127.0.0.1:1/", "unreachable").expect("no connection yet");
    let err = queue.ping().await.expect_err("no server");
    assert!(matches!(err, dbaas_core::Error::Queue(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
}
