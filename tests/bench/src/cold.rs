//! Cold starts (exec to first answer or to exit) and RSS at rest.

use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use dbaas_cluster::Cluster;
use serde::Serialize;

use crate::Ctx;
use crate::scale::Scenario;
use crate::util::{Proc, Spread, loadavg, proc_kb, token, wait_http_ok};
use dbaas_testkit::rig::free_port;

#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub binary: String,
    /// What ends the measurement.
    pub until: String,
    pub ms: Spread,
    /// Peak RSS of the runs that exit by themselves.
    pub peak_rss_mb: Option<Spread>,
    /// Runs that failed (not in the timings), with the reason.
    pub failures: Vec<String>,
    pub load: [f64; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct RestRss {
    pub binary: String,
    pub rss_mb: f64,
    /// Peak RSS so far (VmHWM).
    pub peak_mb: f64,
    pub how: String,
}

pub struct ColdResults {
    pub starts: Vec<ColdStart>,
    pub rest: Vec<RestRss>,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Runs `make_cmd()` to its exit `runs` times: wall times and peak RSS.
fn exits(
    ctx: &Ctx,
    name: &str,
    runs: usize,
    mut make_cmd: impl FnMut() -> Command,
) -> anyhow::Result<Runs> {
    let mut r = Runs::default();
    for i in 0..runs {
        let log = ctx.logs.join(format!("cold-{name}-{i}.log"));
        let exit = Proc::spawn(name, make_cmd(), &log)?.wait(START_TIMEOUT)?;
        if exit.code != 0 {
            // Kept out of the timings, and reported with the row.
            r.failures.push(format!(
                "run {i} exited {}: {}",
                exit.code,
                crate::util::panic_of(&log)
            ));
            continue;
        }
        r.ms.push(exit.wall.as_secs_f64() * 1000.0);
        // 0: it exited before the first sample.
        if exit.peak_rss_kb > 0 {
            r.rss.push(mb(exit.peak_rss_kb));
        }
    }
    if r.failures.len() * 2 > runs {
        bail!(
            "{name}: {} of {runs} runs failed: {:?}",
            r.failures.len(),
            r.failures
        );
    }
    Ok(r)
}

/// Timings, peak RSS and failures of repeated runs.
#[derive(Default, Clone)]
struct Runs {
    ms: Vec<f64>,
    rss: Vec<f64>,
    failures: Vec<String>,
}

/// Starts a server `runs + 1` times (the first run warms the page cache
/// and the data directory, and is not counted) until each path answers 200.
/// Returns the times per path, and RSS at rest from the last run.
fn servers(
    ctx: &Ctx,
    name: &str,
    runs: usize,
    paths: &[&str],
    mut make_cmd: impl FnMut(u16) -> Command,
) -> anyhow::Result<(Vec<Vec<f64>>, RestRss)> {
    let mut times = vec![Vec::new(); paths.len()];
    let mut rest = None;
    for i in 0..=runs {
        let port = free_port();
        let log = ctx.logs.join(format!("cold-{name}-{i}.log"));
        let mut proc = Proc::spawn(name, make_cmd(port), &log)?;
        for (p, path) in paths.iter().enumerate() {
            let t = wait_http_ok(&mut proc, port, path, START_TIMEOUT)?;
            if i > 0 {
                times[p].push(t.as_secs_f64() * 1000.0);
            }
        }
        if i == runs {
            std::thread::sleep(Duration::from_secs(2));
            rest = Some(RestRss {
                binary: name.to_string(),
                rss_mb: mb(proc_kb(proc.pid, "VmRSS").unwrap_or(0)),
                peak_mb: mb(proc_kb(proc.pid, "VmHWM").unwrap_or(0)),
                how: "VmRSS 2 s after start, idle".into(),
            });
        }
        proc.stop()?;
    }
    Ok((times, rest.expect("at least one run")))
}

pub async fn run(ctx: &Ctx, runs: usize) -> anyhow::Result<ColdResults> {
    let mut starts = Vec::new();
    let mut rest = Vec::new();
    let row = |binary: &str, until: &str, ms: &[f64], rss: Option<&[f64]>| ColdStart {
        binary: binary.into(),
        until: until.into(),
        ms: Spread::of(ms),
        peak_rss_mb: rss.map(Spread::of),
        failures: Vec::new(),
        load: loadavg(),
    };
    let exited = |binary: &str, until: &str, r: Runs| ColdStart {
        failures: r.failures,
        ..row(binary, until, &r.ms, Some(&r.rss))
    };

    // The floor: exec of a process that does nothing.
    let r = exits(ctx, "true", runs, || Command::new("/bin/true"))?;
    starts.push(exited(
        "/bin/true",
        "exit (the exec floor of this machine)",
        r.clone(),
    ));
    let r = exits(ctx, "api-version", runs, || {
        let mut c = Command::new(ctx.bin("dbaas-api"));
        c.arg("--version");
        c
    })?;
    starts.push(exited(
        "dbaas-api --version",
        "exit (load and link the binary, no runtime)",
        r.clone(),
    ));

    // The API on the rig's FerretDB.
    let db = format!("bench_cold_{}", token(6));
    let (times, r) = servers(ctx, "dbaas-api", runs, &["/healthz", "/readyz"], |port| {
        let mut c = Command::new(ctx.bin("dbaas-api"));
        c.env("MONGODB_URI", &ctx.rig.mongodb_uri)
            .env("MONGODB_DATABASE", &db)
            .env("DBAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        c
    })?;
    starts.push(row("dbaas-api", "first 200 from /healthz", &times[0], None));
    starts.push(row(
        "dbaas-api",
        "first 200 from /readyz (first store round trip)",
        &times[1],
        None,
    ));
    rest.push(r);
    if let Ok(store) = dbaas_store::mongo::MongoStore::new(&ctx.rig.mongodb_uri, &db).await {
        let _ = store.database().drop().await;
    }

    // The local mode on its embedded store, queue and cluster.
    let data = ctx.out.join("cold-local-data");
    let _ = std::fs::remove_dir_all(&data);
    let (times, r) = servers(ctx, "dbaas-local", runs, &["/healthz"], |port| {
        let mut c = Command::new(ctx.bin("dbaas-local"));
        c.env("DBAAS_DATA_DIR", &data)
            .env("DBAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBAAS_DEV_API_KEY", "bench-cold-start-key")
            .env("RECONCILIATION_INTERVAL", "3600")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        c
    })?;
    starts.push(row(
        "dbaas-local",
        "first 200 from /healthz (data directory exists)",
        &times[0],
        None,
    ));
    rest.push(r);

    // The worker and reconciler on a scenario of their own.
    let sc = Scenario::new(&ctx.rig, "cold").await?;
    let result = async {
        let r = exits(ctx, "dbaas-worker", runs, || {
            let mut c = sc.command(ctx, "dbaas-worker");
            c.env("DBAAS_DEQUEUE_TIMEOUT_SECONDS", "0");
            c
        })?;
        starts.push(exited(
            "dbaas-worker",
            "exit on an empty queue (one queue round trip)",
            r.clone(),
        ));
        rest.push(RestRss {
            binary: "dbaas-worker".into(),
            rss_mb: Spread::of(&r.rss).median,
            peak_mb: Spread::of(&r.rss).max,
            how: "peak RSS (VmHWM sampled every 0.2 ms) of an idle run: it exits when idle".into(),
        });

        let r = exits(ctx, "dbaas-reconciler", runs, || {
            let mut c = sc.command(ctx, "dbaas-reconciler");
            c.env("POD_NAME", "dbaas-bench");
            c
        })?;
        starts.push(exited(
            "dbaas-reconciler",
            "exit after a full pass over 0 databases (store, queue, API server)",
            r.clone(),
        ));
        rest.push(RestRss {
            binary: "dbaas-reconciler".into(),
            rss_mb: Spread::of(&r.rss).median,
            peak_mb: Spread::of(&r.rss).max,
            how: "peak RSS (VmHWM sampled every 0.2 ms) of a pass over 0 databases".into(),
        });

        // Another holder has the Lease: the pass exits after two calls.
        sc.cluster
            .try_acquire_lease(
                &sc.namespace,
                "dbaas-reconciler",
                "someone-else",
                3600,
                Utc::now(),
            )
            .await?;
        let r = exits(ctx, "dbaas-reconciler-held", runs, || {
            let mut c = sc.command(ctx, "dbaas-reconciler");
            c.env("POD_NAME", "dbaas-bench");
            c
        })?;
        starts.push(exited(
            "dbaas-reconciler",
            "exit when another holder has the Lease (API server only)",
            r.clone(),
        ));
        anyhow::Ok(())
    }
    .await;
    sc.clean(&ctx.rig).await;
    result?;
    Ok(ColdResults { starts, rest })
}
