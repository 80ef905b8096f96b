//! `dbaas-bench`: the benchmarks of `just bench`. Runs the release binaries
//! as processes against the test rig and writes `target/bench/report.md`
//! and `target/bench/report.json`.
//!
//! Sections: binary sizes; cold starts (exec to first answer or exit) and
//! RSS at rest; API latency and throughput with `oha` on the embedded
//! store; the API on the rig's store (FerretDB) for GET, PATCH and list at
//! 1, 16 and 64 clients beside the store's own floor, with a closed-loop
//! generator of its own; the reconciler pass at 1k and 10k databases; the
//! worker from dequeue to OpsRequest. Every figure is the median of its
//! repeats with their min and max, next to the core count and the load
//! average.

mod api;
mod closed;
mod cold;
mod report;
mod scale;
mod store_api;
mod util;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
pub use dbaas_testkit::rig::Rig;

/// What every section needs.
pub struct Ctx {
    pub rig: Rig,
    /// Reports and scratch files.
    pub out: PathBuf,
    /// One log file per process started.
    pub logs: PathBuf,
    /// Where the release binaries are.
    pub bin_dir: PathBuf,
    /// The `oha` load generator.
    pub oha: PathBuf,
}

impl Ctx {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API on the embedded store (used by the API section).
    ServeEmbedded {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The tenant's API key to register.
        #[arg(long)]
        key: String,
    },
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Output directory of the reports and logs.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Directory of the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The oha binary.
    #[arg(long, env = "OHA")]
    oha: Option<PathBuf>,
    /// Runs per cold start.
    #[arg(long, default_value_t = 30)]
    cold_runs: usize,
    /// Concurrent clients of the API load on the embedded store (oha).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per API load run (on the embedded store, half of it at
    /// concurrency 1; on the rig's store, every run and its floor).
    #[arg(long, default_value_t = 4.0)]
    api_seconds: f64,
    /// Databases in the store for the API on the rig's store (inserted
    /// straight into the store, not through the API).
    #[arg(long, default_value_t = 1000)]
    api_databases: usize,
    /// Concurrent clients of the API on the rig's store, and of its floor.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    api_clients: Vec<usize>,
    /// Repeats of every API load run and reconciler pass.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Database counts of the reconciler passes.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    scales: Vec<usize>,
    /// Scales from this many databases up start with the drifted
    /// databases' operations seeded as planned, instead of timing a first
    /// pass that plans them.
    #[arg(long, default_value_t = 5000)]
    plan_below: usize,
    /// Operations the worker section runs.
    #[arg(long, default_value_t = 10)]
    worker_ops: usize,
    /// Sections to run (all by default): sizes, cold, api (both of
    /// api-embedded and api-store), reconciler, worker.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A short run to try the harness: few repeats, 1k databases only.
    #[arg(long)]
    quick: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::ServeEmbedded {
        data_dir,
        listen,
        key,
    }) = cli.command
    {
        return api::serve_embedded(&data_dir, listen, &key).await;
    }
    let mut args = cli.run;
    if args.quick {
        args.cold_runs = 5;
        args.api_seconds = 1.0;
        args.repeats = 2;
        args.scales = vec![1000];
        args.worker_ops = 3;
    }
    run(args).await
}

