//! The set of telemetry partitions a verifier follows, as the 13-byte
//! bitmap checkpoints carry.

use std::collections::BTreeSet;

use vouch_delegation::PARTITION_BYTES;
use vouch_schema::limits::MAX_PARTITIONS;

/// Partitions `0..100` as a bitmap: bit `p % 8` of byte `p / 8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Partitions([u8; PARTITION_BYTES]);

impl Partitions {
    /// Every partition.
    pub fn all() -> Partitions {
        Partitions::from_iter(0..MAX_PARTITIONS)
    }

    /// The bitmap's bytes.
    pub fn bytes(&self) -> [u8; PARTITION_BYTES] {
        self.0
    }

    /// A bitmap read from a checkpoint or a request (bits past 99 ignored).
    pub fn from_bytes(bytes: [u8; PARTITION_BYTES]) -> Partitions {
        Partitions::from_iter(
            (0..MAX_PARTITIONS).filter(|&p| bytes[p as usize / 8] >> (p % 8) & 1 == 1),
        )
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: u32) -> bool {
        p < MAX_PARTITIONS && self.0[p as usize / 8] >> (p % 8) & 1 == 1
    }

    /// The partitions in both sets.
    pub fn intersection(&self, other: &Partitions) -> Partitions {
        let mut out = [0u8; PARTITION_BYTES];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0)) {
            *o = a & b;
        }
        Partitions(out)
    }

    /// The partitions in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..MAX_PARTITIONS).filter(|&p| self.contains(p))
    }
}

impl FromIterator<u32> for Partitions {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Partitions {
        let mut b = [0u8; PARTITION_BYTES];
        for p in iter.into_iter().filter(|&p| p < MAX_PARTITIONS) {
            b[p as usize / 8] |= 1 << (p % 8);
        }
        Partitions(b)
    }
}

impl From<&BTreeSet<u32>> for Partitions {
    fn from(set: &BTreeSet<u32>) -> Partitions {
        set.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_intersect() {
        let a: Partitions = [0, 7, 8, 99, 100, 4000].into_iter().collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 7, 8, 99]);
        assert_eq!(Partitions::from_bytes(a.bytes()), a);
        let b: Partitions = [7, 99, 5].into_iter().collect();
        assert_eq!(a.intersection(&b).iter().collect::<Vec<_>>(), [7, 99]);
        assert_eq!(Partitions::all().iter().count(), 100);
        assert!(!a.contains(100));
    }
}
