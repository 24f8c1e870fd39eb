//! The messages of `/vouch/1/sync` and the bounds both sides hold to.
//!
//! A client narrows a difference down in three steps, each answered from
//! small digests: one [`Digest`] per minute of a span, one per partition of a
//! differing minute, then the sorted ids of a differing partition; it then
//! fetches the envelopes it lacks by id. Every message is CBOR (serde, with
//! ids and envelopes as byte strings) and its size is bounded on both sides
//! ([`MAX_REQUEST_BYTES`], [`MAX_RESPONSE_BYTES`]); a request over any other
//! bound is answered with [`SyncResponse::Refused`].

use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};
use vouch_schema::limits::MAX_PARTITIONS;

/// The protocol's name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vouch/1/sync");

/// Largest encoded request: a fetch of [`MAX_FETCH_IDS`] ids is about 8 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest encoded response. A fetch answers with as many envelopes as fit.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Most minutes one [`SyncRequest::Minutes`] may span (`to - from + 1`).
pub const MAX_SPAN_MINUTES: u64 = 64;

/// Most ids one [`SyncRequest::Fetch`] may name.
pub const MAX_FETCH_IDS: usize = 256;

/// Most ids one [`SyncResponse::Ids`] carries (512 KiB of ids); past it the
/// answer is truncated and the client asks again from the last id it got.
pub const MAX_IDS_PER_RESPONSE: usize = 16 * 1024;

/// Room left in [`MAX_RESPONSE_BYTES`] for the CBOR around fetched
/// envelopes (each envelope's head is at most 5 bytes, the response's own
/// framing a few dozen): the envelopes' bytes are bounded by the rest.
pub const RESPONSE_OVERHEAD_BYTES: usize = 4 * 1024;

/// Bytes in a partition bitmap (partitions `0..100`).
pub const PARTITION_BYTES: usize = 13;

/// An envelope's id: blake3 of its bytes
/// ([`vouch_schema::merkle::envelope_id`]).
pub type Id = [u8; 32];

/// A count and a hash that say whether two sets of ids are equal.
///
/// For one partition of one minute ([`Digest::of_ids`]): the number of ids
/// and blake3 over the ids in ascending order. For a whole minute
/// ([`Digest::of_partitions`]): the sum of the counts and blake3 over the
/// rows `partition (u32 LE) ‖ count (u64 LE) ‖ hash` of its non-empty
/// partitions in ascending order. The empty set's digest is all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "DigestWire", into = "DigestWire")]
pub struct Digest {
    /// Ids in the set.
    pub count: u64,
    /// The hash described above; all zero for an empty set.
    pub hash: [u8; 32],
}

