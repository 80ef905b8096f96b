//! Metrics pushed from short-lived pods, built with the `prometheus`
//! crate's registry and text encoder, as the API's scraped metrics are.
//!
//! The reconciler and worker live for one pass or one operation, so
//! Prometheus cannot scrape them: they push to the Pushgateway. A counter
//! that starts at zero in every pod would reset on every push, so counters
//! are running totals kept in the store ([`Store::add_to_counter`]): each
//! run adds its increments there, and its fresh registry's counters start at
//! zero and are raised to the totals before the push. Histograms are kept
//! the same way, bucket by bucket ([`DurableHistogram`]). Gauges (last pass
//! duration, queue depth, drift per database) push as they are.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dbaas_core::error::{Error, Result};
use dbaas_store::Store;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

/// Bucket bounds (seconds) of the durations the control plane records.
pub const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

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

/// A histogram whose buckets, sum and count are durable totals in the
/// store: the `prometheus` crate's own histogram can only count what this
/// process observed, so this collector reports the totals instead.
#[derive(Clone)]
pub struct DurableHistogram {
    desc: Arc<Desc>,
    series: Arc<Mutex<Vec<Metric>>>,
}

impl DurableHistogram {
    pub fn new(name: &str, help: &str, label_names: &[&str]) -> Self {
        let desc = Desc::new(
            name.to_string(),
            help.to_string(),
            label_names.iter().map(|l| l.to_string()).collect(),
            Default::default(),
        )
        .expect("a valid metric name");
        DurableHistogram {
            desc: Arc::new(desc),
            series: Arc::default(),
        }
    }

    /// Adds `observations` to the totals of the series with `labels` and
    /// records the series' new totals for the next collection.
    pub async fn observe(
        &self,
        store: &dyn Store,
        labels: &[(&str, &str)],
        observations: &[f64],
    ) -> Result<()> {
        let name = &self.desc.fq_name;
        let bucket_name = format!("{name}_bucket");
        let mut buckets = Vec::new();
        for bound in DURATION_BUCKETS.iter().copied().chain([f64::INFINITY]) {
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                bound.to_string()
            };
            let inside = observations.iter().filter(|o| **o <= bound).count() as f64;
            let mut key_labels = labels.to_vec();
            key_labels.push(("le", &le));
            let total = durable_total(store, &bucket_name, &key_labels, inside).await?;
            if bound.is_finite() {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(bound);
                bucket.set_cumulative_count(total as u64);
                buckets.push(bucket);
            }
        }
        let sum = durable_total(
            store,
            &format!("{name}_sum"),
            labels,
            observations.iter().sum(),
        )
        .await?;
        let count = durable_total(
            store,
            &format!("{name}_count"),
            labels,
            observations.len() as f64,
        )
        .await?;
        let mut histogram = Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_sum(sum);
        histogram.set_sample_count(count as u64);
        let mut metric = Metric::from_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(k.to_string());
                    pair.set_value(v.to_string());
                    pair
                })
                .collect(),
        );
        metric.set_histogram(histogram);
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(metric);
        Ok(())
    }
}

impl Collector for DurableHistogram {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(
            self.series
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        );
        vec![family]
    }
}

/// Registers `collector` in `registry`; names are fixed in code, so a
/// clash is a bug.
pub fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: &C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector.clone()
}

/// The registry's families in the Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String> {
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .map_err(|e| Error::Metrics(Box::new(e)))?;
    String::from_utf8(text).map_err(|e| Error::Metrics(Box::new(e)))
}

/// Replaces the Pushgateway group `job` (and `instance`, if given) with
/// the registry's families. Pushing is best effort for callers: they log a
/// failure.
pub async fn push(
    gateway: &str,
    job: &str,
    instance: Option<&str>,
    registry: &Registry,
) -> Result<()> {
    let mut url = format!("{}/metrics/job/{job}", gateway.trim_end_matches('/'));
    if let Some(i) = instance {
        let _ = write!(url, "/instance/{i}");
    }
    let request = http::Request::put(url)
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(encode(registry)?)))
        .map_err(|e| Error::Metrics(Box::new(e)))?;
    // The client already linked for kube (plain HTTP: the Pushgateway is an
    // in-cluster Service), so the short-lived binaries carry no second one.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| Error::Metrics("pushgateway did not answer within 5s".into()))?
        .map_err(|e| Error::Metrics(Box::new(e)))?;
    if !response.status().is_success() {
        return Err(Error::Metrics(
            format!("pushgateway answered {}", response.status()).into(),
        ));
    }
    Ok(())
}
