//! Outbound: the verifier log → the Streamr network (or the MQTT feed).
//!
//! Only envelopes committed in the log (accepted and durable) leave. Records
//! are read in batches and handed to the link ([`OutboundLink`]: the
//! sidecar, [`super::sidecar`], or the MQTT feed, [`super::mqtt`]); the
//! cursor file moves past a batch only once the link confirmed every
//! message in it. What a link loses before confirming (a sidecar restart, a
//! broker disconnect) it sends again, and a crash re-sends from the cursor:
//! delivery is at least once, and receivers deduplicate by message id.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use vouch_schema::bridge::BridgePayload;

use crate::store::{LogError, LogReader, RecordKind};

use super::BridgeError;
use super::metrics::BridgeMetrics;
use super::seen::{Direction, SeenSet};

/// How long to wait before reading an unreadable log again.
const LOG_RETRY: Duration = Duration::from_secs(1);

/// Where the outbound task's envelopes go.
pub(crate) trait OutboundLink: Send {
    /// Sends `batch` and waits until every message in it is confirmed,
    /// sending again whatever the link lost meanwhile. `Ok(false)` when
    /// `shutdown` came first (the batch then goes again from the cursor).
    fn send_confirmed(
        &mut self,
        batch: &[BridgePayload],
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<bool, BridgeError>> + Send;

    /// Waits up to `poll` for new log records, keeping up with the link's
    /// own events meanwhile. `Ok(false)` on shutdown.
    fn idle(
        &mut self,
        poll: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<bool, BridgeError>> + Send;
}

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
pub(crate) struct Outbound<L: OutboundLink> {
    pub(crate) log: PathBuf,
    pub(crate) cursor_path: PathBuf,
    pub(crate) batch: usize,
    pub(crate) poll: Duration,
    pub(crate) link: L,
    pub(crate) seen: Arc<Mutex<SeenSet>>,
    pub(crate) metrics: Arc<BridgeMetrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl<L: OutboundLink> Outbound<L> {
    /// Follows the log until shutdown.
    pub(crate) async fn run(mut self) -> Result<(), BridgeError> {
        let mut cursor = read_cursor(&self.cursor_path)?;
        self.metrics.outbound_cursor.store(cursor, Ordering::Relaxed);
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
                if !self.link.idle(self.poll, &mut self.shutdown).await? {
                    return Ok(());
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
                            self.metrics.outbound_from_inbound.fetch_add(1, Ordering::Relaxed);
                            false
                        } else {
                            true
                        }
                    })
                    .collect()
            };
            if !to_send.is_empty() {
                if !self.link.send_confirmed(&to_send, &mut self.shutdown).await? {
                    return Ok(()); // shut down mid-batch: the cursor stays, the batch goes again
                }
                self.metrics.outbound_published.fetch_add(to_send.len() as u64, Ordering::Relaxed);
            }
            cursor = batch.next;
            write_cursor(&self.cursor_path, cursor)?;
            self.metrics.outbound_cursor.store(cursor, Ordering::Relaxed);
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
