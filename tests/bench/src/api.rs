//! API latency and throughput: a server process, `oha` as the load
//! generator process, GET and PATCH of one database picked at random among
//! `DATABASES` per request.

use dbaas_cluster::kube::KubeCluster;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Ctx;
use crate::util::{Proc, Spread, loadavg, proc_kb, token, wait_http_ok};
use dbaas_testkit::rig::free_port;

/// Databases the load is spread over.
const DATABASES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    /// The embedded SQLite store, as `dbaas-local` serves it.
    Embedded,
    /// `dbaas-api` on the rig's FerretDB.
    Ferretdb,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded (SQLite)",
            Backend::Ferretdb => "FerretDB (rig)",
        }
    }
}

/// One `oha` run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Responses by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that got no response.
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub backend: Backend,
    pub method: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub runs: Vec<LoadRun>,
    pub p50_ms: Spread,
    pub p95_ms: Spread,
    pub p99_ms: Spread,
    pub max_ms: Spread,
    pub rps: Spread,
    /// Share of responses that were not 200, over every run.
    pub non_200_share: f64,
    pub load: [f64; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub backend: Backend,
    pub binary: String,
    /// Databases in the store while it was measured.
    pub databases: usize,
    pub rest_rss_mb: f64,
    pub after_load_rss_mb: f64,
    pub peak_rss_mb: f64,
}

pub struct ApiResults {
    pub loads: Vec<LoadResult>,
    pub footprints: Vec<Footprint>,
}

pub struct Settings {
    pub concurrency: usize,
    pub seconds: f64,
    pub repeats: usize,
}

/// The API server of one backend, with a tenant's key.
pub(crate) struct Server {
    pub proc: Proc,
    pub port: u16,
    pub key: String,
    /// The tenant of `key` (on FerretDB; the embedded store's is not read).
    pub tenant_id: String,
    pub mongodb_database: Option<String>,
}

