//! Counters of the ClickHouse sink, declared as Prometheus families.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use vouch_net::metrics::{counter, counter_family, gauge};

/// What the sink has done; shared with whoever serves `/metrics`.
#[derive(Debug, Default)]
pub struct ClickHouseSinkMetrics {
    /// Event rows ClickHouse acknowledged.
    pub rows: AtomicU64,
    /// Successful inserts.
    pub inserts: AtomicU64,
    /// Failed requests to ClickHouse (inserts, schema, resume queries).
    pub clickhouse_errors: AtomicU64,
    /// Failed log reads (I/O, damage, a range pruned before it was read).
    pub log_errors: AtomicU64,
    /// Envelope records that did not decode and were skipped.
    pub malformed: AtomicU64,
    /// Times reading paused because a full insert's worth of rows was buffered.
    pub buffer_full: AtomicU64,
    /// Committed log records not yet in ClickHouse (as of the last look).
    pub lag_records: AtomicU64,
    /// The log index up to which everything is in ClickHouse.
    pub cursor: AtomicU64,
}

impl Collector for ClickHouseSinkMetrics {
    /// The `vouch_sink_clickhouse_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let enc = &mut enc;
        counter(
            enc,
            "vouch_sink_clickhouse_rows_total",
            "Event rows inserted into ClickHouse.",
            get(&self.rows),
        )?;
        counter(
            enc,
            "vouch_sink_clickhouse_inserts_total",
            "Successful ClickHouse inserts.",
            get(&self.inserts),
        )?;
        counter(
            enc,
            "vouch_sink_clickhouse_buffer_full_total",
            "Times the sink stopped reading the log because its insert buffer was full.",
            get(&self.buffer_full),
        )?;
        gauge(
            enc,
            "vouch_sink_clickhouse_lag_records",
            "Committed log records not yet inserted into ClickHouse.",
            get(&self.lag_records),
        )?;
        gauge(
            enc,
            "vouch_sink_clickhouse_cursor",
            "Log index before which every record is in ClickHouse.",
            get(&self.cursor),
        )?;
        counter_family(
            enc,
            "vouch_sink_clickhouse_errors_total",
            "Sink errors by kind (each is retried or skipped, never fatal).",
            [
                ("clickhouse", &self.clickhouse_errors),
                ("log", &self.log_errors),
                ("malformed", &self.malformed),
            ]
            .map(|(kind, c)| ([("kind", kind)], get(c))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_rendered() {
        let m = ClickHouseSinkMetrics::default();
        m.rows.store(7, Ordering::Relaxed);
        m.malformed.store(1, Ordering::Relaxed);
        let out = vouch_net::metrics::encode_one(m);
        for line in [
            "vouch_sink_clickhouse_rows_total 7",
            "vouch_sink_clickhouse_lag_records 0",
            "vouch_sink_clickhouse_buffer_full_total 0",
            "vouch_sink_clickhouse_errors_total{kind=\"malformed\"} 1",
            "vouch_sink_clickhouse_errors_total{kind=\"clickhouse\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }
}
