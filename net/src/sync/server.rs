//! The serving side: who may ask what how often ([`Gate`]), and the answer
//! to an admitted request ([`answer`]), bounded in size whatever the store
//! holds.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;

use super::store::SyncStore;
use super::wire::{
    MAX_IDS_PER_RESPONSE, MAX_RESPONSE_BYTES, MAX_SPAN_MINUTES, PartitionSet,
    RESPONSE_OVERHEAD_BYTES, RefusedReason, SyncRequest, SyncResponse,
};

/// The answer to `request` from `store`, over the partitions both the
/// requester and this node (`own`) follow. Call it for requests that passed
/// [`SyncRequest::check`]; it still bounds everything itself (a span past
/// [`MAX_SPAN_MINUTES`] is cut, ids and envelope bytes are capped), so that
/// what a store returns never makes an answer over [`MAX_RESPONSE_BYTES`].
pub fn answer(store: &dyn SyncStore, own: &PartitionSet, request: SyncRequest) -> SyncResponse {
    match request {
        SyncRequest::Minutes { from, to, partitions } => {
            let partitions = partitions.intersection(own);
            let to = to.min(from.saturating_add(MAX_SPAN_MINUTES - 1));
            let mut digests = if partitions.is_empty() || from > to {
                Vec::new()
            } else {
                store.minute_digests(from, to, &partitions)
            };
            digests.retain(|(m, d)| (from..=to).contains(m) && !d.is_empty());
            digests.truncate(MAX_SPAN_MINUTES as usize);
            SyncResponse::Minutes { partitions, digests }
        }
        SyncRequest::Partitions { minute, partitions } => {
            let partitions = partitions.intersection(own);
            let mut digests = if partitions.is_empty() {
                Vec::new()
            } else {
                store.partition_digests(minute, &partitions)
            };
            digests.retain(|(p, d)| partitions.contains(*p) && !d.is_empty());
            SyncResponse::Partitions { minute, digests }
        }
        SyncRequest::Ids { minute, partition, after } => {
            if !own.contains(partition) {
                return SyncResponse::Ids { ids: Vec::new(), truncated: false };
            }
            // One more than a page tells whether more follow.
            let mut ids = store.ids(minute, partition, after.as_ref(), MAX_IDS_PER_RESPONSE + 1);
            let truncated = ids.len() > MAX_IDS_PER_RESPONSE;
            ids.truncate(MAX_IDS_PER_RESPONSE);
            SyncResponse::Ids { ids, truncated }
        }
        SyncRequest::Fetch { ids } => {
            let budget = MAX_RESPONSE_BYTES - RESPONSE_OVERHEAD_BYTES;
            let mut envelopes = store.envelopes(&ids, budget);
            let mut total = 0usize;
            envelopes.retain(|e| {
                total += e.len();
                total <= budget
            });
            SyncResponse::Envelopes { envelopes }
        }
    }
}

/// The serving limits (part of [`crate::SyncConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GateLimits {
    /// Requests a second each peer may send, sustained.
    pub(crate) rate: f64,
    /// Requests each peer may send at once.
    pub(crate) burst: f64,
    /// Requests answered at once, all peers together.
    pub(crate) max_serving: usize,
    /// Peers whose buckets are kept.
    pub(crate) max_peers: usize,
}

/// A token bucket refilled from the caller's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn full(burst: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, at: now }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = self.at.max(now);
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is due.
    pub(crate) fn next_token(&mut self, rate: f64, burst: f64, now: Instant) -> Instant {
        self.refill(rate, burst, now);
        let wait = ((1.0 - self.tokens).max(0.0) / rate.max(f64::MIN_POSITIVE)).min(3600.0);
        now + std::time::Duration::from_secs_f64(wait)
    }

    fn is_full(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        self.tokens >= burst
    }
}

/// Admission of inbound requests: a token bucket per peer and a cap on the
/// requests being answered at once.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: GateLimits,
    buckets: HashMap<PeerId, Bucket>,
    serving: usize,
}

/// Why [`Gate::admit`] turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turned {
    /// The peer is over its rate.
    RateLimited,
    /// The bucket table is full of peers that are not idle.
    PeersFull,
}

impl Turned {
    pub(crate) fn reason(self) -> RefusedReason {
        match self {
            Turned::RateLimited => RefusedReason::RateLimited,
            Turned::PeersFull => RefusedReason::Busy,
        }
    }
}

impl Gate {
    pub(crate) fn new(limits: GateLimits) -> Gate {
        Gate { limits, buckets: HashMap::new(), serving: 0 }
    }

    /// Takes a token of `peer`'s bucket at `now`, or says why not.
    pub(crate) fn take_token(&mut self, peer: PeerId, now: Instant) -> Result<(), Turned> {
        let GateLimits { rate, burst, max_peers, .. } = self.limits;
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= max_peers {
            // A full bucket is the same as none: forget those first.
            self.buckets.retain(|_, b| !b.is_full(rate, burst, now));
            if self.buckets.len() >= max_peers {
                return Err(Turned::PeersFull);
            }
        }
        let bucket = self.buckets.entry(peer).or_insert_with(|| Bucket::full(burst, now));
        if bucket.take(rate, burst, now) { Ok(()) } else { Err(Turned::RateLimited) }
    }

