//! A process a test started, with its log file: one type for every test
//! crate that runs the binaries.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::rig::log_tail;

/// Where a test's processes log: one numbered file each, in start order.
pub struct Procs {
    pub logs: PathBuf,
    seq: AtomicU32,
}

impl Procs {
    /// Logs under `logs` (created).
    pub fn new(logs: PathBuf) -> Procs {
        std::fs::create_dir_all(&logs).expect("create the log directory");
        Procs {
            logs,
            seq: AtomicU32::new(0),
        }
    }

    /// Starts `cmd` (stdin closed, output to a new log named after `role`,
    /// killed when the [`Proc`] is dropped).
    pub fn start(&self, role: &str, mut cmd: Command) -> Proc {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let log = self.logs.join(format!("{n:03}-{role}.log"));
        let file = File::create(&log).expect("create a log file");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {role} failed: {e}"));
        Proc {
            role: role.to_string(),
            child,
            log,
        }
    }
}

/// A process the test started; killed when dropped.
pub struct Proc {
    pub role: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Waits up to `timeout` for the exit; kills it and fails the test past it.
    pub async fn wait(mut self, timeout: Duration) -> (ExitStatus, PathBuf) {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => (status, self.log),
            Ok(Err(e)) => panic!("waiting for {} failed: {e}", self.role),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "{} did not exit within {timeout:?}; its log ({}):\n{}",
                    self.role,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
        }
    }

    /// Sends SIGKILL (`kill -9`) and waits for the process to be gone.
    pub async fn kill9(mut self) -> ExitStatus {
        self.child.start_kill().expect("SIGKILL sent");
        let status = self.child.wait().await.expect("killed process reaped");
        assert_eq!(
            status.signal(),
            Some(9),
            "{} was not killed by SIGKILL: {status}",
            self.role
        );
        status
    }

    /// Waits until `url` answers 2xx; fails the test (with the log) if the
    /// process exits first or `timeout` passes.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, url: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            self.check_alive();
            if http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{} did not answer {url} within {timeout:?}; its log ({}):\n{}",
                self.role,
                self.log.display(),
                log_tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails the test if the process has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log ({}):\n{}",
                self.role,
                self.log.display(),
                log_tail(&self.log)
            );
        }
    }
}
