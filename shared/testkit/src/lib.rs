//! Test-only code shared by the test crates: the conformance suites every
//! adapter must pass, and the harness pieces (rig settings, processes,
//! ports, an in-process control loop). A dev-dependency only: nothing that
//! ships depends on it.

pub mod config;
pub mod control_loop;
pub mod process;
pub mod queue_suite;
pub mod rig;
pub mod standin_suite;
pub mod store_suite;
