//! Private servers a test may stop and restart: the shared rig's are never
//! touched. Each keeps its port (and data) across restarts, so clients
//! reconnect to the same address, as after a real outage.

use dbaas_testkit::rig::free_port;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root (this crate is `tests/faults`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// One server process on a fixed port.
pub struct Server {
    pub name: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
    /// Where the data lives, dropped after the server stops for good.
    _data: Option<PgDatabase>,
}

impl Server {
    /// Redis without persistence: a restart loses the queue, as a Redis
    /// without AOF does (the store must rebuild it).
    pub fn redis(dir: &Path) -> Server {
        let port = free_port();
        Server {
            name: "redis",
            port,
            dir: dir.join("redis"),
            program: PathBuf::from("redis-server"),
            args: [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ]
            .map(String::from)
            .to_vec(),
            envs: Vec::new(),
            child: None,
            starts: 0,
            _data: None,
        }
    }

    /// FerretDB on a PostgreSQL database of its own on the rig's
    /// PostgreSQL: data survives a restart. Only FerretDB stops in an
    /// outage (what the roles see of a store outage); PostgreSQL stays up.
    pub fn ferretdb(dir: &Path) -> Server {
        let port = free_port();
        let out = Command::new("bash")
            .arg(repo_root().join("tests/rig/build-servers.sh"))
            .arg("ferretdb")
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/rig/build-servers.sh ferretdb");
        assert!(
            out.status.success(),
            "building FerretDB failed (tests/rig/build-servers.sh ferretdb)"
        );
        let program = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let data = PgDatabase::create();
        Server {
            name: "ferretdb",
            port,
            dir: dir.join("ferretdb"),
            program,
            args: Vec::new(),
            envs: vec![
                ("FERRETDB_LISTEN".into(), format!("127.0.0.1:{port}")),
                ("FERRETDB_POSTGRESQL_URL".into(), data.url()),
                ("FERRETDB_TELEMETRY".into(), "disable".into()),
            ],
            child: None,
            starts: 0,
            _data: Some(data),
        }
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A MongoDB URI with short timeouts, so calls during an outage fail fast.
    pub fn mongodb_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Starts the process and waits until its port accepts connections.
    pub fn start(&mut self) {
        assert!(!self.is_running(), "{} is already running", self.name);
        std::fs::create_dir_all(&self.dir).expect("create the server's directory");
        self.starts += 1;
        let log = self.dir.join(format!("{}-{}.log", self.name, self.starts));
        let file = File::create(&log).expect("create a log file");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("starting {} failed: {e}", self.name)),
        );
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited at start ({status}); log {}:\n{}",
                    self.name,
                    log.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} did not listen on {} within 30 s (log {})",
                self.name,
                self.port,
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the server is gone at once, mid-request if one is running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database of its own on the rig's PostgreSQL (`RIG_POSTGRES_HOST`, the
/// socket's directory, and `RIG_POSTGRES_PORT`; user postgres, no
/// password), dropped with this value.
struct PgDatabase {
    host: String,
    port: String,
    name: String,
}

impl PgDatabase {
    fn create() -> PgDatabase {
        let db = PgDatabase {
            host: crate::rig_var("RIG_POSTGRES_HOST"),
            port: crate::rig_var("RIG_POSTGRES_PORT"),
            name: format!("faults_{}", dbaas_core::domain::random_token(10)),
        };
        db.psql(&format!("CREATE DATABASE {}", db.name))
            .unwrap_or_else(|e| panic!("creating a database on the rig's PostgreSQL: {e}"));
        db
    }

    /// The connection URL FerretDB takes (pgx: the socket's directory as
    /// the `host` parameter).
    fn url(&self) -> String {
        // Percent-encoded: a query value.
        let host: String = self
            .host
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!(
            "postgres://postgres@/{}?host={host}&port={}",
            self.name, self.port
        )
    }

    fn psql(&self, sql: &str) -> Result<(), String> {
        let out = Command::new("psql")
            .args(["-h", &self.host, "-p", &self.port, "-U", "postgres"])
            .args([
                "-d",
                "postgres",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE: a FerretDB left running must not keep it.
        let _ = self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A server shared with injector hooks (which stop it mid-call).
pub type Shared = Arc<Mutex<Server>>;

pub fn shared(server: Server) -> Shared {
    Arc::new(Mutex::new(server))
}

pub fn kill(server: &Shared) {
    server
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .kill();
}

pub fn start(server: &Shared) {
    server
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .start();
}

/// A scratch directory under `target/faults/<name>-<random>`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = crate::target_dir()
        .join("faults")
        .join(format!("{name}-{}", dbaas_core::domain::random_token(6)));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
