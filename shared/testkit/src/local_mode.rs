//! The one-command local mode (`dbaas-local`) as a process, for the tests
//! that drive it from outside: its own, the CLI's and the console's.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `dbaas-local`, killed when dropped.
pub struct LocalMode {
    pub child: Child,
    /// `http://127.0.0.1:<port>`, from the banner.
    pub url: String,
    pub data_dir: PathBuf,
}

impl Drop for LocalMode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalMode {
    /// Starts `binary` with its data in `data_dir`, `key` as the dev key,
    /// fast stand-in timings and a pass every second, `env` on top, on a
    /// port the OS picks (no window in which another process could take a
    /// port chosen beforehand); returns once its banner names the address.
    /// Its log (stderr) is appended to `data_dir/dbaas-local.log`, so a
    /// restart keeps both runs.
    pub fn start(binary: &Path, data_dir: &Path, key: &str, env: &[(&str, &str)]) -> LocalMode {
        assert!(
            binary.is_file(),
            "{} is missing: build it first with `cargo build -p dbaas-local` \
             (`cargo build --workspace --bins` builds every binary)",
            binary.display()
        );
        std::fs::create_dir_all(data_dir).expect("create the data directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("dbaas-local.log"))
            .expect("open the log");
        let mut command = Command::new(binary);
        command
            .env("DBAAS_DATA_DIR", data_dir)
            .env("DBAAS_LISTEN", "127.0.0.1:0")
            .env("RECONCILIATION_INTERVAL", "1")
            .env("DBAAS_STANDIN_PROVISION_MS", "300")
            .env("DBAAS_STANDIN_PHASE_MS", "500")
            .env("DBAAS_DEV_API_KEY", key)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line
                    .trim()
                    .strip_prefix("API")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|url| url.strip_suffix("/api/v1"))
                {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut local = LocalMode {
            child,
            url: String::new(),
            data_dir: data_dir.to_path_buf(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => local.url = url,
            Err(_) => panic!(
                "dbaas-local printed no API address within 30 s; its log:\n{}",
                local.log()
            ),
        }
        local
    }

    /// Waits until `/healthz` answers 2xx; fails the test if the process
    /// exits first or 30 s pass.
    pub async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http
                .get(format!("{}/healthz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!(
                    "dbaas-local exited with {status} before answering /healthz; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "dbaas-local did not answer /healthz within 30 s; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's log (stderr), across restarts in the same directory.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("dbaas-local.log")).unwrap_or_default()
    }
}
