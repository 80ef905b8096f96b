//! The conformance suite every [`Queue`] adapter must pass.
//!
//! Each check starts from an empty queue and leaves it empty; give the
//! suite a queue of its own (a fresh file, a unique Redis prefix). Each
//! check panics on failure.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;

use dbaas_core::domain::random_token;
use dbaas_queue::Queue;

/// Runs every check that needs nothing but the queue.
pub async fn run_all(queue: &dyn Queue) {
    queue.ping().await.expect("ping");
    fifo(queue).await;
    dequeue_times_out(queue).await;
    ack_removes(queue).await;
    requeue_puts_back(queue).await;
    processing_times_stay(queue).await;
    concurrent_dequeuers_get_distinct_ids(queue).await;
    four_consumers_drain_each_id_once(queue).await;
}

async fn assert_empty(queue: &dyn Queue) {
    assert_eq!(
        queue.pending().await.expect("pending"),
        Vec::<String>::new()
    );
    assert_eq!(
        queue.processing(Utc::now()).await.expect("processing"),
        Vec::new()
    );
}

fn ids(n: usize) -> Vec<String> {
    let run = random_token(6);
    (0..n).map(|i| format!("op-{run}-{i:03}")).collect()
}

async fn processing_ids(queue: &dyn Queue) -> Vec<String> {
    let items = queue.processing(Utc::now()).await.expect("processing");
    items.into_iter().map(|p| p.operation_id).collect()
}

async fn take(queue: &dyn Queue) -> String {
    queue
        .dequeue(Duration::from_secs(1))
        .await
        .expect("dequeue")
        .expect("an id is pending")
}

/// Ids come out in the order they went in.
pub async fn fifo(queue: &dyn Queue) {
    assert_empty(queue).await;
    let ids = ids(3);
    for id in &ids {
        queue.enqueue(id).await.expect("enqueue");
    }
    assert_eq!(queue.pending().await.expect("pending"), ids);
    let before = Utc::now();
    for id in &ids {
        assert_eq!(&take(queue).await, id);
    }
    assert!(queue.pending().await.expect("pending").is_empty());
    let processing = queue.processing(Utc::now()).await.expect("processing");
    assert_eq!(
        processing
            .iter()
            .map(|p| p.operation_id.clone())
            .collect::<Vec<_>>(),
        ids,
        "processing lists the oldest taken first"
    );
    for p in &processing {
        let since = p.since.expect("dequeue records the time");
        assert!(
            since >= before - chrono::Duration::seconds(1),
            "{since} vs {before}"
        );
        assert!(since <= Utc::now());
    }
    for id in &ids {
        queue.ack(id).await.expect("ack");
    }
    assert_empty(queue).await;
}

/// An empty queue answers `None` once the timeout passes, not much later.
pub async fn dequeue_times_out(queue: &dyn Queue) {
    assert_empty(queue).await;
    let started = Instant::now();
    assert_eq!(queue.dequeue(Duration::ZERO).await.expect("dequeue"), None);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "zero timeout does not wait"
    );

    let started = Instant::now();
    assert_eq!(
        queue
            .dequeue(Duration::from_millis(300))
            .await
            .expect("dequeue"),
        None
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");

    // A waiting dequeue gets an id enqueued while it waits.
    let id = ids(1).remove(0);
    let (got, _) = futures::join!(queue.dequeue(Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        queue.enqueue(&id).await.expect("enqueue");
    });
    assert_eq!(got.expect("dequeue"), Some(id.clone()));
    queue.ack(&id).await.expect("ack");
    assert_empty(queue).await;
}

/// `ack` removes the id and its time.
pub async fn ack_removes(queue: &dyn Queue) {
    assert_empty(queue).await;
    let ids = ids(2);
    for id in &ids {
        queue.enqueue(id).await.expect("enqueue");
    }
    take(queue).await;
    take(queue).await;
    queue.ack(&ids[0]).await.expect("ack");
    assert_eq!(processing_ids(queue).await, [ids[1].clone()]);
    queue.ack(&ids[0]).await.expect("acking twice is harmless");
    queue.ack(&ids[1]).await.expect("ack");
    assert_empty(queue).await;
}

