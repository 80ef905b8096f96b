//! The DBaaS control plane's library: everything the three roles share.
//!
//! The control plane is declarative. The API ([`api`]) validates requests
//! and records *desired* state in the [`store`]. The reconciler
//! ([`reconciler`]) runs one pass at a time: it reads the KubeDB custom
//! resources from the [`cluster`], records *current* state, computes the
//! drift with the pure function in [`drift`], and plans one operation per
//! drifted database, enqueued in the [`queue`]. The worker ([`worker`])
//! executes one operation: it creates the KubeDB OpsRequest ([`kubedb`]),
//! follows it to the end and records the new current state.
//!
//! Every piece of I/O sits behind a small trait with a real adapter
//! (MongoDB, Redis, a Kubernetes API server) and an embedded one (SQLite
//! and an in-process cluster) used by the one-command local mode.

pub mod api;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod drift;
pub mod engine;
pub mod error;
pub mod kubedb;
pub mod local;
pub mod naming;
pub mod quantity;
pub mod queue;
pub mod reconciler;
pub mod standin;
pub mod store;
pub mod telemetry;
pub mod worker;

pub use error::{Error, Result};
