//! How every Vouch subsystem declares its Prometheus metrics: each keeps
//! its own lock-free counters and implements
//! [`Collector`](prometheus_client::collector::Collector), declaring its
//! families with the functions here when `/metrics` is scraped; a process
//! registers every collector in one [`Registry`] and serves [`encode`].
//!
//! Names are given as they are exposed (`vouch_*`, counters ending in
//! `_total`): the OpenMetrics encoder appends `_total` to a counter's
//! samples itself, so [`counter`] and [`counter_family`] declare the family
//! without it and the samples keep the exposed name.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Declares the counter `name` (ending in `_total`) with one value.
pub fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = enc.encode_descriptor(family_name(name), help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// Declares the gauge `name` with one value.
pub fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// Declares the counter `name` (ending in `_total`) with one value per label
/// set in `rows`.
pub fn counter_family<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    family(enc, family_name(name), help, MetricType::Counter, rows)
}

/// Declares the gauge `name` with one value per label set in `rows`.
pub fn gauge_family<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Gauge, rows)
}

/// The family `name` of type `kind`, a sample per row.
fn family<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// A counter's family name: its exposed name without `_total`, which the
/// encoder adds back to every sample.
fn family_name(name: &str) -> &str {
    debug_assert!(name.ends_with("_total"), "counter {name} must end in _total");
    name.strip_suffix("_total").unwrap_or(name)
}

/// The OpenMetrics text of everything in `registry` (served as
/// [`CONTENT_TYPE`]).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail, and the collectors only fail when
    // their writer does.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(%e, "encoding /metrics");
    }
    text
}

/// The text of one collector alone, as [`encode`] writes it (for tests and
/// for reading one subsystem's metrics).
pub fn encode_one(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    encode(&registry)
}

/// The sorted names of every family in `text` (as [`encode`] writes it) as
/// they are exposed: a counter's samples carry `_total`. Tests compare them
/// with the names dashboards know, so that a rename breaks a test.
///
/// # Panics
///
/// When a sample's name is not its family's exposed name.
pub fn exposed_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|l| l.split_once(' ')) {
            names.push(if kind == "counter" { format!("{name}_total") } else { name.to_owned() });
        } else if !line.starts_with('#') {
            let sample = line.split([' ', '{']).next().unwrap_or_default();
            assert_eq!(names.last().map(String::as_str), Some(sample), "{line}");
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Two;

    impl Collector for Two {
        fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
            counter(&mut enc, "vouch_things_total", "Things.", 3)?;
            gauge(&mut enc, "vouch_level", "Level.", 7)?;
            counter_family(&mut enc, "vouch_by_total", "By kind.", [([("kind", "a")], 1)])?;
            gauge_family(&mut enc, "vouch_per", "Per peer.", [([("peer", "p\"q")], 2)])
        }
    }

    #[test]
    fn names_stay_as_declared() {
        assert_eq!(
            encode_one(Two),
            "# HELP vouch_things Things.\n# TYPE vouch_things counter\nvouch_things_total 3\n\
             # HELP vouch_level Level.\n# TYPE vouch_level gauge\nvouch_level 7\n\
             # HELP vouch_by By kind.\n# TYPE vouch_by counter\nvouch_by_total{kind=\"a\"} 1\n\
             # HELP vouch_per Per peer.\n# TYPE vouch_per gauge\nvouch_per{peer=\"p\\\"q\"} 2\n\
             # EOF\n"
        );
        let names = ["vouch_by_total", "vouch_level", "vouch_per", "vouch_things_total"];
        assert_eq!(exposed_names(&encode_one(Two)), names);
    }
}
