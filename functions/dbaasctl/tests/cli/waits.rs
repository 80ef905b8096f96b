//! `db wait` ends in one line and exit 1 when time runs out or the
//! database fails.

use crate::support::{Ctl, Local};

#[test]
fn a_wait_past_its_timeout_exits_1_with_one_line() {
    let local = Local::start(&[("DBAAS_STANDIN_PROVISION_MS", "60000")]);
    let ctl = Ctl::against(&local);
    let id = ctl.create("slow");
    let out = ctl
        .run(&["db", "wait", &id, "--for", "ready", "--timeout", "1s"])
        .exits(1);
    let line = out.error_line();
    assert!(
        line.contains(&format!("timed out after 1s waiting for {id} to be ready"))
            && line.contains("status provisioning"),
        "{line}"
    );
    assert!(out.took.as_secs() < 10, "took {:?}", out.took);
}

#[test]
fn a_failed_change_ends_the_wait_with_exit_1() {
    let local = Local::start(&[
        ("DBAAS_STANDIN_FAILURE_RATIO", "1"),
        ("DBAAS_MAX_ATTEMPTS", "1"),
        ("DBAAS_RETRY_BACKOFF_SECONDS", "0.1"),
    ]);
    let ctl = Ctl::against(&local);
    let id = ctl.create("doomed");
    // Provisioning creates the CR, not an OpsRequest: it succeeds.
    ctl.run(&["db", "wait", &id, "--for", "in-sync", "--timeout", "60s"])
        .success();
    ctl.run(&["db", "patch", &id, "--size", "db.t3.large"])
        .success();
    let out = ctl
        .run(&["db", "wait", &id, "--for", "in-sync", "--timeout", "60s"])
        .exits(1);
    let line = out.error_line();
    assert!(
        line.starts_with(&format!("error: {id} failed: scale_vertical failed")),
        "{line}\n{}",
        local
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
