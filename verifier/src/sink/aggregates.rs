//! Sealed SLA minute buckets into ClickHouse (`vouch_sla_minutes`).
//!
//! Unlike events, aggregates are not in the log: the SLA engine produces
//! them when it seals a minute. The ingest worker hands them over without
//! blocking ([`AggregateExport::offer`]); a task inserts them, retrying
//! while ClickHouse is away. Rows carry the seal's clock reading as their
//! version, and the table keeps the highest version per bucket, so a retry
//! or a re-export never double-counts. The queue is bounded: when it is full
//! the rows are dropped and counted (`vouch_sink_aggregates_dropped_total`);
//! `vouch replay` rebuilds every bucket from the log if they are needed.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::sync::mpsc;
use vouch_net::metrics::counter;
use vouch_sla::{FailureClass, SealedBucket};

use super::clickhouse::{ClickHouseClient, SlaMinuteRow};

/// Seals (batches of rows) waiting for ClickHouse.
const QUEUE_SEALS: usize = 256;
/// Pause between retries while ClickHouse fails.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// One sealed bucket as a `vouch_sla_minutes` row, versioned by `version`.
pub fn minute_row(b: &SealedBucket, version: u64) -> SlaMinuteRow {
    let excused = FailureClass::ALL
        .iter()
        .filter(|c| c.excused())
        .map(|c| b.counters.failures[c.index()])
        .sum();
    SlaMinuteRow {
        orchestrator: b.orchestrator.to_hex(),
        model_id: b.model_id.clone(),
        region: b.region.clone(),
        origin: b.origin.to_owned(),
        minute_start: b.minute_start_ms / 1000,
        attempts: b.counters.attempts,
        startup_successes: b.counters.startup_successes,
        swaps: b.counters.swaps,
        failures: b.counters.failed,
        excused,
        inference_minutes: b.counters.inference_ms as f64 / 60_000.0,
        ptff_p50_ms: b.ptff_ms.p50.map(|v| v as f64),
        ptff_p95_ms: b.ptff_ms.p95.map(|v| v as f64),
        ptff_p99_ms: b.ptff_ms.p99.map(|v| v as f64),
        version,
    }
}

/// The hand-over from the ingest worker to the inserting task.
#[derive(Debug)]
pub struct AggregateExport {
    tx: mpsc::Sender<Vec<SlaMinuteRow>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    inserted: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

impl AggregateExport {
    /// Starts the inserting task (inside a tokio runtime). It ends when the
    /// export is dropped and its queue is drained.
    pub fn spawn(client: ClickHouseClient) -> (AggregateExport, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Vec<SlaMinuteRow>>(QUEUE_SEALS);
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let task = tokio::spawn(async move {
            while let Some(rows) = rx.recv().await {
                loop {
                    match client.insert_aggregates(&rows).await {
                        Ok(()) => {
                            c.inserted.fetch_add(rows.len() as u64, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => {
                            c.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%e, rows = rows.len(), "aggregate insert failed; retrying");
                            tokio::time::sleep(RETRY_EVERY).await;
                        }
                    }
                }
            }
        });
        (AggregateExport { tx, counters }, task)
    }

    /// Queues one seal's buckets; never blocks (a full queue drops and counts them).
    pub fn offer(&self, sealed: &[SealedBucket], version: u64) {
        if sealed.is_empty() {
            return;
        }
        let rows: Vec<SlaMinuteRow> = sealed.iter().map(|b| minute_row(b, version)).collect();
        let n = rows.len() as u64;
        if self.tx.try_send(rows).is_err() {
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Collector for AggregateExport {
    /// The `vouch_sink_aggregates_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let c = &self.counters;
        for (name, help, value) in [
            (
                "vouch_sink_aggregates_inserted_total",
                "Sealed SLA buckets inserted into ClickHouse.",
                &c.inserted,
            ),
            (
                "vouch_sink_aggregates_dropped_total",
                "Sealed SLA buckets dropped because the queue was full.",
                &c.dropped,
            ),
            (
                "vouch_sink_aggregates_errors_total",
                "Failed aggregate inserts (each retried).",
                &c.errors,
            ),
        ] {
            counter(&mut enc, name, help, value.load(Ordering::Relaxed))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_sla::{BucketCounters, PercentileSummary};

    fn none() -> PercentileSummary {
        PercentileSummary { p50: None, p95: None, p99: None, count: 0 }
    }

    #[test]
    fn a_sealed_bucket_becomes_a_versioned_minute_row() {
        let mut counters = BucketCounters {
            attempts: 5,
            startup_successes: 4,
            swaps: 1,
            failed: 1,
            inference_ms: 90_000,
            ..BucketCounters::default()
        };
        counters.failures[FailureClass::ClientCaused.index()] = 2;
        let bucket = SealedBucket {
            orchestrator: vouch_schema::Address([0xaa; 20]),
            model_id: "streamdiffusion".into(),
            pipeline: "live-video-to-video".into(),
            region: "FRA".into(),
            origin: "production",
            minute_start_ms: 1_800_000_060_000,
            counters,
            ptff_ms: PercentileSummary { p50: Some(800), p95: Some(900), p99: None, count: 4 },
            startup_ms: none(),
            e2e_ms: none(),
            fps_centi: none(),
        };
        let row = minute_row(&bucket, 42);
        assert_eq!(row.orchestrator, format!("0x{}", "aa".repeat(20)));
        assert_eq!((row.minute_start, row.version), (1_800_000_060, 42));
        assert_eq!((row.attempts, row.startup_successes, row.swaps, row.failures), (5, 4, 1, 1));
        assert_eq!(row.excused, 2);
        assert_eq!(row.inference_minutes, 1.5);
        assert_eq!((row.ptff_p50_ms, row.ptff_p99_ms), (Some(800.0), None));
    }
}
