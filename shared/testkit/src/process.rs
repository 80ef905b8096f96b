//! A process a test started, with its log file: one type for every test
//! crate that runs the binaries.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;

use crate::rig::log_tail;

/// A process the test started; killed when dropped (spawn it with
/// `kill_on_drop`).
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
