//! What sync reads on this verifier: digests and ids from the envelope
//! index, envelope bytes from the committed log.

use std::path::PathBuf;
use std::sync::Arc;

use vouch_net::sync::Id;
use vouch_net::{Digest, PartitionSet, SyncStore};

use super::Convergence;
use crate::store::{LogReader, RecordKind};

/// The verifier's [`SyncStore`]: the index answers what is held, the log
/// (read back by index, committed records only) what the envelopes are.
#[derive(Debug)]
pub struct LogSyncStore {
    converge: Arc<Convergence>,
    log_dir: PathBuf,
}

impl LogSyncStore {
    /// A store over `converge`'s index and the log in `log_dir`.
    pub fn new(converge: Arc<Convergence>, log_dir: PathBuf) -> LogSyncStore {
        LogSyncStore { converge, log_dir }
    }
}

impl SyncStore for LogSyncStore {
    fn minute_digests(&self, from: u64, to: u64, partitions: &PartitionSet) -> Vec<(u64, Digest)> {
        let mut index = self.converge.index();
        (from..=to)
            .map(|m| (m, index.minute_digest(m, partitions)))
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }

    fn partition_digests(&self, minute: u64, partitions: &PartitionSet) -> Vec<(u32, Digest)> {
        self.converge.index().partition_digests(minute, partitions)
    }

    fn ids(&self, minute: u64, partition: u32, after: Option<&Id>, max: usize) -> Vec<Id> {
        self.converge.index().ids(minute, partition, after, max)
    }

    fn missing(&self, ids: &[Id]) -> Vec<Id> {
        let index = self.converge.index();
        ids.iter().filter(|id| !index.contains(id)).copied().collect()
    }

    fn envelopes(&self, ids: &[Id], max_bytes: usize) -> Vec<Vec<u8>> {
        // Log positions of the ids held, read in one forward pass.
        let mut wanted: Vec<(u64, usize)> = {
            let index = self.converge.index();
            ids.iter()
                .enumerate()
                .filter_map(|(i, id)| index.log_index(id).map(|at| (at, i)))
                .collect()
        };
        wanted.sort_unstable();
        // An id asked twice is sent once.
        wanted.dedup_by_key(|&mut (at, _)| at);
        let Some(&(first, _)) = wanted.first() else { return Vec::new() };
        let mut found: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        let Ok(mut reader) = LogReader::open(&self.log_dir, first) else { return Vec::new() };
        // Segments that hold none of them are not read: a request naming
        // the log's first and last envelopes costs two segments, not the log.
        for &(at, i) in &wanted {
            reader.skip_to(at);
            let Some(Ok(record)) = reader.next() else { break };
            if record.position.index == at && record.kind == RecordKind::Envelope {
                found[i] = Some(record.payload);
            }
        }
        // In the order asked, within the byte budget.
        let mut out = Vec::new();
        let mut bytes = 0;
        for envelope in found.into_iter().flatten() {
            if bytes + envelope.len() > max_bytes {
                break;
            }
            bytes += envelope.len();
            out.push(envelope);
        }
        out
    }
}
