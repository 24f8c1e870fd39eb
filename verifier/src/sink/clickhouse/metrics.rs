//! Counters of the ClickHouse sink, in Prometheus text form.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

impl ClickHouseSinkMetrics {
    /// Appends the sink's metrics in Prometheus text exposition format.
    pub fn render_metrics(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let simple = [
            (
                "vouch_sink_clickhouse_rows_total",
                "counter",
                "Event rows inserted into ClickHouse.",
                get(&self.rows),
            ),
            (
                "vouch_sink_clickhouse_inserts_total",
                "counter",
                "Successful ClickHouse inserts.",
                get(&self.inserts),
            ),
            (
                "vouch_sink_clickhouse_buffer_full_total",
                "counter",
                "Times the sink stopped reading the log because its insert buffer was full.",
                get(&self.buffer_full),
            ),
            (
                "vouch_sink_clickhouse_lag_records",
                "gauge",
                "Committed log records not yet inserted into ClickHouse.",
                get(&self.lag_records),
            ),
            (
                "vouch_sink_clickhouse_cursor",
                "gauge",
                "Log index before which every record is in ClickHouse.",
                get(&self.cursor),
            ),
        ];
        for (name, kind, help, value) in simple {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let name = "vouch_sink_clickhouse_errors_total";
        let _ = writeln!(
            out,
            "# HELP {name} Sink errors by kind (each is retried or skipped, never fatal)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (kind, counter) in [
            ("clickhouse", &self.clickhouse_errors),
            ("log", &self.log_errors),
            ("malformed", &self.malformed),
        ] {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", get(counter));
        }
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
        let mut out = String::new();
        m.render_metrics(&mut out);
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