/// A digest on the wire: `[count, bytes]`, smaller than a map with names.
#[derive(Serialize, Deserialize)]
struct DigestWire(u64, #[serde(with = "serde_bytes")] [u8; 32]);

impl From<DigestWire> for Digest {
    fn from(DigestWire(count, hash): DigestWire) -> Digest {
        Digest { count, hash }
    }
}

impl From<Digest> for DigestWire {
    fn from(d: Digest) -> DigestWire {
        DigestWire(d.count, d.hash)
    }
}

impl Digest {
    /// The digest of one partition's ids; `sorted` must be ascending and
    /// without repeats (as an index holds them).
    pub fn of_ids<'a>(sorted: impl IntoIterator<Item = &'a Id>) -> Digest {
        let mut h = blake3::Hasher::new();
        let mut count = 0u64;
        for id in sorted {
            h.update(id);
            count += 1;
        }
        if count == 0 {
            return Digest::default();
        }
        Digest { count, hash: *h.finalize().as_bytes() }
    }

    /// The digest of a whole minute from its partitions' digests, in
    /// ascending partition order; empty partitions are skipped, so a minute
    /// digest does not depend on which empty cells a store keeps.
    pub fn of_partitions(rows: impl IntoIterator<Item = (u32, Digest)>) -> Digest {
        let mut h = blake3::Hasher::new();
        let mut count = 0u64;
        for (p, d) in rows.into_iter().filter(|(_, d)| !d.is_empty()) {
            h.update(&p.to_le_bytes());
            h.update(&d.count.to_le_bytes());
            h.update(&d.hash);
            count += d.count;
        }
        if count == 0 {
            return Digest::default();
        }
        Digest { count, hash: *h.finalize().as_bytes() }
    }

    /// Whether this is the empty set's digest.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A set of telemetry partitions as the 13-byte bitmap checkpoints carry:
/// bit `p % 8` of byte `p / 8` (least significant bit first). Bits past
/// partition 99 are never set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "PartitionBits", into = "PartitionBits")]
pub struct PartitionSet([u8; PARTITION_BYTES]);

/// The bitmap on the wire: a byte string.
#[derive(Serialize, Deserialize)]
struct PartitionBits(#[serde(with = "serde_bytes")] [u8; PARTITION_BYTES]);

impl From<PartitionBits> for PartitionSet {
    fn from(PartitionBits(bytes): PartitionBits) -> PartitionSet {
        PartitionSet::from_bytes(bytes)
    }
}

impl From<PartitionSet> for PartitionBits {
    fn from(p: PartitionSet) -> PartitionBits {
        PartitionBits(p.0)
    }
}

impl PartitionSet {
    /// Every partition.
    pub fn all() -> PartitionSet {
        PartitionSet::from_iter(0..MAX_PARTITIONS)
    }

    /// The bitmap's bytes.
    pub fn bytes(&self) -> [u8; PARTITION_BYTES] {
        self.0
    }

    /// A bitmap read from a checkpoint or a request (bits past 99 ignored).
    pub fn from_bytes(bytes: [u8; PARTITION_BYTES]) -> PartitionSet {
        PartitionSet::from_iter(
            (0..MAX_PARTITIONS).filter(|&p| bytes[p as usize / 8] >> (p % 8) & 1 == 1),
        )
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: u32) -> bool {
        p < MAX_PARTITIONS && self.0[p as usize / 8] >> (p % 8) & 1 == 1
    }

    /// The partitions in both sets.
    pub fn intersection(&self, other: &PartitionSet) -> PartitionSet {
        let mut out = [0u8; PARTITION_BYTES];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0)) {
            *o = a & b;
        }
        PartitionSet(out)
    }

    /// Whether every partition of `self` is in `other`.
    pub fn is_subset(&self, other: &PartitionSet) -> bool {
        self.intersection(other) == *self
    }

    /// The partitions in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..MAX_PARTITIONS).filter(|&p| self.contains(p))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; PARTITION_BYTES]
    }
}

impl FromIterator<u32> for PartitionSet {
    /// Partitions past 99 are left out.
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> PartitionSet {
        let mut b = [0u8; PARTITION_BYTES];
        for p in iter.into_iter().filter(|&p| p < MAX_PARTITIONS) {
            b[p as usize / 8] |= 1 << (p % 8);
        }
        PartitionSet(b)
    }
}

impl From<&crate::Partitions> for PartitionSet {
    fn from(list: &crate::Partitions) -> PartitionSet {
        list.iter().collect()
    }
}

/// A request of `/vouch/1/sync`. Minutes are minutes since the Unix epoch of
/// the envelopes' own timestamps; partition sets are those the requester
/// follows (the server answers over those both follow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRequest {
    /// The digest of each minute of `from..=to` (at most
    /// [`MAX_SPAN_MINUTES`]) over the partitions both follow.
    Minutes {
        /// First minute.
        from: u64,
        /// Last minute (inclusive).
        to: u64,
        /// The requester's partitions.
        partitions: PartitionSet,
    },
    /// The digest of each partition of one minute.
    Partitions {
        /// The minute.
        minute: u64,
        /// The requester's partitions.
        partitions: PartitionSet,
    },
    /// The ids of one partition of one minute, ascending, from just after
    /// `after` (the last id of a truncated answer).
    Ids {
        /// The minute.
        minute: u64,
        /// The partition.
        partition: u32,
        /// Only ids greater than this one.
        #[serde(with = "serde_bytes")]
        after: Option<Id>,
    },
    /// The envelopes with these ids (at most [`MAX_FETCH_IDS`]).
    Fetch {
        /// The ids.
        #[serde(with = "concat_ids")]
        ids: Vec<Id>,
    },
}