/// Starts the API on `backend`, with the per-key rate limit lifted (the
/// benchmark is one key) and the default admission control.
pub(crate) async fn start(ctx: &Ctx, backend: Backend) -> anyhow::Result<Server> {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    match backend {
        Backend::Embedded => {
            let data = ctx.out.join("api-embedded-data");
            let _ = std::fs::remove_dir_all(&data);
            let key = format!("bench-{}", token(24));
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg("serve-embedded")
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen", &listen, "--key", &key])
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1");
            let mut proc = Proc::spawn(
                "dbaas-bench serve-embedded",
                cmd,
                &ctx.logs.join("api-embedded.log"),
            )?;
            wait_http_ok(&mut proc, port, "/readyz", Duration::from_secs(30))?;
            Ok(Server {
                proc,
                port,
                key,
                tenant_id: String::new(),
                mongodb_database: None,
            })
        }
        Backend::Ferretdb => {
            // The API checks versions against KubeDB's catalog in the rig.
            let cluster = KubeCluster::from_kubeconfig(Some(&ctx.rig.kubeconfig)).await?;
            dbaas_standin::catalog::install(&cluster).await?;
            let db = format!("bench_api_{}", token(6));
            let admin = format!("admin-{}", token(24));
            let mut cmd = Command::new(ctx.bin("dbaas-api"));
            cmd.env("MONGODB_URI", &ctx.rig.mongodb_uri)
                .env("MONGODB_DATABASE", &db)
                .env("DBAAS_LISTEN", &listen)
                .env("DBAAS_ADMIN_TOKEN", &admin)
                // The limiter is per key; the benchmark is one key.
                .env("DBAAS_RATE_LIMIT_PER_SECOND", "1000000")
                .env("DBAAS_RATE_LIMIT_BURST", "1000000")
                // The defaults, whatever the environment says.
                .env("DBAAS_MAX_IN_FLIGHT", "64")
                .env("DBAAS_ADMISSION_WAIT_MS", "100")
                .env("DBAAS_REQUEST_TIMEOUT_MS", "5000")
                .env("DBAAS_API_KEY_CACHE_SECONDS", "30")
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1");
            let mut proc = Proc::spawn("dbaas-api", cmd, &ctx.logs.join("api-ferretdb.log"))?;
            wait_http_ok(&mut proc, port, "/readyz", Duration::from_secs(30))?;
            let http = reqwest::Client::new();
            let base = format!("http://{listen}/api/v1/admin/tenants");
            let tenant: Value = http
                .post(&base)
                .bearer_auth(&admin)
                .json(&json!({"name": db}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = tenant["id"].as_str().context("tenant id")?.to_string();
            let key: Value = http
                .post(format!("{base}/{id}/api-keys"))
                .bearer_auth(&admin)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let key = key["key"].as_str().context("api key")?.to_string();
            Ok(Server {
                proc,
                port,
                key,
                tenant_id: id,
                mongodb_database: Some(db),
            })
        }
    }
}

/// Creates the databases the load goes to; their ids.
async fn create_databases(server: &Server) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..DATABASES {
        let body = json!({"name": format!("lat{i}"), "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 10});
        let resp = http
            .post(format!("http://127.0.0.1:{}/api/v1/databases", server.port))
            .bearer_auth(&server.key)
            .json(&body)
            .send()
            .await?;
        if resp.status() != reqwest::StatusCode::CREATED {
            bail!(
                "creating a database answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let db: Value = resp.json().await?;
        ids.push(db["id"].as_str().context("database id")?.to_string());
    }
    Ok(ids)
}

/// The URL pattern of `--rand-regex-url`: one of `ids` per request. Dots
/// are literal there (oha disables `.`), so the host needs no escaping;
/// escaping it would change the host.
fn target_regex(server: &Server, ids: &[String]) -> String {
    format!(
        "http://127.0.0.1:{}/api/v1/databases/({})",
        server.port,
        ids.join("|")
    )
}

/// Fails unless every URL oha would generate goes to this server: the load
/// must only ever reach the loopback address it was meant for.
fn check_urls(ctx: &Ctx, server: &Server, ids: &[String]) -> anyhow::Result<()> {
    let out = Command::new(&ctx.oha)
        .args([
            "--dump-urls",
            "50",
            "--rand-regex-url",
            &target_regex(server, ids),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("http://127.0.0.1:{}/api/v1/databases/", server.port);
    let urls: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if urls.is_empty()
        || urls
            .iter()
            .any(|u| !u.starts_with(&prefix) || !ids.iter().any(|id| u.ends_with(id.as_str())))
    {
        bail!("oha would send load elsewhere than {prefix}<id>: {urls:?}");
    }
    Ok(())
}

/// One `oha` run of `seconds` at `concurrency`.
fn oha(
    ctx: &Ctx,
    server: &Server,
    ids: &[String],
    method: &str,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<LoadRun> {
    let url = target_regex(server, ids);
    let mut cmd = Command::new(&ctx.oha);
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--wait-ongoing-requests-after-deadline",
    ])
    .args([
        "-c",
        &concurrency.to_string(),
        "-z",
        &format!("{}ms", (seconds * 1000.0) as u64),
    ])
    .args(["-H", &format!("Authorization: Bearer {}", server.key)])
    .args(["-m", method]);
    if method == "PATCH" {
        // A random size per request: most PATCHes change desired state
        // (a compare-and-set write), the rest are read-only no-ops.
        let body = ctx.out.join("patch-bodies.txt");
        let lines: Vec<String> = ["micro", "small", "medium", "large", "xlarge", "2xlarge"]
            .iter()
            .map(|s| format!("{{\"size\":\"db.t3.{s}\"}}"))
            .collect();
        std::fs::write(&body, lines.join("\n") + "\n")?;
        cmd.args(["-T", "application/json", "-Z"]).arg(&body);
    }
    cmd.args(["--rand-regex-url", &url]);
    let out = cmd
        .output()
        .with_context(|| format!("running {}", ctx.oha.display()))?;
    if !out.status.success() {
        bail!(
            "oha failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("oha's JSON output")?;
    let lat = &v["metrics"]["latency_ms"];
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    let statuses: BTreeMap<String, u64> = v["statusCodeDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let errors: u64 = v["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    Ok(LoadRun {
        requests: statuses.values().sum::<u64>() + errors,
        rps: f(&v["summary"]["requestsPerSec"]),
        p50_ms: f(&lat["p50"]),
        p95_ms: f(&lat["p95"]),
        p99_ms: f(&lat["p99"]),
        max_ms: f(&lat["max"]),
        statuses,
        errors,
    })
}

fn summarize(
    backend: Backend,
    method: &str,
    concurrency: usize,
    seconds: f64,
    runs: Vec<LoadRun>,
    load: [f64; 3],
) -> LoadResult {
    let s = |g: fn(&LoadRun) -> f64| Spread::of(&runs.iter().map(g).collect::<Vec<_>>());
    let total: u64 = runs.iter().map(|r| r.requests).sum();
    let ok: u64 = runs
        .iter()
        .map(|r| r.statuses.get("200").copied().unwrap_or(0))
        .sum();
    LoadResult {
        backend,
        method: method.into(),
        concurrency,
        seconds,
        p50_ms: s(|r| r.p50_ms),
        p95_ms: s(|r| r.p95_ms),
        p99_ms: s(|r| r.p99_ms),
        max_ms: s(|r| r.max_ms),
        rps: s(|r| r.rps),
        non_200_share: if total == 0 {
            1.0
        } else {
            1.0 - ok as f64 / total as f64
        },
        runs,
        load,
    }
}

pub async fn run(
    ctx: &Ctx,
    backends: &[Backend],
    settings: &Settings,
) -> anyhow::Result<ApiResults> {
    let mut loads = Vec::new();
    let mut footprints = Vec::new();
    for &backend in backends {
        println!("  {} ...", backend.label());
        let server = start(ctx, backend).await?;
        let result = async {
            let ids = create_databases(&server).await?;
            check_urls(ctx, &server, &ids)?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rest = proc_kb(server.proc.pid, "VmRSS").unwrap_or(0);
            // Warm-up, not counted; it must be answered 200 by this server.
            let warm = oha(ctx, &server, &ids, "GET", settings.concurrency, 1.0)?;
            let ok = warm.statuses.get("200").copied().unwrap_or(0);
            if ok * 10 < warm.requests * 9 {
                bail!(
                    "the warm-up got {ok} 200s of {} requests ({:?}); see {}",
                    warm.requests,
                    warm.statuses,
                    server.proc.log.display()
                );
            }
            for (method, concurrency, seconds) in [
                ("GET", settings.concurrency, settings.seconds),
                ("PATCH", settings.concurrency, settings.seconds),
                ("GET", 1, settings.seconds / 2.0),
                ("PATCH", 1, settings.seconds / 2.0),
            ] {
                let load = loadavg();
                let mut runs = Vec::new();
                for _ in 0..settings.repeats {
                    runs.push(oha(ctx, &server, &ids, method, concurrency, seconds)?);
                }
                let r = summarize(backend, method, concurrency, seconds, runs, load);
                println!(
                    "    {method:5} c={concurrency:<3} p50 {} p99 {} ms, {} req/s, non-200 {:.2}%",
                    r.p50_ms.show(2),
                    r.p99_ms.show(2),
                    r.rps.show(0),
                    r.non_200_share * 100.0
                );
                loads.push(r);
            }
            footprints.push(Footprint {
                backend,
                binary: match backend {
                    Backend::Embedded => "dbaas-local's API (dbaas-bench serve-embedded)".into(),
                    Backend::Ferretdb => "dbaas-api".into(),
                },
                databases: DATABASES,
                rest_rss_mb: rest as f64 / 1024.0,
                after_load_rss_mb: proc_kb(server.proc.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0,
                peak_rss_mb: proc_kb(server.proc.pid, "VmHWM").unwrap_or(0) as f64 / 1024.0,
            });
            anyhow::Ok(())
        }
        .await;
        let _ = server.proc.stop();
        if let Some(db) = &server.mongodb_database
            && let Ok(store) = dbaas_store::mongo::MongoStore::new(&ctx.rig.mongodb_uri, db).await
        {
            let _ = store.database().drop().await;
        }
        result?;
    }
    Ok(ApiResults { loads, footprints })
}

/// `dbaas-bench serve-embedded`: the API exactly as `dbaas-local` serves
/// it (the same router on the embedded SQLite store), without the local
/// mode's background roles and with the per-key rate limit lifted (the
/// local mode has no setting for it).
pub async fn serve_embedded(
    data_dir: &std::path::Path,
    listen: std::net::SocketAddr,
    key: &str,
) -> anyhow::Result<()> {
    use std::num::NonZeroU32;
    use std::sync::Arc;

    use dbaas_rest::{AppState, Limits, router};
    use dbaas_store::embedded::SqliteStore;

    dbaas_runtime::init_tracing(false);
    std::fs::create_dir_all(data_dir)?;
    let store = Arc::new(SqliteStore::open(data_dir.join("store.sqlite"))?);
    dbaas_local::ensure_dev_key(&*store, Some(key), &data_dir.join("api-key")).await?;
    let limits = Limits {
        request_timeout: Duration::from_secs(5),
        rate_limit_per_second: NonZeroU32::new(1_000_000).expect("non-zero"),
        rate_limit_burst: NonZeroU32::new(1_000_000).expect("non-zero"),
        ..Limits::default()
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, router(AppState::new(store, None, limits)))
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await?;
    Ok(())
}
