//! Outbound: the verifier log → MQTT.
//!
//! Only envelopes committed in the log (accepted and durable) leave. Records
//! are read in batches; each envelope is published with QoS 1 to the topic
//! named by its stream id, and the cursor file moves past the batch only
//! once the broker acknowledged every message in it. A broker disconnect
//! before that re-publishes the whole batch once reconnected, and a crash
//! re-publishes from the cursor: delivery is at least once, and receivers
//! deduplicate by message id.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch};
use vouch_schema::bridge::BridgePayload;

use crate::store::{LogError, LogReader, RecordKind};

use super::BridgeError;
use super::metrics::BridgeMetrics;
use super::seen::{Direction, SeenSet};

/// What the MQTT event loop tells the outbound task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEvent {
    /// A (new) session with the broker is up.
    Connected,
    /// The broker acknowledged one of our QoS 1 publishes.
    Acked,
    /// The connection failed; unacknowledged publishes are lost.
    Disconnected,
}

/// How long to wait before reading an unreadable log again.
const LOG_RETRY: Duration = Duration::from_secs(1);

/// How long to wait for a batch's acknowledgements before publishing it again.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the cursor file: the next log index to publish (0 when absent).
pub fn read_cursor(path: &Path) -> Result<u64, BridgeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            BridgeError::Config(format!("cursor file {} does not hold a number", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(BridgeError::Io(format!("reading {}: {e}", path.display()))),
    }
}

