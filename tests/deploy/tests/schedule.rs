//! The interval -> cron logic of `just schedule` (k8s/scripts/schedule.py)
//! has its own Python unit tests; this runs them under `cargo test`.

use std::process::Command;

use dbaas_deploy_tests::repo_root;

#[test]
fn schedule_script_unit_tests_pass() {
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "k8s/scripts",
            "-p",
            "test_*.py",
            "-v",
        ])
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs (tests/rig/install.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "k8s/scripts/test_schedule.py failed:\n{stderr}"
    );
    assert!(stderr.contains("\nOK"), "no tests ran:\n{stderr}");
}

#[test]
fn schedule_script_rejects_what_cron_cannot_express() {
    for (interval, ok) in [
        ("1m", true),
        ("300", true),
        ("2h", true),
        ("45s", false),
        ("7m", false),
        ("5h", false),
    ] {
        let out = Command::new("python3")
            .args(["k8s/scripts/schedule.py", interval, "--dry-run"])
            .current_dir(repo_root())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs");
        assert_eq!(
            out.status.success(),
            ok,
            "{interval}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !ok {
            assert!(
                String::from_utf8_lossy(&out.stderr).starts_with(&format!("schedule: {interval}"))
            );
        }
    }
}
