//! A closed-loop load generator: `clients` tasks, each sending its next
//! request when the previous one is answered, for a fixed time. Every
//! request's latency and outcome is kept, so a run reports percentiles per
//! status, whether 503s carried `Retry-After`, and whether each write
//! really changed something. The same generator drives the API over HTTP
//! and the store through its driver, so the two are measured alike.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

/// What a request got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// An HTTP status.
    Http(u16),
    /// A driver call that succeeded.
    Ok,
    /// A compare-and-set through the driver that found the record changed.
    Conflict,
    /// A driver read that found no record.
    Missing,
    /// A driver call that failed.
    Error,
    /// A driver call not done within the deadline the API has.
    Timeout,
    /// No HTTP response (connection error or client timeout).
    NoResponse,
}

impl Status {
    pub fn label(self) -> String {
        match self {
            Status::Http(code) => code.to_string(),
            Status::Ok => "ok".into(),
            Status::Conflict => "conflict".into(),
            Status::Missing => "missing".into(),
            Status::Error => "error".into(),
            Status::Timeout => "timeout".into(),
            Status::NoResponse => "no response".into(),
        }
    }

    /// A 2xx answer or a driver call that did what it was asked.
    pub fn success(self) -> bool {
        matches!(self, Status::Ok) || matches!(self, Status::Http(c) if (200..300).contains(&c))
    }
}

/// The outcome of one request.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub status: Status,
    /// The answer carried a `Retry-After` header.
    pub retry_after: bool,
    /// For writes answered with success: whether the record's generation
    /// moved (a real change), None for reads and failed writes.
    pub changed: Option<bool>,
}

impl Outcome {
    pub fn of(status: Status) -> Outcome {
        Outcome {
            status,
            retry_after: false,
            changed: None,
        }
    }
}

/// The requests of one status in a run.
#[derive(Debug, Clone, Serialize)]
pub struct StatusStat {
    pub status: String,
    pub count: u64,
    /// Of all requests of the run(s).
    pub share: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// How many of them carried `Retry-After`.
    pub retry_after: u64,
}

/// One run of the generator.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub clients: usize,
    /// Until the last request in flight at the end was answered.
    pub wall_s: f64,
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub statuses: Vec<StatusStat>,
    /// Writes answered with success that changed the record.
    pub changed: u64,
    /// Writes answered with success that left it as it was.
    pub unchanged: u64,
}

impl Run {
    pub fn success_share(&self) -> f64 {
        share_of(&self.statuses, |s| s.success())
    }
}

/// The share of requests whose status passes `keep`, over `stats`.
pub fn share_of(stats: &[StatusStat], keep: impl Fn(Status) -> bool) -> f64 {
    let total: u64 = stats.iter().map(|s| s.count).sum();
    if total == 0 {
        return 0.0;
    }
    let n: u64 = stats
        .iter()
        .filter(|s| keep(parse_label(&s.status)))
        .map(|s| s.count)
        .sum();
    n as f64 / total as f64
}

/// The status a label of [`Status::label`] names.
pub fn parse_label(label: &str) -> Status {
    match label {
        "ok" => Status::Ok,
        "conflict" => Status::Conflict,
        "missing" => Status::Missing,
        "error" => Status::Error,
        "timeout" => Status::Timeout,
        "no response" => Status::NoResponse,
        code => code.parse().map_or(Status::Error, Status::Http),
    }
}

#[derive(Clone, Copy)]
struct Sample {
    ms: f64,
    outcome: Outcome,
}

/// Runs `clients` closed loops for `duration`: client `c` calls
/// `request(c, n)` for its `n`th request. Requests in flight at the end
/// are waited for and counted, and the rate is over the whole wall time.
pub async fn run<F, Fut>(clients: usize, duration: Duration, request: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let request = request.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let outcome = request(client, n).await;
                samples.push(Sample {
                    ms: t.elapsed().as_secs_f64() * 1000.0,
                    outcome,
                });
                n += 1;
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(r) = tasks.join_next().await {
        samples.extend(r.expect("a load client panicked"));
    }
    let wall_s = started.elapsed().as_secs_f64();
    summarize(clients, wall_s, &samples)
}

