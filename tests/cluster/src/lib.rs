//! End-to-end tests on the rig's real node live in `tests/`; see `just test-cluster`.
