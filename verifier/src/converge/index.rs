//! The ids of the envelopes a verifier accepted, by minute (of the
//! envelope's own timestamp) and partition, with where each is in the log.
//!
//! It is what sync compares (small digests per minute, then per partition,
//! then the ids themselves), what it serves (an id's log position), what
//! tells an envelope already held from a new one whatever route it came by,
//! and what a minute's checkpoint commits to (the Merkle root over the
//! minute's sorted ids). It covers a bounded span of recent minutes; the log
//! holds everything.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vouch_schema::merkle::{self, Hash};

use super::{Digest, PartitionSet};

/// Bounds of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLimits {
    /// Ids held at most; past it the oldest minutes go first (counted).
    pub max_ids: usize,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits { max_ids: 1_000_000 }
    }
}

/// One partition's ids in one minute, and their digest once asked for.
#[derive(Debug, Default)]
struct Cell {
    ids: BTreeSet<Hash>,
    digest: Option<Digest>,
}

impl Cell {
    fn digest(&mut self) -> Digest {
        *self.digest.get_or_insert_with(|| Digest::of_ids(&self.ids))
    }
}

/// Accepted envelope ids of recent minutes.
#[derive(Debug, Default)]
pub struct EnvelopeIndex {
    minutes: BTreeMap<u64, BTreeMap<u32, Cell>>,
    /// id → (minute, partition, log index).
    at: HashMap<Hash, (u64, u32, u64)>,
    limits: IndexLimits,
    evicted: u64,
}

impl EnvelopeIndex {
    /// An empty index.
    pub fn new(limits: IndexLimits) -> EnvelopeIndex {
        EnvelopeIndex { limits, ..EnvelopeIndex::default() }
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Ids dropped to stay within the bound (`vouch_sync_index_evicted_total`).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The oldest minute held.
    pub fn first_minute(&self) -> Option<u64> {
        self.minutes.keys().next().copied()
    }

    /// Records an accepted envelope; `false` when it was already held.
    pub fn insert(&mut self, id: Hash, minute: u64, partition: u32, log_index: u64) -> bool {
        if self.at.contains_key(&id) {
            return false;
        }
        let cell = self.minutes.entry(minute).or_default().entry(partition).or_default();
        cell.ids.insert(id);
        cell.digest = None;
        self.at.insert(id, (minute, partition, log_index));
        while self.at.len() > self.limits.max_ids.max(1) {
            let Some(oldest) = self.first_minute() else { break };
            if oldest == minute && self.minutes.len() == 1 {
                break;
            }
            self.evicted += self.drop_minute(oldest);
        }
        true
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &Hash) -> bool {
        self.at.contains_key(id)
    }

    /// Where `id` is in the log.
    pub fn log_index(&self, id: &Hash) -> Option<u64> {
        self.at.get(id).map(|&(_, _, index)| index)
    }

    fn drop_minute(&mut self, minute: u64) -> u64 {
        let Some(cells) = self.minutes.remove(&minute) else { return 0 };
        let mut n = 0;
        for cell in cells.into_values() {
            for id in cell.ids {
                self.at.remove(&id);
                n += 1;
            }
        }
        n
    }

    /// Forgets minutes before `minute`.
    pub fn prune_before(&mut self, minute: u64) {
        while let Some(oldest) = self.first_minute().filter(|&m| m < minute) {
            self.drop_minute(oldest);
        }
    }

    /// The digest of each partition of `minute` in `partitions` that holds ids.
    pub fn partition_digests(
        &mut self,
        minute: u64,
        partitions: &PartitionSet,
    ) -> Vec<(u32, Digest)> {
        let Some(cells) = self.minutes.get_mut(&minute) else { return Vec::new() };
        cells
            .iter_mut()
            .filter(|(p, c)| partitions.contains(**p) && !c.ids.is_empty())
            .map(|(p, c)| (*p, c.digest()))
            .collect()
    }

    /// One digest for all of `minute` in `partitions`.
    pub fn minute_digest(&mut self, minute: u64, partitions: &PartitionSet) -> Digest {
        Digest::of_partitions(self.partition_digests(minute, partitions))
    }

    /// Up to `max` ids of `minute` in `partition`, ascending, all greater
    /// than `after` when it is given.
    pub fn ids(&self, minute: u64, partition: u32, after: Option<&Hash>, max: usize) -> Vec<Hash> {
        let Some(cell) = self.minutes.get(&minute).and_then(|cells| cells.get(&partition)) else {
            return Vec::new();
        };
        let from = match after {
            Some(a) => std::ops::Bound::Excluded(*a),
            None => std::ops::Bound::Unbounded,
        };
        cell.ids.range((from, std::ops::Bound::Unbounded)).take(max).copied().collect()
    }

    /// The ids of `minute` in `partitions`, ascending: the leaves of the
    /// minute's checkpoint.
    pub fn minute_ids(&self, minute: u64, partitions: &PartitionSet) -> Vec<Hash> {
        let mut all: Vec<Hash> = self
            .minutes
            .get(&minute)
            .into_iter()
            .flat_map(|cells| cells.iter())
            .filter(|(p, _)| partitions.contains(**p))
            .flat_map(|(_, c)| c.ids.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    /// (count, Merkle root) of `minute` in `partitions`: what its checkpoint signs.
    pub fn merkle(&self, minute: u64, partitions: &PartitionSet) -> (u64, Hash) {
        let ids = self.minute_ids(minute, partitions);
        (ids.len() as u64, merkle::root(&ids))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        merkle::envelope_id(&[n])
    }

    #[test]
    fn digests_change_with_the_set_and_equal_sets_agree() {
        let all = PartitionSet::all();
        let mut a = EnvelopeIndex::new(IndexLimits::default());
        let mut b = EnvelopeIndex::new(IndexLimits::default());
        assert!(a.insert(id(1), 10, 3, 100));
        assert!(!a.insert(id(1), 10, 3, 101), "already held");
        a.insert(id(2), 10, 4, 102);
        b.insert(id(2), 10, 4, 7);
        assert_ne!(a.minute_digest(10, &all), b.minute_digest(10, &all));
        b.insert(id(1), 10, 3, 8);
        assert_eq!(a.minute_digest(10, &all), b.minute_digest(10, &all));
        assert_eq!(a.minute_digest(10, &all).count, 2);
        assert_eq!(a.merkle(10, &all), b.merkle(10, &all));
        assert_eq!(a.log_index(&id(1)), Some(100));
        let only_3: PartitionSet = [3].into_iter().collect();
        assert_eq!(a.minute_digest(10, &only_3).count, 1);
        assert_eq!(a.ids(10, 4, None, 10), vec![id(2)]);
        assert_eq!(a.ids(10, 4, Some(&id(2)), 10), Vec::<Hash>::new());
        assert_eq!(a.minute_digest(11, &all), Digest::default());
    }

    #[test]
    fn the_bound_drops_whole_old_minutes() {
        let mut x = EnvelopeIndex::new(IndexLimits { max_ids: 3 });
        x.insert(id(1), 1, 0, 0);
        x.insert(id(2), 1, 0, 1);
        x.insert(id(3), 2, 0, 2);
        x.insert(id(4), 3, 0, 3);
        assert_eq!(x.first_minute(), Some(2));
        assert_eq!(x.evicted(), 2);
        assert!(!x.contains(&id(1)) && x.contains(&id(4)));
        x.prune_before(3);
        assert_eq!(x.len(), 1);
    }
}
