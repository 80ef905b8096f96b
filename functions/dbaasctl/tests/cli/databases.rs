//! A database's life through the CLI, its plans, and how errors read.

use crate::support::{Ctl, Local};

#[test]
fn create_patch_wait_events_and_delete() {
    let local = Local::start(&[]);
    let ctl = Ctl::against(&local);
    let id = ctl.create("orders");
    ctl.run(&["db", "wait", &id, "--for", "in-sync", "--timeout", "60s"])
        .success();

    // The PATCH's own answer: desired changed, current not yet.
    let patched = ctl
        .run(&["db", "patch", &id, "--size", "db.t3.large"])
        .success();
    let size_line = patched
        .stdout
        .lines()
        .find(|l| l.starts_with("size "))
        .unwrap_or_else(|| panic!("a size row:\n{}", patched.stdout));
    assert!(
        size_line.contains("db.t3.large") && size_line.contains('≠'),
        "{}",
        patched.stdout
    );
    let listed = ctl.run(&["db", "list"]).success();
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);

    let waited = ctl
        .run(&["db", "wait", &id, "--for", "in-sync", "--timeout", "60s"])
        .success();
    assert!(waited.stdout.contains("in sync"), "{}", waited.stdout);
    let db = ctl.run(&["db", "get", &id, "-o", "json"]).success().json();
    assert_eq!(
        (db["size"].as_str(), db["current_size"].as_str()),
        (Some("db.t3.large"), Some("db.t3.large")),
        "{db}"
    );
    assert_eq!(db["generation"], db["observed_generation"], "{db}");
    assert!(db["active_operation_id"].is_null(), "{db}");
    let shown = ctl.run(&["db", "get", &id]).success();
    assert!(!shown.stdout.contains('≠'), "in sync: {}", shown.stdout);

    let events = ctl.run(&["db", "events", &id, "--limit", "100"]).success();
    assert!(
        events.stdout.contains("desired_changed")
            && events.stdout.contains("size: db.t3.small → db.t3.large"),
        "{}",
        events.stdout
    );
    let ops = ctl
        .run(&["op", "list", "--database", &id, "-o", "json"])
        .success()
        .json();
    let scale: Vec<_> = ops["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "scale_vertical")
        .collect();
    assert_eq!(scale.len(), 1, "{ops}");
    assert_eq!(scale[0]["status"], "succeeded");
    let op_id = scale[0]["id"].as_str().unwrap();
    let op = ctl.run(&["op", "get", op_id]).success();
    assert!(op.stdout.contains("size=db.t3.large"), "{}", op.stdout);

    // The password only when asked for.
    let login = ctl
        .run(&["db", "credentials", &id, "--show-password", "-o", "json"])
        .success()
        .json();
    let password = login["password"].as_str().unwrap().to_string();
    assert!(!password.is_empty() && password != "********");
    for args in [
        vec!["db", "credentials", &id],
        vec!["db", "credentials", &id, "-o", "json"],
    ] {
        let masked = ctl.run(&args).success();
        assert!(!masked.stdout.contains(&password), "{}", masked.stdout);
        assert!(masked.stdout.contains("postgres"), "{}", masked.stdout);
    }

    // Pausing is in sync once the pause is done.
    ctl.run(&["db", "pause", &id, "--wait", "--timeout", "60s"])
        .success();
    ctl.run(&["db", "resume", &id, "--wait", "--timeout", "60s"])
        .success();

    ctl.run(&["db", "delete", &id]).success();
    ctl.run(&["db", "wait", &id, "--for", "deleted", "--timeout", "60s"])
        .success();
    let db = ctl.run(&["db", "get", &id, "-o", "json"]).success().json();
    assert_eq!(db["status"], "deleted", "{db}");
}