/// The kinds of request, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// [`SyncRequest::Minutes`].
    Minutes,
    /// [`SyncRequest::Partitions`].
    Partitions,
    /// [`SyncRequest::Ids`].
    Ids,
    /// [`SyncRequest::Fetch`].
    Fetch,
}

impl RequestKind {
    /// Every kind, in metric order.
    pub const ALL: [RequestKind; 4] =
        [RequestKind::Minutes, RequestKind::Partitions, RequestKind::Ids, RequestKind::Fetch];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Minutes => "minutes",
            RequestKind::Partitions => "partitions",
            RequestKind::Ids => "ids",
            RequestKind::Fetch => "fetch",
        }
    }
}

impl SyncRequest {
    /// The request's kind.
    pub fn kind(&self) -> RequestKind {
        match self {
            SyncRequest::Minutes { .. } => RequestKind::Minutes,
            SyncRequest::Partitions { .. } => RequestKind::Partitions,
            SyncRequest::Ids { .. } => RequestKind::Ids,
            SyncRequest::Fetch { .. } => RequestKind::Fetch,
        }
    }

    /// Whether the request is within the protocol's bounds: what a server
    /// checks before it does any work. An honest client never sends a
    /// request that fails this.
    pub fn check(&self) -> Result<(), RefusedReason> {
        match self {
            SyncRequest::Minutes { from, to, .. } => {
                if from > to {
                    Err(RefusedReason::Invalid)
                } else if to - from >= MAX_SPAN_MINUTES {
                    Err(RefusedReason::TooLarge)
                } else {
                    Ok(())
                }
            }
            SyncRequest::Partitions { .. } => Ok(()),
            SyncRequest::Ids { partition, .. } if *partition >= MAX_PARTITIONS => {
                Err(RefusedReason::Invalid)
            }
            SyncRequest::Ids { .. } => Ok(()),
            SyncRequest::Fetch { ids } if ids.len() > MAX_FETCH_IDS => Err(RefusedReason::TooLarge),
            SyncRequest::Fetch { .. } => Ok(()),
        }
    }
}

/// A response of `/vouch/1/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncResponse {
    /// Answers [`SyncRequest::Minutes`]: the partitions both follow, and
    /// the digest of each minute of the span that holds ids in them,
    /// ascending (a minute left out is empty).
    Minutes {
        /// The partitions both follow: what every digest is over.
        partitions: PartitionSet,
        /// `(minute, digest)`, ascending, non-empty only.
        digests: Vec<(u64, Digest)>,
    },
    /// Answers [`SyncRequest::Partitions`]: the digest of each partition of
    /// the minute that holds ids, ascending.
    Partitions {
        /// The minute.
        minute: u64,
        /// `(partition, digest)`, ascending, non-empty only.
        digests: Vec<(u32, Digest)>,
    },
    /// Answers [`SyncRequest::Ids`].
    Ids {
        /// Ascending ids (at most [`MAX_IDS_PER_RESPONSE`]).
        #[serde(with = "concat_ids")]
        ids: Vec<Id>,
        /// More ids follow the last one.
        truncated: bool,
    },
    /// Answers [`SyncRequest::Fetch`]: the envelopes held, in the order
    /// asked, as many as fit [`MAX_RESPONSE_BYTES`]; ids not held are
    /// simply absent.
    Envelopes {
        /// Each envelope's bytes.
        #[serde(with = "byte_strings")]
        envelopes: Vec<Vec<u8>>,
    },
    /// The request was not served.
    Refused {
        /// Why.
        reason: RefusedReason,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RefusedReason {
    /// The requester sent more than its rate allows.
    #[error("rate limited")]
    RateLimited,
    /// The server is answering as many requests as it will at once.
    #[error("busy")]
    Busy,
    /// The request is over a bound (span, ids).
    #[error("over a bound")]
    TooLarge,
    /// The request makes no sense (a span that ends before it starts, a
    /// partition past 99).
    #[error("invalid")]
    Invalid,
    /// The requester is banned for a while (it served invalid envelopes or
    /// broke the protocol's bounds).
    #[error("banned")]
    Banned,
}

impl RefusedReason {
    /// Every reason, in metric order.
    pub const ALL: [RefusedReason; 5] = [
        RefusedReason::RateLimited,
        RefusedReason::Busy,
        RefusedReason::TooLarge,
        RefusedReason::Invalid,
        RefusedReason::Banned,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::RateLimited => "rate_limited",
            RefusedReason::Busy => "busy",
            RefusedReason::TooLarge => "too_large",
            RefusedReason::Invalid => "invalid",
            RefusedReason::Banned => "banned",
        }
    }
}

