//! The ClickHouse sink (DESIGN.md §11): a log follower that batch-inserts
//! every accepted event into `vouch_events` over ClickHouse's HTTP
//! interface, and an insert path for aggregate buckets (`vouch_sla_minutes`).
//!
//! # Exactly the accepted events, across crashes and outages
//!
//! The sink's cursor lives in ClickHouse itself: it is the highest
//! `log_index` in `vouch_events`. Each insert carries whole envelope
//! records, a contiguous log range after that cursor, in one statement;
//! the table has a single partition, so one insert is one part, which
//! ClickHouse commits atomically. The table therefore always holds exactly
//! the events of records `..=max(log_index)` (envelopes without events add
//! no rows and are simply read again). On start and after **any** failed
//! request, the sink waits until none of its inserts is still running on
//! the server, reads the cursor back, drops what it had buffered and
//! re-reads the log from there, so a retry never double-counts and plain
//! `count()` is exact. One sink per database: two sinks writing the same
//! table would each resume from the other's rows.
//!
//! While ClickHouse is down the sink retries with exponential backoff
//! ([`ClickHouseConfig::retry_initial_ms`] to [`ClickHouseConfig::retry_max_ms`]);
//! the verifier is unaffected, since the sink only reads the log. Inserts
//! go one at a time; while one is in flight the next batch is read and
//! encoded. Memory is bounded by two batches of
//! [`ClickHouseConfig::batch_rows`] rows (each may overshoot by one
//! envelope, at most 1024 events): when a batch is full, reading pauses
//! until the insert before it is done (`vouch_sink_clickhouse_buffer_full_total`).

pub mod client;
pub mod metrics;
pub mod rows;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use client::{ClickHouseClient, ClickHouseError};
pub use metrics::ClickHouseSinkMetrics;
pub use rows::{EVENTS_TABLE, EventRow, SLA_MINUTES_TABLE, SlaMinuteRow};

use super::follow::{FollowConfig, FollowError, Follower, Shutdown};
use crate::store::LogError;

/// Most rows one insert may carry: ClickHouse's default
/// `max_insert_block_size`, below which one insert is one part.
pub const MAX_BATCH_ROWS: usize = 1_000_000;

/// `[sinks.clickhouse]` of the verifier's configuration (and the flags of
/// `vouch sink clickhouse`). Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// ClickHouse's HTTP interface (`http://` only).
    pub url: String,
    /// Database of the tables; created if missing.
    pub database: String,
    /// User (HTTP basic authentication); none: ClickHouse's `default`.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// Most rows per insert, and the buffer's bound.
    pub batch_rows: usize,
    /// An insert happens at the latest this long after its first row was read.
    pub flush_interval_ms: u64,
    /// Pause between looks at the log when it has nothing new.
    pub poll_interval_ms: u64,
    /// Deadline of one request to ClickHouse.
    pub request_timeout_secs: u64,
    /// First pause after a failure; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest pause between retries.
    pub retry_max_ms: u64,
    /// Log index to start from when the table is empty (or to skip ahead to).
    pub from_index: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "default".to_owned(),
            user: None,
            password: None,
            batch_rows: 10_000,
            flush_interval_ms: 1000,
            poll_interval_ms: 200,
            request_timeout_secs: 30,
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            from_index: 0,
        }
    }
}

/// Why a sink could not start. Messages are stable.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The configuration is unusable.
    #[error("ClickHouse sink configuration: {0}")]
    Config(String),
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Rows inserted by this run.
    pub rows: u64,
    /// Inserts made by this run.
    pub inserts: u64,
    /// The log index before which everything is in ClickHouse.
    pub next_log_index: u64,
}

/// The ClickHouse sink: a [`Follower`] of one log and a [`ClickHouseClient`].
#[derive(Debug)]
pub struct ClickHouseSink {
    config: ClickHouseConfig,
    client: ClickHouseClient,
    log_dir: PathBuf,
    metrics: Arc<ClickHouseSinkMetrics>,
    /// The id every insert of this sink runs under, so that a resume can
    /// wait for an insert the server may still be committing.
    query_id: String,
}