/// `requeue` moves a processing id to the back of the pending list.
pub async fn requeue_puts_back(queue: &dyn Queue) {
    assert_empty(queue).await;
    let ids = ids(2);
    for id in &ids {
        queue.enqueue(id).await.expect("enqueue");
    }
    assert_eq!(take(queue).await, ids[0]);
    queue.requeue(&ids[0]).await.expect("requeue");
    assert!(processing_ids(queue).await.is_empty());
    assert_eq!(
        queue.pending().await.expect("pending"),
        [ids[1].clone(), ids[0].clone()]
    );

    // An id that is not processing (already acked) is not resurrected.
    queue.requeue("op-not-processing").await.expect("requeue");
    assert_eq!(queue.pending().await.expect("pending").len(), 2);

    assert_eq!(take(queue).await, ids[1]);
    let again = take(queue).await;
    assert_eq!(again, ids[0]);
    let since = queue.processing(Utc::now()).await.expect("processing");
    assert!(
        since.iter().all(|p| p.since.is_some()),
        "a retaken id gets a new time"
    );
    for id in &ids {
        queue.ack(id).await.expect("ack");
    }
    assert_empty(queue).await;
}

/// A recorded time is kept: later calls to `processing` do not move it.
pub async fn processing_times_stay(queue: &dyn Queue) {
    assert_empty(queue).await;
    let id = ids(1).remove(0);
    queue.enqueue(&id).await.expect("enqueue");
    take(queue).await;
    let first = queue.processing(Utc::now()).await.expect("processing");
    let later = Utc::now() + chrono::Duration::hours(1);
    let second = queue.processing(later).await.expect("processing");
    assert_eq!(first, second);
    assert!(second[0].since.expect("time recorded") < later);
    queue.ack(&id).await.expect("ack");
    assert_empty(queue).await;
}

/// An id in processing without a time (its worker died between taking it
/// and recording when) gets `now` from `processing`, once. `forget_time`
/// deletes the recorded time behind the adapter's back.
pub async fn untimed_ids_get_now(queue: &dyn Queue, forget_time: impl AsyncFn(&str)) {
    assert_empty(queue).await;
    let ids = ids(2);
    for id in &ids {
        queue.enqueue(id).await.expect("enqueue");
    }
    take(queue).await;
    take(queue).await;
    forget_time(&ids[1]).await;
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis() + 3_600_000)
        .expect("time in range");
    let items = queue.processing(now).await.expect("processing");
    assert_eq!(items.len(), 2);
    assert!(
        items[0].since.expect("kept") < now,
        "timed id keeps its time"
    );
    assert_eq!(items[1].since, Some(now), "untimed id gets now");
    let later = now + chrono::Duration::hours(1);
    assert_eq!(
        queue.processing(later).await.expect("processing"),
        items,
        "given once"
    );
    for id in &ids {
        queue.ack(id).await.expect("ack");
    }
    assert_empty(queue).await;
}

/// Two dequeuers racing for one id: one gets it.
pub async fn concurrent_dequeuers_get_distinct_ids(queue: &dyn Queue) {
    assert_empty(queue).await;
    for id in ids(5) {
        queue.enqueue(&id).await.expect("enqueue");
        let (a, b) = futures::join!(
            queue.dequeue(Duration::from_millis(300)),
            queue.dequeue(Duration::from_millis(300)),
        );
        let got: Vec<String> = [a, b]
            .into_iter()
            .filter_map(|r| r.expect("dequeue"))
            .collect();
        assert_eq!(got, std::slice::from_ref(&id));
        queue.ack(&id).await.expect("ack");
    }
    assert_empty(queue).await;
}

/// 200 ids, 4 concurrent consumers: every id is taken exactly once.
pub async fn four_consumers_drain_each_id_once(queue: &dyn Queue) {
    assert_empty(queue).await;
    let all = ids(200);
    join_all(all.iter().map(|id| queue.enqueue(id)))
        .await
        .into_iter()
        .for_each(|r| r.expect("enqueue"));
    assert_eq!(queue.pending().await.expect("pending").len(), 200);

    let consumer = || async {
        let mut taken = Vec::new();
        while let Some(id) = queue
            .dequeue(Duration::from_millis(300))
            .await
            .expect("dequeue")
        {
            queue.ack(&id).await.expect("ack");
            taken.push(id);
        }
        taken
    };
    let taken = join_all((0..4).map(|_| consumer())).await;
    let total: usize = taken.iter().map(Vec::len).sum();
    assert_eq!(total, 200, "no id taken twice");
    let distinct: BTreeSet<&String> = taken.iter().flatten().collect();
    assert_eq!(distinct, all.iter().collect::<BTreeSet<_>>());
    assert_empty(queue).await;
}
