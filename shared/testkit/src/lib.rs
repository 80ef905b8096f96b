//! Test-only code shared by the test crates: the conformance suites every
//! adapter must pass, and the harness pieces (rig settings, processes,
//! ports, an in-process control loop, the local mode as a process). A dev-dependency only: nothing that
//! ships depends on it.

pub mod config;
pub mod control_loop;
pub mod local_mode;
pub mod process;
pub mod queue_suite;
pub mod rig;
pub mod standin_suite;
pub mod store_suite;