impl ClickHouseSink {
    /// A sink of the log in `log_dir`. Checks the configuration; connects
    /// only when run.
    pub fn new(config: ClickHouseConfig, log_dir: &Path) -> Result<ClickHouseSink, SinkError> {
        if config.batch_rows == 0 || config.batch_rows > MAX_BATCH_ROWS {
            return Err(SinkError::Config(format!("batch_rows must be 1 to {MAX_BATCH_ROWS}")));
        }
        let timeout = Duration::from_secs(config.request_timeout_secs.max(1));
        let mut client = ClickHouseClient::new(&config.url, &config.database, timeout)
            .map_err(|e| SinkError::Config(e.to_string()))?;
        if let Some(user) = &config.user {
            client = client.with_user(user, config.password.as_deref());
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let query_id = format!("vouch-sink-{}-{nonce}", std::process::id());
        Ok(ClickHouseSink {
            config,
            client,
            log_dir: log_dir.to_owned(),
            metrics: Arc::default(),
            query_id,
        })
    }

    /// The sink's counters (a collector for `/metrics`).
    pub fn metrics(&self) -> Arc<ClickHouseSinkMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The client, for [`ClickHouseClient::insert_aggregates`].
    pub fn client(&self) -> &ClickHouseClient {
        &self.client
    }

    /// Follows the log until `shutdown` fires, then inserts what it holds
    /// (one try) and returns.
    pub async fn run(&self, shutdown: Shutdown) -> RunSummary {
        self.run_loop(shutdown, false).await
    }

    /// Like [`ClickHouseSink::run`], but returns as soon as everything
    /// committed in the log is in ClickHouse.
    pub async fn run_until_caught_up(&self, shutdown: Shutdown) -> RunSummary {
        self.run_loop(shutdown, true).await
    }

    async fn run_loop(&self, mut shutdown: Shutdown, until_caught_up: bool) -> RunSummary {
        let follow = FollowConfig {
            poll_interval: Duration::from_millis(self.config.poll_interval_ms.max(1)),
            max_records: 256,
            max_events: self.config.batch_rows,
        };
        let flush_interval = Duration::from_millis(self.config.flush_interval_ms);
        let batch_rows = self.config.batch_rows;
        let mut follower = Follower::new(&self.log_dir, self.config.from_index, follow);
        let mut backoff = Backoff::new(&self.config);
        let mut summary = RunSummary { rows: 0, inserts: 0, next_log_index: 0 };
        // Rows read and encoded, not yet sent; and at most one insert in
        // flight, so the next batch is read and encoded while ClickHouse
        // takes the previous one (inserts stay strictly one after another).
        let mut buffer = Buffer::default();
        let mut inflight: Option<InFlight> = None;
        let mut resumed = false;
        loop {
            if !resumed {
                if let Some(f) = inflight.take() {
                    // Its outcome, whatever it is, is read back below.
                    let _ = f.task.await;
                }
                if shutdown.is_triggered() {
                    break;
                }
                match self.resume().await {
                    Ok(index) => {
                        follower.seek(index.max(self.config.from_index));
                        self.metrics.cursor.store(follower.next_index(), Ordering::Relaxed);
                        buffer = Buffer::default();
                        resumed = true;
                        backoff.reset();
                        tracing::info!(from = follower.next_index(), "ClickHouse sink resuming");
                    }
                    Err(e) => {
                        self.clickhouse_failed(&e);
                        if !shutdown.sleep(backoff.next()).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let stopping = shutdown.is_triggered();
            let mut idle = false;
            // Stopping: no more reading, one last insert of what is buffered.
            if !stopping && buffer.rows < batch_rows {
                follower.config_mut().max_events = batch_rows - buffer.rows;
                let mut body = std::mem::take(&mut buffer.body);
                let read = follower
                    .read_blocking_then(move |result| {
                        let mut rows = 0;
                        let result = result.map(|batch| {
                            for envelope in &batch.envelopes {
                                for (i, event) in envelope.events.iter().enumerate() {
                                    let row = EventRow::new(envelope, i, event);
                                    if serde_json::to_writer(&mut body, &row).is_ok() {
                                        body.push(b'\n');
                                        rows += 1;
                                    }
                                }
                            }
                            batch.records
                        });
                        (result, body, rows)
                    })
                    .await;
                let Ok((result, body, rows)) = read else {
                    // The reading task died with the buffer: start over.
                    self.metrics.log_errors.fetch_add(1, Ordering::Relaxed);
                    resumed = false;
                    continue;
                };
                buffer.body = body;
                buffer.rows += rows;
                match result {
                    Ok(records) => {
                        idle = records == 0;
                        if buffer.rows >= batch_rows {
                            // The bound: no more reading until these are sent.
                            self.metrics.buffer_full.fetch_add(1, Ordering::Relaxed);
                        }
                        if buffer.rows > 0 {
                            buffer.oldest.get_or_insert_with(Instant::now);
                        } else if inflight.is_none() {
                            // Nothing pending: every record read is done with.
                            self.metrics.cursor.store(follower.next_index(), Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        if !self.log_failed(e, &mut follower)
                            && !shutdown.sleep(backoff.next()).await
                        {
                            break;
                        }
                        continue;
                    }
                }
            }
            self.update_lag(&follower);
            let due = buffer.oldest.is_some_and(|t| t.elapsed() >= flush_interval);
            let flush = buffer.rows > 0
                && (stopping || due || buffer.rows >= batch_rows || until_caught_up && idle);
            let wait_inflight = flush || stopping || idle;
            if let Some(f) = inflight.take_if(|f| wait_inflight || f.task.is_finished()) {
                let result = f.task.await.unwrap_or_else(|e| {
                    Err(ClickHouseError::Unreachable(format!("insert task: {e}")))
                });
                match result {
                    Ok(()) => {
                        self.metrics.rows.fetch_add(f.rows, Ordering::Relaxed);
                        self.metrics.inserts.fetch_add(1, Ordering::Relaxed);
                        self.metrics.cursor.store(f.next_index, Ordering::Relaxed);
                        summary.rows += f.rows;
                        summary.inserts += 1;
                        backoff.reset();
                        self.update_lag(&follower);
                    }
                    Err(e) => {
                        self.clickhouse_failed(&e);
                        // Whether it landed is unknown: read the cursor back first.
                        resumed = false;
                        if stopping || !shutdown.sleep(backoff.next()).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            if flush {
                let client = self.client.clone();
                let query_id = self.query_id.clone();
                let body = std::mem::take(&mut buffer.body);
                inflight = Some(InFlight {
                    rows: buffer.rows as u64,
                    next_index: follower.next_index(),
                    task: tokio::spawn(async move {
                        client.insert_json_each_row(EVENTS_TABLE, body, Some(&query_id)).await
                    }),
                });
                buffer = Buffer::default();
                continue;
            }
            if inflight.is_none() && buffer.rows == 0 && (stopping || until_caught_up && idle) {
                break;
            }
            if idle {
                let wait = match buffer.oldest {
                    Some(t) => flush_interval.saturating_sub(t.elapsed()).min(follow.poll_interval),
                    None => follow.poll_interval,
                };
                // Woken by the signal: loop once more to send what is buffered.
                let _ = shutdown.sleep(wait).await;
            }
        }
        summary.next_log_index = self.metrics.cursor.load(Ordering::Relaxed);
        summary
    }

    /// Creates the schema, waits out any insert of this sink still running
    /// on the server, and reads the cursor back.
    async fn resume(&self) -> Result<u64, ClickHouseError> {
        self.client.create_schema().await?;
        if self.client.running(&self.query_id).await? > 0 {
            return Err(ClickHouseError::InsertRunning(self.query_id.clone()));
        }
        Ok(self.client.resume_index().await?.unwrap_or(0))
    }

    fn clickhouse_failed(&self, e: &ClickHouseError) {
        self.metrics.clickhouse_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%e, "ClickHouse sink: request failed, retrying");
    }

    /// Counts and reports a log error; `true` if reading can go on at once.
    fn log_failed(&self, e: FollowError, follower: &mut Follower) -> bool {
        match e {
            FollowError::Malformed { .. } => {
                self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%e, "ClickHouse sink: skipping a record that does not decode");
                true
            }
            FollowError::Log(LogError::NotInLog { index, first, .. }) if first > index => {
                self.metrics.log_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    from = index,
                    to = first,
                    "ClickHouse sink: records were pruned from the log before they were inserted"
                );
                follower.seek(first);
                true
            }
            e => {
                self.metrics.log_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%e, "ClickHouse sink: reading the log failed, retrying");
                false
            }
        }
    }

    fn update_lag(&self, follower: &Follower) {
        if let Ok(end) = follower.committed_end() {
            let cursor = self.metrics.cursor.load(Ordering::Relaxed);
            self.metrics.lag_records.store(end.saturating_sub(cursor), Ordering::Relaxed);
        }
    }
}

/// Rows read and encoded as `JSONEachRow`, not yet sent.
#[derive(Debug, Default)]
struct Buffer {
    body: Vec<u8>,
    rows: usize,
    /// When its first row was read.
    oldest: Option<Instant>,
}

/// The insert ClickHouse is taking now.
#[derive(Debug)]
struct InFlight {
    task: tokio::task::JoinHandle<Result<(), ClickHouseError>>,
    rows: u64,
    /// The log index after its last record: the cursor once it succeeds.
    next_index: u64,
}

/// Exponential backoff between retries.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(config: &ClickHouseConfig) -> Backoff {
        let initial = Duration::from_millis(config.retry_initial_ms.max(1));
        let max = Duration::from_millis(config.retry_max_ms).max(initial);
        Backoff { initial, max, next: initial }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}
