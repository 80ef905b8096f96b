//! Profiles: saved privately, chosen by name, overridden by flags and env.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{Ctl, KEY, Local};

#[test]
fn profiles_are_private_and_flags_and_env_override_them() {
    let local = Local::start(&[]);
    let ctl = Ctl::new();
    let wrong_key = "dbk_wrongwrongwrongwrongwrongwrong00";

    // A key in the environment is not what set-profile saves: only typed values.
    ctl.run_with(
        &["config", "set-profile", "good", "--url", &local.url],
        &[("DBAAS_API_KEY", wrong_key)],
    )
    .success();
    ctl.run(&["config", "set-profile", "good", "--api-key", KEY])
        .success();
    ctl.run(&[
        "config",
        "set-profile",
        "bad",
        "--url",
        &local.url,
        "--api-key",
        wrong_key,
    ])
    .success();

    let path = ctl.config_path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(
        format!("{:o}", mode & 0o777),
        "600",
        "owner only: {}",
        path.display()
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(KEY).count(), 1, "{text}");
    assert_eq!(text.matches(wrong_key).count(), 1, "only bad's: {text}");
    // Rewritten through a temporary file renamed over it: nothing else left.
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["config.toml"]);

    // The first profile saved is the current one; keys show by prefix only.
    let list = ctl.run(&["config", "list"]).success();
    assert!(!list.stdout.contains(KEY), "{}", list.stdout);
    assert!(list.stdout.contains("dbk_dbaa…"), "{}", list.stdout);
    let current: Vec<&str> = list.stdout.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(current.len(), 1, "{}", list.stdout);
    assert!(current[0].contains("good"), "{}", list.stdout);
    ctl.run(&["db", "list"]).success();

    ctl.run(&["config", "use-profile", "bad"]).success();
    let refused = ctl.run(&["db", "list"]).exits(1);
    assert!(
        refused.error_line().starts_with("error: 401"),
        "{}",
        refused.stderr
    );
    ctl.run(&["db", "list", "--profile", "good"]).success();
    ctl.run_with(&["db", "list"], &[("DBAAS_PROFILE", "good")])
        .success();
    ctl.run(&["db", "list", "--api-key", KEY]).success();
    ctl.run_with(&["db", "list"], &[("DBAAS_API_KEY", KEY)])
        .success();
    ctl.run(&["config", "use-profile", "nope"]).exits(2);
    ctl.run(&["db", "list", "--profile", "nope"]).exits(2);

    // A flag's URL beats the profile's; an unreachable API is retried, then
    // reported in one line.
    let unreachable = ctl
        .run(&[
            "db",
            "list",
            "--profile",
            "good",
            "--url",
            "http://127.0.0.1:1",
        ])
        .exits(1);
    let line = unreachable.error_line();
    assert!(
        line.contains("cannot connect to http://127.0.0.1:1"),
        "{line}"
    );
    assert!(
        unreachable.took.as_secs_f64() > 1.0,
        "retried with backoff before giving up: {:?}",
        unreachable.took
    );
}

#[test]
fn the_config_file_defaults_to_the_user_config_directory() {
    let ctl = Ctl::new();
    ctl.run_with(
        &["config", "set-profile", "p", "--url", "http://127.0.0.1:9"],
        &[("DBAASCTL_CONFIG", "")],
    )
    .success();
    let text = std::fs::read_to_string(ctl.config_path()).expect("under $XDG_CONFIG_HOME");
    assert!(text.contains("http://127.0.0.1:9"), "{text}");
    ctl.run(&["config", "set-profile", "p"]).exits(2);
    ctl.run(&["config", "set-profile", "p", "--url", "not a url"])
        .exits(2);
}