#[test]
fn plans_of_a_change_and_of_a_new_database() {
    let local = Local::start(&[]);
    let ctl = Ctl::against(&local);
    let id = ctl.create("ledger");
    ctl.run(&["db", "wait", &id, "--for", "in-sync", "--timeout", "60s"])
        .success();

    let plan = ctl.run(&["db", "plan", &id, "-o", "json"]).success().json();
    assert_eq!(plan["in_sync"], true, "{plan}");
    assert_eq!(plan["steps"].as_array().map(Vec::len), Some(0), "{plan}");

    let plan = ctl
        .run(&["db", "plan", &id, "--size", "db.t3.large", "-o", "json"])
        .success()
        .json();
    assert_eq!(plan["database_id"], id.as_str(), "{plan}");
    assert_eq!(plan["steps"][0]["type"], "scale_vertical", "{plan}");
    assert_eq!(plan["steps"][0]["target"]["size"], "db.t3.large", "{plan}");
    let table = ctl
        .run(&[
            "db",
            "plan",
            &id,
            "--size",
            "db.t3.large",
            "--storage-gb",
            "40",
        ])
        .success();
    for expected in [
        "scale_vertical",
        "size=db.t3.large",
        "storage_gb=40",
        "2 steps",
    ] {
        assert!(
            table.stdout.contains(expected),
            "{expected}:\n{}",
            table.stdout
        );
    }
    // A plan saves nothing.
    let db = ctl.run(&["db", "get", &id, "-o", "json"]).success().json();
    assert_eq!(db["size"], "db.t3.small", "{db}");

    let plan = ctl
        .run(&[
            "db",
            "plan",
            "--create",
            "billing",
            "--engine",
            "postgres",
            "--size",
            "db.t3.small",
            "--replicas",
            "3",
            "--storage-gb",
            "20",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert!(plan["database_id"].is_null(), "{plan}");
    assert_eq!(plan["steps"][0]["type"], "provision", "{plan}");

    // A plan is checked as the request would be.
    let refused = ctl.run(&["db", "plan", &id, "--storage-gb", "5"]).exits(1);
    assert!(
        refused.error_line().starts_with("error: 422 storage_gb: "),
        "{}",
        refused.stderr
    );
}

#[test]
fn api_errors_are_one_line_naming_the_field() {
    let local = Local::start(&[]);
    let ctl = Ctl::against(&local);
    let small = ctl
        .run(&[
            "db",
            "create",
            "tiny",
            "--engine",
            "postgres",
            "--size",
            "db.t3.small",
            "--replicas",
            "1",
            "--storage-gb",
            "5",
        ])
        .exits(1);
    assert!(
        small.error_line().starts_with("error: 422 storage_gb: "),
        "{}",
        small.stderr
    );

    let protected = ctl
        .run(&[
            "db",
            "create",
            "kept",
            "--engine",
            "postgres",
            "--size",
            "db.t3.small",
            "--replicas",
            "1",
            "--storage-gb",
            "20",
            "--deletion-protection",
            "-o",
            "json",
        ])
        .success()
        .json();
    let id = protected["id"].as_str().unwrap();
    let refused = ctl.run(&["db", "delete", id]).exits(1);
    let line = refused.error_line();
    assert!(
        line.starts_with("error: 409 ") && line.contains("deletion_protection"),
        "{line}"
    );
    let shrink = ctl.run(&["db", "patch", id, "--storage-gb", "10"]).exits(1);
    assert!(
        shrink
            .error_line()
            .starts_with("error: 422 storage_gb: storage only grows"),
        "{}",
        shrink.stderr
    );
    let missing = ctl.run(&["db", "get", "db-nosuchdatabase"]).exits(1);
    assert!(
        missing.error_line().starts_with("error: 404 "),
        "{}",
        missing.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    let ctl = Ctl::new().env("DBAAS_API_KEY", "dbk_unused");
    for args in [
        vec!["db", "create", "x", "--engine", "postgres"],
        vec![
            "db",
            "create",
            "x",
            "--engine",
            "oracle",
            "--size",
            "db.t3.small",
            "--replicas",
            "1",
            "--storage-gb",
            "20",
        ],
        vec!["db", "patch", "db-x"],
        vec!["db", "patch", "db-x", "--paused", "maybe"],
        vec!["db", "wait", "db-x", "--for", "lunch"],
        vec!["db", "wait", "db-x", "--for", "ready", "--timeout", "soon"],
        vec!["db", "plan"],
        vec!["db", "plan", "db-x", "--create", "y", "--engine", "redis"],
        vec!["db", "list", "--status", "sleeping"],
        vec!["completions", "tcsh"],
        vec!["frobnicate"],
    ] {
        let out = Ctl::run(&ctl, &args);
        assert_eq!(out.code, 2, "`dbaasctl {}`: {}", out.args, out.stderr);
    }
    // No key anywhere is a usage error too, found before any request.
    let out = Ctl::new().run(&["db", "list"]).exits(2);
    assert!(out.error_line().contains("API key"), "{}", out.stderr);
}

#[test]
fn json_and_yaml_for_scripts_and_completions() {
    let local = Local::start(&[]);
    let ctl = Ctl::against(&local);
    let id = ctl.create("scripted");
    let other = ctl.create("another");
    let page = ctl
        .run(&["db", "list", "--limit", "1", "-o", "json"])
        .success()
        .json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");
    let all = ctl
        .run(&["db", "list", "--all", "--limit", "1", "-o", "json"])
        .success()
        .json();
    let mut ids: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    ids.sort();
    let mut expected = vec![id.as_str(), other.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "{all}");
    let db = ctl.run(&["db", "get", &id, "-o", "json"]).success().json();
    assert_eq!(db["name"], "scripted");
    // Fields in the API's order, not sorted.
    let raw = ctl.run(&["db", "get", &id, "-o", "json"]).success().stdout;
    assert!(raw.find("\"id\"") < raw.find("\"name\""), "{raw}");
    let versions = ctl
        .run(&["versions", "--engine", "postgres", "-o", "json"])
        .success()
        .json();
    assert!(
        versions["items"].as_array().is_some_and(|v| !v.is_empty()),
        "{versions}"
    );
    let yaml = ctl.run(&["db", "get", &id, "-o", "yaml"]).success();
    assert!(yaml.stdout.starts_with("id: "), "{}", yaml.stdout);
    assert!(yaml.stdout.contains("name: scripted"), "{}", yaml.stdout);

    for shell in ["bash", "zsh", "fish"] {
        let script = Ctl::new().run(&["completions", shell]).success();
        assert!(
            script.stdout.contains("dbaasctl") && script.stdout.contains("rotate-credentials"),
            "{shell}: {}",
            script.stdout
        );
    }
}
