//! The control loop: a reconciliation pass ([`reconciler`]) and a worker run
//! ([`worker`]), each one short-lived process in a cluster (a CronJob pod,
//! a KEDA ScaledJob pod) and a task in local mode.
//!
//! Both work only through the small traits of `dbaas-store`, `dbaas-queue`
//! and `dbaas-cluster`, and decide with the pure functions of `dbaas-core`
//! (drift, plans, phase judgements); what they push to the Pushgateway is
//! in [`metrics`].

pub mod config;
pub mod metrics;
pub mod reconciler;
pub mod worker;
