//! Helpers of the console's browser tests: the `dbaas-local` binary as a
//! process ([`Local`]), headless Chromium through chromedriver
//! ([`webdriver::Browser`]), and where artefacts go.
//!
//! The tests need Debian's `chromium` and `chromium-driver` (installed by
//! `tests/rig/install.sh`, which `just test` runs) and a built
//! `dbaas-local` (`cargo build --workspace --bins` in `just test`, or
//! `cargo build -p dbaas-local`). Each missing piece fails the test with a
//! message that says how to get it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dbaas_testkit::local_mode::LocalMode;
use serde_json::{Value, json};

pub mod webdriver;

/// The workspace's target directory (`CARGO_TARGET_DIR` if set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// Where screenshots are kept: `target/console-screenshots/<test>/`.
pub fn screenshot_dir(test: &str) -> PathBuf {
    let dir = target_dir().join("console-screenshots").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// A fresh scratch directory under `target/console-tests/` (kept after
/// the run: the local mode's log is there).
fn scratch_dir(name: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = target_dir().join("console-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A running `dbaas-local`, killed when dropped.
pub struct Local {
    mode: LocalMode,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The dev tenant's API key.
    pub key: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
}

impl Local {
    /// Starts the binary on a port the OS picks, with fast schedules, and
    /// waits for `/healthz`.
    pub async fn start(name: &str) -> Local {
        let binary = target_dir().join("debug/dbaas-local");
        let key = "dbk_consoletestkey000000000000000001".to_string();
        let mut mode = LocalMode::start(&binary, &scratch_dir(name), &key, &[]);
        // Redirects are answers to check, not to follow.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        mode.wait_healthy(&http).await;
        Local {
            base: mode.url.clone(),
            data_dir: mode.data_dir.clone(),
            mode,
            key,
            http,
        }
    }

    /// The process's log (stderr).
    pub fn log(&self) -> String {
        self.mode.log()
    }

    /// `METHOD /api/v1<path>` with `key` (none: no Authorization header):
    /// the status and the JSON body (null when there is none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A database of `engine` declared through the API with the dev key.
    pub async fn create(&self, name: &str, engine: &str) -> Value {
        let (status, db) = self
            .call(
                "POST",
                "/databases",
                Some(&self.key.clone()),
                Some(
                    json!({"name": name, "engine": engine, "size": "db.t3.small",
                            "replicas": 1, "storage_gb": 20}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{db}");
        db
    }

    /// `GET <path>` on the server, not under /api/v1 (redirects not followed).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the server answers")
    }
}
