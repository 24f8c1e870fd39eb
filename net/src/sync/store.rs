//! What sync compares and serves: the envelopes a node accepted, by minute
//! (of the envelope's own timestamp) and partition. The verifier implements
//! [`SyncStore`] over its envelope index and log; [`MemoryStore`] is the
//! same thing in memory, for tests and tools.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use vouch_schema::merkle::envelope_id;

use super::wire::{Digest, Id, PartitionSet};

/// The accepted envelopes a node syncs.
///
/// Every method answers from what is held at the time of the call; sets
/// only change by the node accepting (or forgetting old minutes), and sync
/// tolerates a set changing between two calls. The sync layer calls every
/// method on a blocking thread (tokio's `spawn_blocking`), never on the
/// swarm's task, so an implementation may take locks or read the disk.
pub trait SyncStore: Send + Sync {
    /// The digest ([`Digest::of_partitions`]) of each minute of
    /// `from..=to` over `partitions`, ascending, leaving out empty minutes.
    /// The span is at most [`super::MAX_SPAN_MINUTES`] long (the sync layer
    /// never asks for more), so a store may simply walk it.
    fn minute_digests(&self, from: u64, to: u64, partitions: &PartitionSet) -> Vec<(u64, Digest)>;

    /// The digest ([`Digest::of_ids`]) of each partition of `minute` in
    /// `partitions`, ascending, leaving out empty partitions.
    fn partition_digests(&self, minute: u64, partitions: &PartitionSet) -> Vec<(u32, Digest)>;

    /// Up to `max` ids of `minute` in `partition`, ascending, all greater
    /// than `after` when it is given.
    fn ids(&self, minute: u64, partition: u32, after: Option<&Id>, max: usize) -> Vec<Id>;

    /// The ids among `ids` that are not held, in the order given.
    fn missing(&self, ids: &[Id]) -> Vec<Id>;

    /// The bytes of the envelopes held among `ids`, in the order given,
    /// stopping before their total would pass `max_bytes` (ids not held are
    /// skipped).
    fn envelopes(&self, ids: &[Id], max_bytes: usize) -> Vec<Vec<u8>>;
}

#[derive(Debug, Default)]
struct Held {
    cells: BTreeMap<(u64, u32), BTreeSet<Id>>,
    /// id → (minute, partition, bytes).
    bytes: HashMap<Id, (u64, u32, Vec<u8>)>,
}

/// A [`SyncStore`] in memory: envelopes inserted with their minute and
/// partition. Unbounded; for tests and tools, not for a node.
#[derive(Debug, Default)]
pub struct MemoryStore {
    held: Mutex<Held>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `envelope` under `minute` and `partition`; returns its id, or
    /// `None` when it was held already.
    pub fn insert(&self, minute: u64, partition: u32, envelope: Vec<u8>) -> Option<Id> {
        let id = envelope_id(&envelope);
        let mut held = self.held();
        if held.bytes.contains_key(&id) {
            return None;
        }
        held.bytes.insert(id, (minute, partition, envelope));
        held.cells.entry((minute, partition)).or_default().insert(id);
        Some(id)
    }

    /// The minute and partition `id` is held under.
    pub fn location(&self, id: &Id) -> Option<(u64, u32)> {
        self.held().bytes.get(id).map(|(m, p, _)| (*m, *p))
    }

    /// Envelopes held.
    pub fn len(&self) -> usize {
        self.held().bytes.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn digests_of(held: &Held, minute: u64, partitions: &PartitionSet) -> Vec<(u32, Digest)> {
        held.cells
            .range((minute, 0)..=(minute, u32::MAX))
            .filter(|((_, p), ids)| partitions.contains(*p) && !ids.is_empty())
            .map(|((_, p), ids)| (*p, Digest::of_ids(ids)))
            .collect()
    }
}

impl SyncStore for MemoryStore {
    fn minute_digests(&self, from: u64, to: u64, partitions: &PartitionSet) -> Vec<(u64, Digest)> {
        let held = self.held();
        let minutes: BTreeSet<u64> =
            held.cells.range((from, 0)..=(to, u32::MAX)).map(|((m, _), _)| *m).collect();
        minutes
            .into_iter()
            .map(|m| (m, Digest::of_partitions(Self::digests_of(&held, m, partitions))))
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }

    fn partition_digests(&self, minute: u64, partitions: &PartitionSet) -> Vec<(u32, Digest)> {
        Self::digests_of(&self.held(), minute, partitions)
    }

    fn ids(&self, minute: u64, partition: u32, after: Option<&Id>, max: usize) -> Vec<Id> {
        let held = self.held();
        let Some(ids) = held.cells.get(&(minute, partition)) else { return Vec::new() };
        let from: Bound<&Id> = after.map_or(Bound::Unbounded, Bound::Excluded);
        ids.range::<Id, _>((from, Bound::Unbounded)).take(max).copied().collect()
    }

    fn missing(&self, ids: &[Id]) -> Vec<Id> {
        let held = self.held();
        ids.iter().filter(|id| !held.bytes.contains_key(*id)).copied().collect()
    }

    fn envelopes(&self, ids: &[Id], max_bytes: usize) -> Vec<Vec<u8>> {
        let held = self.held();
        let mut total = 0usize;
        let mut out = Vec::new();
        for (_, _, bytes) in ids.iter().filter_map(|id| held.bytes.get(id)) {
            total += bytes.len();
            if total > max_bytes {
                break;
            }
            out.push(bytes.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_store_answers_by_minute_and_partition() {
        let s = MemoryStore::new();
        let a = s.insert(10, 3, b"a".to_vec());
        assert!(a.is_some());
        assert_eq!(s.insert(10, 3, b"a".to_vec()), None, "held already");
        let b = s.insert(10, 4, b"b".to_vec());
        let c = s.insert(12, 3, b"cc".to_vec());
        let all = PartitionSet::all();
        let mins = s.minute_digests(9, 12, &all);
        assert_eq!(mins.iter().map(|(m, d)| (*m, d.count)).collect::<Vec<_>>(), [(10, 2), (12, 1)]);
        let only_4: PartitionSet = [4].into_iter().collect();
        assert_eq!(s.minute_digests(0, 100, &only_4).len(), 1);
        let parts = s.partition_digests(10, &all);
        assert_eq!(parts.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(parts[0].1, Digest::of_ids(a.as_slice()));
        assert_eq!(mins[0].1, Digest::of_partitions(parts));
        let (a, b, c) = (a.unwrap_or_default(), b.unwrap_or_default(), c.unwrap_or_default());
        assert_eq!(s.ids(10, 3, None, 10), [a]);
        assert_eq!(s.ids(10, 3, Some(&a), 10), Vec::<Id>::new());
        assert_eq!(s.missing(&[a, [0; 32], c]), [[0; 32]]);
        assert_eq!(s.envelopes(&[c, [0; 32], b, a], 3), [b"cc".to_vec(), b"b".to_vec()]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.location(&c), Some((12, 3)));
    }
}
