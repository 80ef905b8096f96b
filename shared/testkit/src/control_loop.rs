//! The control loop in a test's own process: a reconciler pass and workers
//! over whatever store, queue and cluster the test hands in (embedded ones,
//! the rig's real ones, or fault-injecting wrappers of either), with the
//! KubeDB stand-in optionally running in the background.
//!
//! The roles run exactly as the binaries run them; only the settings are
//! quick ([`crate::config`]). Tests change a setting by assigning to the
//! public config fields.

use std::sync::Arc;
use std::time::Duration;

use dbaas_cluster::Cluster;
use dbaas_cluster::embedded::EmbeddedCluster;
use dbaas_control::reconciler::{PassReport, Reconciler, ReconcilerConfig};
use dbaas_control::worker::{Outcome, Worker, WorkerConfig};
use dbaas_core::Error;
use dbaas_core::domain::{Database, DatabaseStatus};
use dbaas_queue::Queue;
use dbaas_queue::embedded::SqliteQueue;
use dbaas_standin::{Standin, StandinConfig};
use dbaas_store::Store;
use dbaas_store::embedded::SqliteStore;
use tokio::sync::watch;

use crate::config::{reconciler_config, worker_config};

/// The store, queue and cluster the roles use.
#[derive(Clone)]
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub cluster: Arc<dyn Cluster>,
}

impl Parts {
    /// In-memory SQLite store and queue and an in-memory cluster.
    pub fn embedded() -> Parts {
        Parts {
            store: Arc::new(SqliteStore::in_memory().expect("in-memory store")),
            queue: Arc::new(SqliteQueue::in_memory().expect("in-memory queue")),
            cluster: Arc::new(EmbeddedCluster::in_memory()),
        }
    }
}

/// A reconciler and workers over one set of [`Parts`] in one namespace.
pub struct Loop {
    pub parts: Parts,
    pub reconciler: ReconcilerConfig,
    pub worker: WorkerConfig,
    /// Dropping it (with the loop) stops the background stand-in.
    standin_stop: Option<watch::Sender<bool>>,
}

impl Loop {
    /// Roles over `parts` in `namespace`, the reconciler holding the Lease as `holder`.
    pub fn new(parts: Parts, namespace: &str, holder: &str) -> Loop {
        Loop {
            parts,
            reconciler: reconciler_config(namespace, holder),
            worker: worker_config(namespace),
            standin_stop: None,
        }
    }

    /// Roles over embedded parts, the namespace created.
    pub async fn embedded(namespace: &str) -> Loop {
        let parts = Parts::embedded();
        parts
            .cluster
            .ensure_namespace(namespace)
            .await
            .expect("namespace");
        Loop::new(parts, namespace, "test")
    }

    /// The same roles and settings over other parts (fault-injecting
    /// wrappers of these, say), without the background stand-in.
    pub fn over(&self, parts: Parts) -> Loop {
        Loop {
            parts,
            reconciler: self.reconciler.clone(),
            worker: self.worker.clone(),
            standin_stop: None,
        }
    }

    /// A stand-in over this loop's cluster and namespace, for a test to step.
    pub fn standin(&self, config: StandinConfig) -> Standin {
        Standin::new(
            self.parts.cluster.clone(),
            StandinConfig {
                namespaces: vec![self.reconciler.namespace.clone()],
                ..config
            },
        )
    }

    /// Runs a stand-in in the background, stepping every `tick`, until the
    /// loop is dropped.
    pub fn spawn_standin(&mut self, config: StandinConfig, tick: Duration) {
        let standin = self.standin(config);
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            standin
                .run(tick, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        self.standin_stop = Some(stop);
    }

    /// The reconciler, for a test that drives it itself.
    pub fn reconciler(&self) -> Reconciler<'_> {
        Reconciler {
            store: &*self.parts.store,
            queue: &*self.parts.queue,
            cluster: &*self.parts.cluster,
            config: &self.reconciler,
        }
    }

    /// A worker, for a test that drives it itself.
    pub fn worker(&self) -> Worker<'_> {
        Worker {
            store: &*self.parts.store,
            queue: &*self.parts.queue,
            cluster: &*self.parts.cluster,
            config: &self.worker,
        }
    }

    /// One reconciler pass.
    pub async fn pass(&self) -> Result<PassReport, Error> {
        self.reconciler().run_pass().await
    }

    /// One worker run (one operation at most), never asked to stop.
    pub async fn work_once(&self) -> Result<Outcome, Error> {
        self.worker().run_once(std::future::pending()).await
    }

    /// Workers until one finds nothing to do; their outcomes.
    pub async fn work(&self) -> Result<Vec<Outcome>, Error> {
        let mut outcomes = Vec::new();
        loop {
            match self.work_once().await? {
                Outcome::Idle => return Ok(outcomes),
                o => outcomes.push(o),
            }
        }
    }

    /// Passes and workers until the database is ready, in sync and has no
    /// active operation; `None` if `rounds` run out first.
    pub async fn converge(&self, id: &str, rounds: usize) -> Result<Option<Database>, Error> {
        for _ in 0..rounds {
            self.pass().await?;
            self.work().await?;
            let db = self.parts.store.get_database(id).await?;
            if let Some(db) = db.filter(settled) {
                return Ok(Some(db));
            }
        }
        Ok(None)
    }
}

/// Ready, in sync and with no operation under way.
pub fn settled(db: &Database) -> bool {
    db.status == DatabaseStatus::Ready && db.in_sync() && db.active_operation_id.is_none()
}
