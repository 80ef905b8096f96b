//! Logging set-up and metrics pushed from short-lived pods.
//!
//! The reconciler and worker live for one pass or one operation, so
//! Prometheus cannot scrape them: they push to the Pushgateway. A counter
//! that starts at zero in every pod would reset on every push, so counters
//! are running totals kept in the store ([`crate::store::Store::add_to_counter`]):
//! each run adds its increments there and pushes the totals. Gauges (last
//! pass duration, queue depth, drift per database) push as they are.

use std::fmt::Write as _;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::error::{Error, Result};
use crate::store::Store;

/// Installs the tracing subscriber: JSON lines when `json`, else compact
/// text; the level comes from `RUST_LOG` (default `info`).
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests, local mode) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Metric families in the Prometheus text format, ready to push.
#[derive(Debug, Default)]
pub struct PushBody {
    text: String,
}

impl PushBody {
    /// Starts a family: one `# HELP` and `# TYPE` line.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Adds `by` to a durable counter (labels folded into its key) and returns
/// the running total to push.
pub async fn durable_total(
    store: &dyn Store,
    name: &str,
    labels: &[(&str, &str)],
    by: f64,
) -> Result<f64> {
    let mut key = name.to_string();
    for (k, v) in labels {
        let _ = write!(key, ",{k}={v}");
    }
    store.add_to_counter(&key, by).await
}

/// Bucket bounds (seconds) of the durations the control plane records.
pub const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Adds `observations` to a durable histogram and writes its family
/// (buckets, sum, count) into `body`.
pub async fn durable_histogram(
    store: &dyn Store,
    body: &mut PushBody,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    observations: &[f64],
) -> Result<()> {
    body.family(name, "histogram", help);
    let bucket_name = format!("{name}_bucket");
    let bounds = DURATION_BUCKETS.iter().copied().chain([f64::INFINITY]);
    for bound in bounds {
        let le = if bound.is_infinite() {
            "+Inf".to_string()
        } else {
            bound.to_string()
        };
        let inside = observations.iter().filter(|o| **o <= bound).count() as f64;
        let mut l = labels.to_vec();
        l.push(("le", &le));
        let total = durable_total(store, &bucket_name, &l, inside).await?;
        body.sample(&bucket_name, &l, total);
    }
    let sum_name = format!("{name}_sum");
    let sum = durable_total(store, &sum_name, labels, observations.iter().sum()).await?;
    body.sample(&sum_name, labels, sum);
    let count_name = format!("{name}_count");
    let count = durable_total(store, &count_name, labels, observations.len() as f64).await?;
    body.sample(&count_name, labels, count);
    Ok(())
}

/// Replaces the Pushgateway group `job` (and `instance`, if given) with
/// `body`. Pushing is best effort for callers: they log a failure.
pub async fn push(gateway: &str, job: &str, instance: Option<&str>, body: &PushBody) -> Result<()> {
    let mut url = format!("{}/metrics/job/{job}", gateway.trim_end_matches('/'));
    if let Some(i) = instance {
        let _ = write!(url, "/instance/{i}");
    }
    let response = reqwest::Client::new()
        .put(url)
        .timeout(Duration::from_secs(5))
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(body.as_str().to_string())
        .send()
        .await
        .map_err(|e| Error::Metrics(e.to_string()))?;
    if !response.status().is_success() {
        return Err(Error::Metrics(format!(
            "pushgateway answered {}",
            response.status()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let mut b = PushBody::default();
        b.family("x_total", "counter", "Things.")
            .sample("x_total", &[("type", "a\"b")], 2.0);
        assert_eq!(
            b.as_str(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{type=\"a\\\"b\"} 2\n"
        );
    }
}
