//! Running the real binaries: `dbaas-local` as the API, `dbaasctl` against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbaas_testkit::local_mode::LocalMode;

use serde_json::Value;
use tempfile::TempDir;

/// The dev key every local mode here registers (`dbk_` and 32 characters).
pub const KEY: &str = "dbk_dbaasctltestkey00000000000000001";

/// A running `dbaas-local` in a temporary directory of its own.
pub struct Local {
    mode: LocalMode,
    pub url: String,
    _dir: TempDir,
}

/// `dbaas-local` beside this package's binary: Cargo exposes only the
/// package's own binaries to its tests, and both land in one target folder.
fn local_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_dbaasctl")).with_file_name("dbaas-local")
}

impl Local {
    /// Starts the local mode with fast stand-in timings, `env` on top.
    pub fn start(env: &[(&str, &str)]) -> Local {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mode = LocalMode::start(&local_binary(), dir.path(), KEY, env);
        Local {
            url: mode.url.clone(),
            mode,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        self.mode.log()
    }
}

/// `dbaasctl` with a config file of its own and none of the caller's
/// `DBAAS_*` settings.
pub struct Ctl {
    home: TempDir,
    env: Vec<(String, String)>,
}

impl Ctl {
    /// No API, no key, an empty config file.
    pub fn new() -> Ctl {
        Ctl {
            home: tempfile::tempdir().expect("a temporary directory"),
            env: Vec::new(),
        }
    }

    /// Pointed at `local` through `DBAAS_URL` and `DBAAS_API_KEY`.
    pub fn against(local: &Local) -> Ctl {
        Ctl::new()
            .env("DBAAS_URL", &local.url)
            .env("DBAAS_API_KEY", KEY)
    }

    pub fn env(mut self, key: &str, value: &str) -> Ctl {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Where `DBAASCTL_CONFIG` points.
    pub fn config_path(&self) -> PathBuf {
        self.home.path().join("dbaasctl").join("config.toml")
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[])
    }

    /// Runs with `env` on top of this client's environment.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbaasctl"));
        for var in ["DBAAS_URL", "DBAAS_API_KEY", "DBAAS_PROFILE"] {
            command.env_remove(var);
        }
        command
            .env("DBAASCTL_CONFIG", self.config_path())
            .env("XDG_CONFIG_HOME", self.home.path())
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let start = Instant::now();
        let output = command.output().expect("dbaasctl runs");
        Out {
            args: args.join(" "),
            code: output.status.code().expect("an exit code, not a signal"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
            took: start.elapsed(),
        }
    }

    /// Creates a small Postgres database; its id.
    pub fn create(&self, name: &str) -> String {
        let db = self
            .run(&[
                "db",
                "create",
                name,
                "--engine",
                "postgres",
                "--size",
                "db.t3.small",
                "--replicas",
                "1",
                "--storage-gb",
                "20",
                "-o",
                "json",
            ])
            .success()
            .json();
        db["id"].as_str().expect("an id").to_string()
    }
}

/// What one run of `dbaasctl` did.
#[derive(Debug)]
pub struct Out {
    pub args: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    /// Asserts exit code 0.
    pub fn success(self) -> Out {
        self.exits(0)
    }

    pub fn exits(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "`dbaasctl {}` exited {}, not {code}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`dbaasctl {}` printed no JSON ({e}):\n{}",
                self.args, self.stdout
            )
        })
    }

    /// The single line of stderr, which must start with `error: `.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "`dbaasctl {}` should fail with one line on stderr:\n{}",
            self.args,
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        lines[0]
    }
}
