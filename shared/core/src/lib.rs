//! The core of the DBaaS control plane: what the roles agree on, with no
//! I/O.
//!
//! The control plane is declarative. The API records *desired* state
//! ([`domain::Database`]); the reconciler reads the KubeDB custom resources
//! ([`kubedb`]), records *current* state, and compares the two with the pure
//! function [`drift::assess`], which plans at most one [`drift::Change`] per
//! database; the worker turns that change into a KubeDB OpsRequest
//! ([`kubedb::ops_request_object`]). Every engine difference lives in one
//! table ([`engine`]); object names in [`naming`]. Everything here is pure
//! data and functions, so it is unit- and property-tested without servers.

pub mod catalog;
pub mod domain;
pub mod drift;
pub mod engine;
pub mod error;
pub mod kubedb;
pub mod naming;
pub mod quantity;

pub use error::{BoxError, Error, Result};