/// The `q` quantile (nearest rank) of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn summarize(clients: usize, wall_s: f64, samples: &[Sample]) -> Run {
    let mut all: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    all.sort_by(f64::total_cmp);
    let mut by_status: BTreeMap<Status, (Vec<f64>, u64)> = BTreeMap::new();
    for s in samples {
        let e = by_status.entry(s.outcome.status).or_default();
        e.0.push(s.ms);
        e.1 += u64::from(s.outcome.retry_after);
    }
    let total = samples.len() as u64;
    let statuses = by_status
        .into_iter()
        .map(|(status, (mut ms, retry_after))| {
            ms.sort_by(f64::total_cmp);
            StatusStat {
                status: status.label(),
                count: ms.len() as u64,
                share: ms.len() as f64 / total.max(1) as f64,
                p50_ms: quantile(&ms, 0.5),
                p99_ms: quantile(&ms, 0.99),
                max_ms: ms.last().copied().unwrap_or(f64::NAN),
                retry_after,
            }
        })
        .collect();
    let changed = |c| {
        samples
            .iter()
            .filter(|s| s.outcome.changed == Some(c))
            .count() as u64
    };
    Run {
        clients,
        wall_s,
        requests: total,
        rps: total as f64 / wall_s,
        p50_ms: quantile(&all, 0.5),
        p95_ms: quantile(&all, 0.95),
        p99_ms: quantile(&all, 0.99),
        max_ms: all.last().copied().unwrap_or(f64::NAN),
        statuses,
        changed: changed(true),
        unchanged: changed(false),
    }
}

/// The statuses of several runs together: counts and shares over all
/// requests, per-status latencies the median of the runs' figures (max: the
/// largest).
pub fn merge_statuses(runs: &[Run]) -> Vec<StatusStat> {
    let total: u64 = runs.iter().map(|r| r.requests).sum();
    let mut by: BTreeMap<Status, Vec<&StatusStat>> = BTreeMap::new();
    for r in runs {
        for s in &r.statuses {
            by.entry(parse_label(&s.status)).or_default().push(s);
        }
    }
    by.into_iter()
        .map(|(status, stats)| {
            let med = |g: fn(&StatusStat) -> f64| {
                crate::util::Spread::of(&stats.iter().map(|s| g(s)).collect::<Vec<_>>()).median
            };
            let count: u64 = stats.iter().map(|s| s.count).sum();
            StatusStat {
                status: status.label(),
                count,
                share: count as f64 / total.max(1) as f64,
                p50_ms: med(|s| s.p50_ms),
                p99_ms: med(|s| s.p99_ms),
                max_ms: stats.iter().map(|s| s.max_ms).fold(f64::NAN, f64::max),
                retry_after: stats.iter().map(|s| s.retry_after).sum(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_every_request_and_its_status() {
        let run = run(4, Duration::from_millis(50), |client, n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if client == 0 && n % 2 == 1 {
                Outcome {
                    status: Status::Http(503),
                    retry_after: true,
                    changed: None,
                }
            } else {
                Outcome {
                    status: Status::Http(200),
                    retry_after: false,
                    changed: Some(n % 3 != 0),
                }
            }
        })
        .await;
        let sum: u64 = run.statuses.iter().map(|s| s.count).sum();
        assert_eq!(sum, run.requests);
        assert!(run.requests >= 8, "{run:?}");
        let s503 = run.statuses.iter().find(|s| s.status == "503").unwrap();
        assert_eq!(s503.retry_after, s503.count);
        assert!(run.success_share() < 1.0 && run.success_share() > 0.5);
        assert_eq!(
            run.changed + run.unchanged,
            run.requests - s503.count,
            "{run:?}"
        );
        let merged = merge_statuses(&[run.clone(), run.clone()]);
        assert_eq!(
            merged.iter().map(|s| s.count).sum::<u64>(),
            2 * run.requests
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v[..1], 0.99), 1.0);
    }
}
