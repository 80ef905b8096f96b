//! Processes with their resource usage, spreads, and small probes.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// Min, median and max of repeated measurements.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Spread {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            n,
            min: v[0],
            median,
            max: v[n - 1],
        }
    }

    /// `median (min–max)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        if self.n == 0 {
            return "n/a".into();
        }
        if self.n == 1 {
            return format!("{:.digits$}", self.median);
        }
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            self.median, self.min, self.max
        )
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

/// A `/proc/<pid>/status` field in kB (VmRSS, VmHWM).
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How a process ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub code: i32,
    /// From spawn to reaped.
    pub wall: Duration,
    /// Peak resident set size (VmHWM) as last sampled before the exit, kB;
    /// 0 if the process ended before a first sample.
    pub peak_rss_kb: u64,
}

/// A process started by the benchmark.
///
/// Its peak RSS is sampled from `/proc/<pid>/status` (VmHWM) while it is
/// waited for, not taken from `wait4`'s `ru_maxrss`: that one starts from
/// the parent's RSS at the fork, so a small child of a big benchmark process
/// would report the benchmark's size.
pub struct Proc {
    pub pid: u32,
    pub started: Instant,
    pub log: PathBuf,
    pub name: String,
    reaped: bool,
    hwm_kb: u64,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout and stderr in `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let file = File::create(log).with_context(|| format!("create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        Ok(Proc {
            pid: child.id(),
            started,
            log: log.to_path_buf(),
            name: name.to_string(),
            reaped: false,
            hwm_kb: 0,
        })
    }

    pub fn signal(&self, sig: i32) {
        if !self.reaped {
            // SAFETY: kill(2) on a child we have not reaped yet.
            unsafe { libc::kill(self.pid as i32, sig) };
        }
    }

    /// Waits for the exit up to `timeout`; past it, SIGKILLs and fails.
    pub fn wait(mut self, timeout: Duration) -> anyhow::Result<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            self.sample();
            if let Some(exit) = self.try_reap()? {
                return Ok(exit);
            }
            if Instant::now() > deadline {
                self.signal(libc::SIGKILL);
                let _ = self.reap_blocking();
                bail!(
                    "{} did not exit within {timeout:?}; log {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Sends SIGTERM and waits (SIGKILL after 10 s).
    pub fn stop(self) -> anyhow::Result<Exit> {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(10))
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self) -> anyhow::Result<Option<Exit>> {
        self.sample();
        self.try_reap()
    }

    /// Reads the peak RSS so far (monotonic while the process lives).
    pub fn sample(&mut self) {
        if !self.reaped
            && let Some(kb) = proc_kb(self.pid, "VmHWM")
        {
            self.hwm_kb = self.hwm_kb.max(kb);
        }
    }

    fn try_reap(&mut self) -> anyhow::Result<Option<Exit>> {
        self.waitpid(libc::WNOHANG)
    }

    fn reap_blocking(&mut self) -> anyhow::Result<Option<Exit>> {
        self.waitpid(0)
    }

    fn waitpid(&mut self, flags: i32) -> anyhow::Result<Option<Exit>> {
        if self.reaped {
            bail!("{} was already reaped", self.name);
        }
        let mut status = 0;
        // SAFETY: plain syscall on our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, flags) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            bail!("waitpid {}: {}", self.name, std::io::Error::last_os_error());
        }
        self.reaped = true;
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        Ok(Some(Exit {
            code,
            wall: self.started.elapsed(),
            peak_rss_kb: self.hwm_kb,
        }))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let _ = self.reap_blocking();
        }
    }
}

/// The HTTP status of `GET path` on 127.0.0.1:port, or None when nothing
/// answers (a raw request, so the probe itself costs next to nothing).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

/// Polls `path` until it answers 200; the time since the process started.
pub fn wait_http_ok(
    proc: &mut Proc,
    port: u16,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + timeout;
    loop {
        if http_status(port, path) == Some(200) {
            return Ok(proc.started.elapsed());
        }
        if let Some(exit) = proc.exited()? {
            bail!(
                "{} exited with {} before {path} answered; log {}",
                proc.name,
                exit.code,
                proc.log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{}: {path} did not answer 200 within {timeout:?}; log {}",
                proc.name,
                proc.log.display()
            );
        }
        std::thread::sleep(Duration::from_micros(250));
    }
}

/// A short random lowercase token.
pub fn token(len: usize) -> String {
    dbaas_core::domain::random_token(len)
}

/// JSON log lines of a process, as values.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The `fields` of the first JSON log line whose message is `message`.
pub fn log_event(path: &Path, message: &str) -> Option<serde_json::Value> {
    json_lines(path)
        .into_iter()
        .find(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"].clone())
}

/// The panic message in a log (the `panicked at` line and the next), or
/// its last line.
pub fn panic_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    match lines.iter().position(|l| l.contains("panicked at")) {
        Some(i) => lines[i..lines.len().min(i + 2)].join(" "),
        None => lines.last().copied().unwrap_or("no output").to_string(),
    }
}