fn default_oha() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cached = home.join(".cache/dbaas-rig/oha-1.16.0/bin/oha");
    if cached.is_file() {
        cached
    } else {
        PathBuf::from("oha")
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let rig = Rig::try_from_env().map_err(anyhow::Error::msg)?;
    let logs = args.out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let ctx = Ctx {
        rig,
        out: args.out.clone(),
        logs,
        bin_dir: args.bin_dir.clone(),
        oha: args.oha.clone().unwrap_or_else(default_oha),
    };
    for bin in [
        "dbaas-api",
        "dbaas-local",
        "dbaas-reconciler",
        "dbaas-worker",
        "kubedb-standin",
    ] {
        anyhow::ensure!(
            ctx.bin(bin).is_file(),
            "{} is missing: `cargo build --release --workspace --bins` first",
            ctx.bin(bin).display()
        );
    }
    let want = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut r = report::Report::new(&args, &ctx);
    println!(
        "dbaas-bench: {} cores, load {:?}",
        r.machine.cores, r.machine.load_start
    );

    if want("sizes") {
        println!("binary sizes ...");
        r.sizes(&ctx);
    }
    if want("cold") {
        println!("cold starts ({} runs each) ...", args.cold_runs);
        match cold::run(&ctx, args.cold_runs).await {
            Ok(c) => {
                for s in &c.starts {
                    println!("  {:20} {:60} {} ms", s.binary, s.until, s.ms.show(1));
                }
                r.cold = Some(c.starts);
                r.rest_rss.extend(c.rest);
            }
            Err(e) => r.error("cold starts", e),
        }
    }
    if want("api") || want("api-embedded") {
        println!(
            "API latency on the embedded store ({} clients, {} s runs, {} repeats) ...",
            args.concurrency, args.api_seconds, args.repeats
        );
        let settings = api::Settings {
            concurrency: args.concurrency,
            seconds: args.api_seconds,
            repeats: args.repeats,
        };
        match api::run(&ctx, &[api::Backend::Embedded], &settings).await {
            Ok(a) => {
                r.api = Some(a.loads);
                r.api_footprint.extend(a.footprints);
            }
            Err(e) => r.error("API latency", e),
        }
    }
    if want("api") || want("api-store") {
        println!(
            "API on the rig's store and the store's floor ({} databases, {:?} clients, {} s runs, {} repeats) ...",
            args.api_databases, args.api_clients, args.api_seconds, args.repeats
        );
        let settings = store_api::Settings {
            databases: args.api_databases,
            clients: args.api_clients.clone(),
            seconds: args.api_seconds,
            repeats: args.repeats,
        };
        match store_api::run(&ctx, &settings).await {
            Ok(a) => {
                r.api_store = Some(a.result);
                r.api_footprint.push(a.footprint);
            }
            Err(e) => r.error("API on the rig's store", e),
        }
    }
    if want("reconciler") {
        for &n in &args.scales {
            println!("reconciler at {n} databases ...");
            // Planning costs a pass about 150 ms per operation on FerretDB:
            // the passes above `plan_below` start with their operations planned.
            match scale::reconciler_at(&ctx, n, args.repeats, n >= args.plan_below).await {
                Ok(s) => r.reconciler.push(s),
                Err(e) => r.error(&format!("reconciler at {n}"), e),
            }
        }
    }
    if want("worker") {
        println!("worker ({} operations) ...", args.worker_ops);
        match scale::worker(&ctx, args.worker_ops).await {
            Ok(w) => {
                println!(
                    "  dequeue → OpsRequest {} ms, peak RSS {} MB",
                    w.dequeue_to_ops_request_ms.show(1),
                    w.peak_rss_mb.show(1)
                );
                r.rest_rss.push(cold::RestRss {
                    binary: "kubedb-standin".into(),
                    rss_mb: w.standin_rest_rss_mb,
                    peak_mb: w.standin_rest_rss_mb,
                    how: "VmRSS 2 s after start, idle on a namespace of a few databases".into(),
                });
                r.worker = Some(w);
            }
            Err(e) => r.error("worker", e),
        }
    }
    r.finish(started.elapsed());
    let (json, md) = (args.out.join("report.json"), args.out.join("report.md"));
    std::fs::write(&json, serde_json::to_string_pretty(&r)?)?;
    std::fs::write(&md, r.markdown())?;
    println!(
        "wrote {} and {} in {:.0} s",
        md.display(),
        json.display(),
        started.elapsed().as_secs_f64()
    );
    if !r.errors.is_empty() {
        anyhow::bail!(
            "{} section(s) failed: {}",
            r.errors.len(),
            r.errors.join("; ")
        );
    }
    Ok(())
}