/// Ids as one byte string of 32-byte ids back to back: 1 + 32 bytes an id
/// smaller than an array of byte strings.
mod concat_ids {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Id;

    pub(super) fn serialize<S: Serializer>(ids: &[Id], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&ids.concat())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Id>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let (ids, rest) = bytes.as_chunks::<32>();
        if !rest.is_empty() {
            return Err(D::Error::custom("ids: length is not a multiple of 32"));
        }
        Ok(ids.to_vec())
    }
}

/// A list of byte strings (envelopes), not of arrays of integers.
mod byte_strings {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(super) fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items.iter().map(|v| Bytes::new(v)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(d)?.into_iter().map(ByteBuf::into_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_bits_round_trip_and_intersect() {
        let a: PartitionSet = [0, 7, 8, 99, 100, 4000].into_iter().collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 7, 8, 99]);
        assert_eq!(PartitionSet::from_bytes(a.bytes()), a);
        assert_eq!(PartitionSet::from_bytes([0xff; PARTITION_BYTES]), PartitionSet::all());
        let b: PartitionSet = [7, 99, 5].into_iter().collect();
        assert_eq!(a.intersection(&b).iter().collect::<Vec<_>>(), [7, 99]);
        assert!(a.intersection(&b).is_subset(&a) && !a.is_subset(&b));
        assert_eq!(PartitionSet::all().iter().count(), 100);
        assert!(!a.contains(100) && a.contains(8));
        assert!(PartitionSet::default().is_empty() && !a.is_empty());
        let list: crate::Partitions = "3,7-8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(PartitionSet::from(&list).iter().collect::<Vec<_>>(), [3, 7, 8]);
    }

    #[test]
    fn digests_commit_to_the_ids_and_skip_empty_partitions() {
        let ids: Vec<Id> = (0u8..3).map(|n| [n; 32]).collect();
        let d = Digest::of_ids(&ids);
        assert_eq!(d.count, 3);
        assert_ne!(d, Digest::of_ids(&ids[..2]));
        assert_eq!(Digest::of_ids(&[]), Digest::default());
        let minute = Digest::of_partitions([(1, d), (2, Digest::default())]);
        assert_eq!(minute, Digest::of_partitions([(1, d)]));
        assert_eq!(minute.count, 3);
        assert_ne!(minute, Digest::of_partitions([(2, d)]), "the partition is hashed in");
        assert_eq!(Digest::of_partitions([]), Digest::default());
    }

    #[test]
    fn checks_hold_the_bounds() {
        let p = PartitionSet::all();
        let minutes = |from, to| SyncRequest::Minutes { from, to, partitions: p };
        assert_eq!(minutes(10, 10 + MAX_SPAN_MINUTES - 1).check(), Ok(()));
        assert_eq!(minutes(10, 10 + MAX_SPAN_MINUTES).check(), Err(RefusedReason::TooLarge));
        assert_eq!(minutes(0, u64::MAX).check(), Err(RefusedReason::TooLarge));
        assert_eq!(minutes(11, 10).check(), Err(RefusedReason::Invalid));
        let ids = SyncRequest::Ids { minute: 1, partition: 100, after: None };
        assert_eq!(ids.check(), Err(RefusedReason::Invalid));
        let fetch = |n| SyncRequest::Fetch { ids: vec![[0; 32]; n] };
        assert_eq!(fetch(MAX_FETCH_IDS).check(), Ok(()));
        assert_eq!(fetch(MAX_FETCH_IDS + 1).check(), Err(RefusedReason::TooLarge));
        assert_eq!(fetch(1).kind().as_str(), "fetch");
    }
}