/// Replaces the cursor file atomically (write, fsync, rename).
pub fn write_cursor(path: &Path, next: u64) -> Result<(), BridgeError> {
    use std::io::Write;
    let tmp = path.with_extension("cursor.tmp");
    let io = |e: std::io::Error| BridgeError::Io(format!("writing {}: {e}", path.display()));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    writeln!(file, "{next}").map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// One batch read from the log.
struct Batch {
    payloads: Vec<BridgePayload>,
    next: u64,
}

fn read_batch(
    dir: &Path,
    from: u64,
    max: usize,
    metrics: &BridgeMetrics,
) -> Result<Batch, LogError> {
    let mut reader = match LogReader::open(dir, from) {
        Ok(r) => r,
        Err(LogError::NotInLog { first, .. }) if from < first => {
            tracing::warn!(from, first, "cursor points into a pruned prefix; skipping to {first}");
            LogReader::open(dir, first)?
        }
        Err(e) => return Err(e),
    };
    let mut payloads = Vec::new();
    let mut seen_records = 0usize;
    for record in reader.by_ref() {
        let record = record?;
        seen_records += 1;
        if record.kind != RecordKind::Envelope {
            metrics.outbound_other_records.fetch_add(1, Ordering::Relaxed);
        } else {
            match BridgePayload::from_cbor(record.payload) {
                Ok(p) => payloads.push(p),
                Err(e) => {
                    metrics.outbound_invalid.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(index = record.position.index, %e, "log envelope does not decode");
                }
            }
        }
        if seen_records >= max {
            break;
        }
    }
    Ok(Batch { payloads, next: reader.next_index() })
}

/// The outbound task's fixed inputs.
pub(crate) struct Outbound {
    pub(crate) log: PathBuf,
    pub(crate) cursor_path: PathBuf,
    pub(crate) batch: usize,
    pub(crate) poll: Duration,
    pub(crate) client: AsyncClient,
    pub(crate) link: mpsc::Receiver<LinkEvent>,
    pub(crate) seen: Arc<Mutex<SeenSet>>,
    pub(crate) metrics: Arc<BridgeMetrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Outbound {
    /// Follows the log until shutdown.
    pub(crate) async fn run(mut self) -> Result<(), BridgeError> {
        let mut cursor = read_cursor(&self.cursor_path)?;
        self.metrics.outbound_cursor.store(cursor, Ordering::Relaxed);
        let mut connected = false;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            let (dir, max, metrics) =
                (self.log.clone(), self.batch.max(1), Arc::clone(&self.metrics));
            let read = tokio::task::spawn_blocking(move || read_batch(&dir, cursor, max, &metrics))
                .await
                .map_err(|e| BridgeError::Log(e.to_string()))?;
            let batch = match read {
                Ok(batch) => batch,
                // Not there yet (the node has not started) or briefly
                // unreadable: wait and try again. Damage is fatal.
                Err(e @ LogError::Io { .. }) => {
                    tracing::warn!(%e, log = %self.log.display(), "log not readable; retrying");
                    tokio::select! {
                        _ = self.shutdown.changed() => return Ok(()),
                        () = tokio::time::sleep(LOG_RETRY) => {}
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if batch.next == cursor {
                tokio::select! {
                    _ = self.shutdown.changed() => return Ok(()),
                    () = tokio::time::sleep(self.poll) => {}
                    event = self.link.recv() => match event {
                        Some(LinkEvent::Connected) => connected = true,
                        Some(LinkEvent::Disconnected) => connected = false,
                        Some(LinkEvent::Acked) => {}
                        None => return Err(BridgeError::Mqtt("event loop stopped".into())),
                    },
                }
                continue;
            }
            let to_send: Vec<BridgePayload> = {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                batch
                    .payloads
                    .into_iter()
                    .filter(|p| {
                        if seen.insert(p.message_id, Direction::Outbound)
                            == Some(Direction::Inbound)
                        {
                            self.metrics.outbound_from_mqtt.fetch_add(1, Ordering::Relaxed);
                            false
                        } else {
                            true
                        }
                    })
                    .collect()
            };
            if !to_send.is_empty() && !self.send_acked(&to_send, &mut connected).await? {
                return Ok(()); // shut down mid-batch: the cursor stays, the batch goes again
            }
            cursor = batch.next;
            write_cursor(&self.cursor_path, cursor)?;
            self.metrics.outbound_cursor.store(cursor, Ordering::Relaxed);
        }
    }

    /// Publishes `batch` and waits for every acknowledgement, publishing it
    /// again after a reconnect. `false` when shut down first.
    async fn send_acked(
        &mut self,
        batch: &[BridgePayload],
        connected: &mut bool,
    ) -> Result<bool, BridgeError> {
        let mut first = true;
        loop {
            while !*connected {
                tokio::select! {
                    _ = self.shutdown.changed() => return Ok(false),
                    event = self.link.recv() => match event {
                        Some(LinkEvent::Connected) => *connected = true,
                        Some(_) => {}
                        None => return Err(BridgeError::Mqtt("event loop stopped".into())),
                    },
                }
            }
            if !first {
                self.metrics.outbound_resent_batches.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            for p in batch {
                self.client
                    .publish(p.envelope.id.stream_id.clone(), QoS::AtLeastOnce, false, p.encode())
                    .await
                    .map_err(|e| BridgeError::Mqtt(e.to_string()))?;
            }
            let mut acked = 0usize;
            let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
            while acked < batch.len() && *connected {
                tokio::select! {
                    _ = self.shutdown.changed() => return Ok(false),
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(acked, total = batch.len(), "broker acknowledgements timed out; publishing the batch again");
                        break;
                    }
                    event = self.link.recv() => match event {
                        Some(LinkEvent::Acked) => acked += 1,
                        Some(LinkEvent::Disconnected) => *connected = false,
                        Some(LinkEvent::Connected) => {}
                        None => return Err(BridgeError::Mqtt("event loop stopped".into())),
                    },
                }
            }
            if acked >= batch.len() {
                self.metrics.outbound_published.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("c.cursor");
        assert_eq!(read_cursor(&path).unwrap(), 0, "absent: from the start");
        write_cursor(&path, 42).unwrap();
        assert_eq!(read_cursor(&path).unwrap(), 42);
        std::fs::write(&path, "x").unwrap();
        assert!(read_cursor(&path).is_err());
    }
}