    /// Counts a request as being answered until [`Gate::served`]; false
    /// when as many as allowed are.
    pub(crate) fn start_serving(&mut self) -> bool {
        if self.serving >= self.limits.max_serving {
            return false;
        }
        self.serving += 1;
        true
    }

    /// An admitted request was answered (or given up).
    pub(crate) fn served(&mut self) {
        self.serving = self.serving.saturating_sub(1);
    }

    /// Requests being answered now.
    pub(crate) fn serving(&self) -> usize {
        self.serving
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sync::store::MemoryStore;
    use crate::sync::wire::{Digest, Id, MAX_FETCH_IDS};

    /// A store that returns more than it is asked for, to show the answer
    /// stays bounded anyway.
    struct Greedy;

    impl SyncStore for Greedy {
        fn minute_digests(&self, _: u64, _: u64, _: &PartitionSet) -> Vec<(u64, Digest)> {
            (0..10_000).map(|m| (m, Digest { count: 1, hash: [1; 32] })).collect()
        }
        fn partition_digests(&self, _: u64, _: &PartitionSet) -> Vec<(u32, Digest)> {
            (0..200).map(|p| (p, Digest { count: 1, hash: [1; 32] })).collect()
        }
        fn ids(&self, _: u64, _: u32, _: Option<&Id>, _: usize) -> Vec<Id> {
            vec![[1; 32]; 100_000]
        }
        fn missing(&self, ids: &[Id]) -> Vec<Id> {
            ids.to_vec()
        }
        fn envelopes(&self, _: &[Id], _: usize) -> Vec<Vec<u8>> {
            vec![vec![0; 64 * 1024]; 100]
        }
    }

    #[test]
    fn answers_stay_in_bounds_whatever_the_store_returns() {
        let own: PartitionSet = [1, 2].into_iter().collect();
        let encoded = |r: &SyncResponse| crate::sync::codec::encode(r, MAX_RESPONSE_BYTES).unwrap();
        let all = PartitionSet::all();
        let r = answer(&Greedy, &own, SyncRequest::Minutes { from: 100, to: 200, partitions: all });
        let SyncResponse::Minutes { partitions, digests } = &r else { panic!("{r:?}") };
        assert_eq!(*partitions, own);
        assert_eq!(digests.len(), MAX_SPAN_MINUTES as usize);
        assert_eq!(digests[0].0, 100);
        let r = answer(&Greedy, &own, SyncRequest::Partitions { minute: 1, partitions: all });
        assert!(matches!(&r, SyncResponse::Partitions { digests, .. } if digests.len() == 2));
        let r = answer(&Greedy, &own, SyncRequest::Ids { minute: 1, partition: 2, after: None });
        assert!(
            matches!(&r, SyncResponse::Ids { ids, truncated: true } if ids.len() == MAX_IDS_PER_RESPONSE)
        );
        encoded(&r);
        let r = answer(&Greedy, &own, SyncRequest::Ids { minute: 1, partition: 3, after: None });
        assert_eq!(r, SyncResponse::Ids { ids: vec![], truncated: false }, "not followed here");
        let r = answer(&Greedy, &own, SyncRequest::Fetch { ids: vec![[0; 32]; MAX_FETCH_IDS] });
        let SyncResponse::Envelopes { envelopes } = &r else { panic!() };
        assert_eq!(envelopes.len(), (MAX_RESPONSE_BYTES - RESPONSE_OVERHEAD_BYTES) / (64 * 1024));
        encoded(&r);
    }

    #[test]
    fn partitions_the_requester_does_not_follow_are_left_out() {
        let s = MemoryStore::new();
        s.insert(5, 1, b"one".to_vec());
        s.insert(5, 2, b"two".to_vec());
        let own = PartitionSet::all();
        let asked: PartitionSet = [2, 3].into_iter().collect();
        let r = answer(&s, &own, SyncRequest::Minutes { from: 0, to: 10, partitions: asked });
        let SyncResponse::Minutes { partitions, digests } = r else { panic!() };
        assert_eq!(partitions, asked);
        assert_eq!(digests.len(), 1);
        assert_eq!(digests[0].1.count, 1);
    }

    #[test]
    fn the_gate_limits_rate_per_peer_and_work_in_flight() {
        let limits = GateLimits { rate: 2.0, burst: 3.0, max_serving: 4, max_peers: 2 };
        let mut g = Gate::new(limits);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.take_token(a, t0), Ok(()));
        }
        assert_eq!(g.take_token(a, t0), Err(Turned::RateLimited));
        assert_eq!(g.take_token(a, t0 + Duration::from_millis(500)), Ok(()), "refilled at 2/s");
        assert_eq!(g.take_token(b, t0), Ok(()));
        // Two peers tracked, neither idle: a third is turned away.
        assert_eq!(g.take_token(c, t0), Err(Turned::PeersFull));
        // Once the buckets have refilled, they are forgotten to make room.
        assert_eq!(g.take_token(c, t0 + Duration::from_secs(10)), Ok(()));
        for _ in 0..4 {
            assert!(g.start_serving());
        }
        assert!(!g.start_serving());
        assert_eq!(g.serving(), 4);
        g.served();
        assert!(g.start_serving());
        let mut bucket = Bucket::full(1.0, t0);
        assert!(bucket.take(1.0, 1.0, t0));
        assert_eq!(bucket.next_token(1.0, 1.0, t0), t0 + Duration::from_secs(1));
    }
}
