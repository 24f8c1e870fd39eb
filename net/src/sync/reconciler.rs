//! The client side of a sync round with one peer, as a state machine with
//! no I/O: given the peer's answers and the local store, it decides the next
//! request, and hands over the envelopes fetched.
//!
//! A round compares a span of minutes, one [`MAX_SPAN_MINUTES`] chunk at a
//! time: the minutes whose digests differ, then their partitions whose
//! digests differ, then those partitions' ids (a page at a time), and
//! fetches the ids the local store lacks in chunks of [`MAX_FETCH_IDS`],
//! depth first (so it holds at most one page of ids). It ends when
//! everything is compared, when it has fetched its budget of ids, or at the
//! first refusal; the next round takes up what is left. Every answer is
//! checked against the question: an answer that could not come from an
//! honest peer ends the round as [`Misbehaviour`], which the caller
//! penalizes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use vouch_schema::merkle::envelope_id;

use super::store::SyncStore;
use super::wire::{
    Id, MAX_FETCH_IDS, MAX_IDS_PER_RESPONSE, MAX_SPAN_MINUTES, PartitionSet, RefusedReason,
    SyncRequest, SyncResponse,
};

/// How a round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// Everything in the span was compared (and what was lacking fetched).
    Complete,
    /// The round fetched its budget of ids, or the bound on ids being
    /// fetched at once was reached; the next round goes on.
    Budget,
    /// The peer refused a request.
    Refused(RefusedReason),
    /// A request failed (timeout, connection closed).
    Failed,
    /// The peer's answer broke the protocol.
    Misbehaved,
}

impl RoundEnd {
    /// Metric labels, one per variant (refusals share one).
    pub(crate) const LABELS: [&'static str; 5] =
        ["complete", "budget", "refused", "failed", "misbehaved"];

    pub(crate) fn label_index(self) -> usize {
        match self {
            RoundEnd::Complete => 0,
            RoundEnd::Budget => 1,
            RoundEnd::Refused(_) => 2,
            RoundEnd::Failed => 3,
            RoundEnd::Misbehaved => 4,
        }
    }
}

/// An answer no honest peer gives to the request it got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    /// An answer of another kind than the request.
    #[error("answered a {asked} request with another kind of answer")]
    WrongAnswer {
        /// The request's kind.
        asked: &'static str,
    },
    /// Digests out of order, repeated, empty, or outside what was asked.
    #[error("digests out of order or outside the request")]
    BadDigests,
    /// Ids out of order, repeated, not after the cursor, or too many.
    #[error("ids out of order, repeated or outside the request")]
    BadIds,
    /// An envelope whose id was not asked for (or was sent twice).
    #[error("an envelope that was not asked for")]
    UnrequestedEnvelope,
}

/// The round's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundLimits {
    /// Ids fetched at most in one round.
    pub max_fetch: usize,
}

/// What the peer's answer led to.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Envelopes fetched by this answer, for the node to validate.
    pub fetched: Vec<Vec<u8>>,
    /// What to do next.
    pub next: Next,
}

/// The round's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this request to the peer.
    Request(SyncRequest),
    /// The round is over.
    Done(RoundEnd),
}

/// Whether an id may be fetched now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Yes: it is now claimed.
    Granted,
    /// It was fetched (or asked for) recently, from this peer or another.
    Recent,
    /// The bound on claimed ids is reached.
    Full,
}

/// The ids being fetched or fetched recently, shared by every peer's round:
/// an envelope missing from several peers is asked from one, and one the
/// node rejected (or has not indexed yet) is not fetched again before
/// `ttl`. Bounded by `max`.
#[derive(Debug)]
pub struct FetchClaims {
    at: HashMap<Id, Instant>,
    order: VecDeque<(Id, Instant)>,
    ttl: Duration,
    max: usize,
}

impl FetchClaims {
    /// Claims that last `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> FetchClaims {
        FetchClaims { at: HashMap::new(), order: VecDeque::new(), ttl, max: max.max(1) }
    }

    /// Claims `id` at `now`.
    pub fn claim(&mut self, id: Id, now: Instant) -> Claim {
        self.expire(now);
        if self.at.contains_key(&id) {
            return Claim::Recent;
        }
        if self.at.len() >= self.max {
            return Claim::Full;
        }
        self.at.insert(id, now);
        self.order.push_back((id, now));
        if self.order.len() > 2 * self.max {
            // Released ids leave stale entries behind: drop them.
            let at = &self.at;
            self.order.retain(|(id, t)| at.get(id) == Some(t));
        }
        Claim::Granted
    }

    /// Gives `id` up: it was not fetched, another peer may serve it.
    pub fn release(&mut self, id: &Id) {
        self.at.remove(id);
    }

    /// Ids claimed now.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether no id is claimed.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(id, t)) = self.order.front() {
            if now.saturating_duration_since(t) < self.ttl {
                break;
            }
            self.order.pop_front();
            if self.at.get(&id) == Some(&t) {
                self.at.remove(&id);
            }
        }
    }
}

/// Counts of one round, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundCounts {
    /// Ids received in the peer's id lists.
    pub ids_compared: usize,
    /// Missing ids skipped because they were claimed recently.
    pub recently_fetched: usize,
    /// Envelopes fetched.
    pub fetched: usize,
    /// Times the claim bound stopped the round.
    pub claims_full: usize,
}

/// One round of sync with one peer.
#[derive(Debug)]
pub struct Reconciler {
    limits: RoundLimits,
    /// The partitions both follow (the requester's own until the first answer).
    shared: PartitionSet,
    /// The current chunk of the span, and the last minute of the span.
    chunk: (u64, u64),
    last: u64,
    minutes: VecDeque<u64>,
    cells: VecDeque<(u64, u32)>,
    /// More ids of this cell follow this one.
    cursor: Option<(u64, u32, Id)>,
    lacking: VecDeque<Id>,
    /// Ids claimed for this round (fetched or queued).
    claimed: usize,
    /// No more claims this round (budget or claim bound).
    stop_claiming: bool,
    asked: Option<SyncRequest>,
    counts: RoundCounts,
}

impl Reconciler {
    /// A round over `from..=to` (minutes) and `partitions` (the ones this
    /// node follows); returns it and its first request, or `None` when the
    /// span or the partitions are empty.
    pub fn start(
        from: u64,
        to: u64,
        partitions: PartitionSet,
        limits: RoundLimits,
    ) -> Option<(Reconciler, SyncRequest)> {
        if from > to || partitions.is_empty() {
            return None;
        }
        let chunk = (from, to.min(from.saturating_add(MAX_SPAN_MINUTES - 1)));
        let request = SyncRequest::Minutes { from: chunk.0, to: chunk.1, partitions };
        let r = Reconciler {
            limits,
            shared: partitions,
            chunk,
            last: to,
            minutes: VecDeque::new(),
            cells: VecDeque::new(),
            cursor: None,
            lacking: VecDeque::new(),
            claimed: 0,
            stop_claiming: false,
            asked: Some(request.clone()),
            counts: RoundCounts::default(),
        };
        Some((r, request))
    }

    /// The round's counts so far.
    pub fn counts(&self) -> RoundCounts {
        self.counts
    }

    /// Takes the peer's `response` to the outstanding request, compares it
    /// with `local`, and decides what comes next. Ids to fetch are claimed
    /// in `claims` at `now`; when the round ends short of fetching them
    /// (a refusal, [`Misbehaviour`]) they are released for other peers.
    pub fn on_response(
        &mut self,
        response: SyncResponse,
        local: &dyn SyncStore,
        claims: &mut FetchClaims,
        now: Instant,
    ) -> Result<Outcome, Misbehaviour> {
        let Some(asked) = self.asked.take() else {
            return Ok(Outcome { fetched: Vec::new(), next: Next::Done(RoundEnd::Complete) });
        };
        if let SyncResponse::Refused { reason } = response {
            self.asked = Some(asked);
            return Ok(self.done_with(Vec::new(), RoundEnd::Refused(reason), claims));
        }
        let result = self.take_answer(asked, response, local, claims, now);
        if result.is_err() {
            self.abandon(claims);
        }
        result
    }

    fn take_answer(
        &mut self,
        asked: SyncRequest,
        response: SyncResponse,
        local: &dyn SyncStore,
        claims: &mut FetchClaims,
        now: Instant,
    ) -> Result<Outcome, Misbehaviour> {
        let mut fetched = Vec::new();
        match (asked, response) {
            (
                SyncRequest::Minutes { from, to, partitions: asked },
                SyncResponse::Minutes { partitions, digests },
            ) => {
                let in_span = digests.iter().all(|(m, _)| (from..=to).contains(m));
                if !partitions.is_subset(&asked)
                    || !in_span
                    || !strictly_ascending(digests.iter().map(|(m, d)| (*m, d.is_empty())))
                {
                    return Err(Misbehaviour::BadDigests);
                }
                self.shared = partitions;
                if !partitions.is_empty() {
                    let ours: HashMap<u64, _> =
                        local.minute_digests(from, to, &partitions).into_iter().collect();
                    self.minutes.extend(
                        digests.into_iter().filter(|(m, d)| ours.get(m) != Some(d)).map(|(m, _)| m),
                    );
                }
            }
            (
                SyncRequest::Partitions { minute, partitions: asked },
                SyncResponse::Partitions { minute: got, digests },
            ) => {
                let shared = digests.iter().all(|(p, _)| asked.contains(*p));
                if got != minute
                    || !shared
                    || !strictly_ascending(digests.iter().map(|(p, d)| (*p, d.is_empty())))
                {
                    return Err(Misbehaviour::BadDigests);
                }
                let ours: HashMap<u32, _> =
                    local.partition_digests(minute, &self.shared).into_iter().collect();
                self.cells.extend(
                    digests
                        .into_iter()
                        .filter(|(p, d)| ours.get(p) != Some(d))
                        .map(|(p, _)| (minute, p)),
                );
            }
            (
                SyncRequest::Ids { minute, partition, after },
                SyncResponse::Ids { ids, truncated },
            ) => {
                let after_cursor = match (after, ids.first()) {
                    (Some(a), Some(first)) => *first > a,
                    _ => true,
                };
                if ids.len() > MAX_IDS_PER_RESPONSE
                    || !after_cursor
                    || !ids.windows(2).all(|w| w[0] < w[1])
                {
                    return Err(Misbehaviour::BadIds);
                }
                self.counts.ids_compared += ids.len();
                self.cursor = match ids.last() {
                    Some(last) if truncated => Some((minute, partition, *last)),
                    _ => None,
                };
                self.claim_missing(local.missing(&ids), claims, now);
            }
            (SyncRequest::Fetch { ids: asked }, SyncResponse::Envelopes { envelopes }) => {
                let mut wanted: HashSet<Id> = asked.iter().copied().collect();
                if !envelopes.iter().all(|e| wanted.remove(&envelope_id(e))) {
                    for id in &asked {
                        claims.release(id);
                    }
                    return Err(Misbehaviour::UnrequestedEnvelope);
                }
                self.counts.fetched += envelopes.len();
                let left: Vec<Id> = asked.into_iter().filter(|id| wanted.contains(id)).collect();
                if envelopes.is_empty() {
                    // The peer no longer holds them: another peer may.
                    for id in &left {
                        claims.release(id);
                    }
                } else {
                    // They did not fit the answer: next.
                    for id in left.into_iter().rev() {
                        self.lacking.push_front(id);
                    }
                }
                fetched = envelopes;
            }
            (asked, _) => {
                return Err(Misbehaviour::WrongAnswer { asked: asked.kind().as_str() });
            }
        }
        Ok(self.advance(fetched, claims))
    }

    /// Ends the round short (a request failed, or the peer refused or
    /// misbehaved): the ids queued or being fetched are released, so that
    /// another peer may serve them.
    pub fn abandon(&mut self, claims: &mut FetchClaims) {
        if let Some(SyncRequest::Fetch { ids }) = self.asked.take() {
            for id in &ids {
                claims.release(id);
            }
        }
        for id in self.lacking.drain(..) {
            claims.release(&id);
        }
    }

    fn claim_missing(&mut self, missing: Vec<Id>, claims: &mut FetchClaims, now: Instant) {
        for id in missing {
            if self.stop_claiming {
                break;
            }
            if self.claimed >= self.limits.max_fetch {
                self.stop_claiming = true;
                break;
            }
            match claims.claim(id, now) {
                Claim::Granted => {
                    self.claimed += 1;
                    self.lacking.push_back(id);
                }
                Claim::Recent => self.counts.recently_fetched += 1,
                Claim::Full => {
                    self.counts.claims_full += 1;
                    self.stop_claiming = true;
                }
            }
        }
    }

    fn done_with(
        &mut self,
        fetched: Vec<Vec<u8>>,
        end: RoundEnd,
        claims: &mut FetchClaims,
    ) -> Outcome {
        self.abandon(claims);
        Outcome { fetched, next: Next::Done(end) }
    }

    /// The next request, depth first: fetch what is lacking, then the next
    /// page of ids, the next differing cell, the next differing minute, the
    /// next chunk of the span.
    fn advance(&mut self, fetched: Vec<Vec<u8>>, claims: &mut FetchClaims) -> Outcome {
        let request = if !self.lacking.is_empty() {
            let n = self.lacking.len().min(MAX_FETCH_IDS);
            SyncRequest::Fetch { ids: self.lacking.drain(..n).collect() }
        } else if self.stop_claiming {
            return self.done_with(fetched, RoundEnd::Budget, claims);
        } else if let Some((minute, partition, last)) = self.cursor.take() {
            SyncRequest::Ids { minute, partition, after: Some(last) }
        } else if let Some((minute, partition)) = self.cells.pop_front() {
            SyncRequest::Ids { minute, partition, after: None }
        } else if let Some(minute) = self.minutes.pop_front() {
            SyncRequest::Partitions { minute, partitions: self.shared }
        } else if self.chunk.1 < self.last && !self.shared.is_empty() {
            let from = self.chunk.1 + 1;
            self.chunk = (from, self.last.min(from.saturating_add(MAX_SPAN_MINUTES - 1)));
            SyncRequest::Minutes { from, to: self.chunk.1, partitions: self.shared }
        } else {
            return self.done_with(fetched, RoundEnd::Complete, claims);
        };
        self.asked = Some(request.clone());
        Outcome { fetched, next: Next::Request(request) }
    }
}

/// Whether keys ascend strictly and no digest is empty (empty ones are
/// left out by the protocol).
fn strictly_ascending<K: Ord>(rows: impl Iterator<Item = (K, bool)>) -> bool {
    let mut prev = None;
    for (k, empty) in rows {
        if empty || prev.as_ref().is_some_and(|p| *p >= k) {
            return false;
        }
        prev = Some(k);
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sync::server::answer;
    use crate::sync::store::MemoryStore;
    use crate::sync::wire::Digest;

    const LIMITS: RoundLimits = RoundLimits { max_fetch: 100_000 };

    fn claims() -> FetchClaims {
        FetchClaims::new(Duration::from_secs(60), 1_000_000)
    }

    /// Fills `store` with `n` envelopes spread over minutes and partitions.
    fn fill(store: &MemoryStore, seed: &str, n: usize, minutes: u64, partitions: u32) {
        for i in 0..n {
            let m = 1000 + (i as u64 % minutes);
            let p = (i as u32 / 7) % partitions;
            store.insert(m, p, format!("{seed}-{i}").into_bytes());
        }
    }

    /// Runs one round of `local` against `remote` (answered as a server
    /// would), inserting what is fetched into `local` as the node would.
    /// Returns how it ended and the requests it took.
    fn round(
        local: &MemoryStore,
        remote: &MemoryStore,
        own: PartitionSet,
        remote_own: PartitionSet,
        span: (u64, u64),
        limits: RoundLimits,
        claims: &mut FetchClaims,
    ) -> (RoundEnd, usize) {
        let (mut r, mut req) = Reconciler::start(span.0, span.1, own, limits).unwrap();
        let mut requests = 1;
        loop {
            assert_eq!(req.check(), Ok(()), "an honest client stays in bounds");
            let resp = answer(remote, &remote_own, req);
            let out = r.on_response(resp, local, claims, Instant::now()).unwrap();
            for e in out.fetched {
                // The node would validate; here the test knows where each goes.
                let (m, p) = locate(remote, &e);
                local.insert(m, p, e);
            }
            match out.next {
                Next::Request(next) => {
                    req = next;
                    requests += 1;
                }
                Next::Done(end) => return (end, requests),
            }
        }
    }

    fn locate(store: &MemoryStore, envelope: &[u8]) -> (u64, u32) {
        store.location(&envelope_id(envelope)).unwrap()
    }

    fn same(a: &MemoryStore, b: &MemoryStore, span: (u64, u64), p: &PartitionSet) -> bool {
        a.minute_digests(span.0, span.1, p) == b.minute_digests(span.0, span.1, p)
    }

    #[test]
    fn two_stores_converge_in_a_bounded_number_of_requests() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        fill(&a, "shared", 300, 5, 4);
        fill(&b, "shared", 300, 5, 4);
        fill(&a, "only-a", 40, 5, 4);
        fill(&b, "only-b", 25, 3, 2);
        let all = PartitionSet::all();
        let span = (1000, 1004);
        let mut c = claims();
        let (end, n) = round(&a, &b, all, all, span, LIMITS, &mut c);
        assert_eq!(end, RoundEnd::Complete);
        // 1 minutes + ≤5 partitions + ≤5×4 ids + fetches (25 ids: one per cell at most).
        assert!(n <= 1 + 5 + 20 + 20, "{n} requests");
        assert_eq!(a.len(), 365);
        let (end, _) = round(&b, &a, all, all, span, LIMITS, &mut c);
        assert_eq!(end, RoundEnd::Complete);
        assert!(same(&a, &b, span, &all));
        // Equal stores: one request.
        assert_eq!(round(&a, &b, all, all, span, LIMITS, &mut c), (RoundEnd::Complete, 1));
    }

    #[test]
    fn only_partitions_both_follow_are_compared() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        fill(&b, "b", 100, 2, 4);
        let a_own: PartitionSet = [1, 2].into_iter().collect();
        let b_own: PartitionSet = [2, 3].into_iter().collect();
        let (end, _) = round(&a, &b, a_own, b_own, (1000, 1001), LIMITS, &mut claims());
        assert_eq!(end, RoundEnd::Complete);
        let two: PartitionSet = [2].into_iter().collect();
        assert!(same(&a, &b, (1000, 1001), &two));
        assert_eq!(a.minute_digests(0, 2000, &all_but(2)), vec![]);
    }

    fn all_but(p: u32) -> PartitionSet {
        (0..100).filter(|&x| x != p).collect()
    }

    #[test]
    fn long_spans_go_in_chunks_and_big_cells_in_pages() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        // One minute in each of three chunks of the span.
        b.insert(1000, 0, b"first".to_vec());
        b.insert(1000 + MAX_SPAN_MINUTES, 0, b"second".to_vec());
        b.insert(1000 + 2 * MAX_SPAN_MINUTES + 5, 0, b"third".to_vec());
        // A cell bigger than one page of ids.
        for i in 0..MAX_IDS_PER_RESPONSE + 10 {
            b.insert(1001, 9, i.to_le_bytes().to_vec());
        }
        let all = PartitionSet::all();
        let span = (1000, 1000 + 3 * MAX_SPAN_MINUTES);
        let (end, _) = round(&a, &b, all, all, span, LIMITS, &mut claims());
        assert_eq!(end, RoundEnd::Complete);
        assert!(same(&a, &b, span, &all));
        assert_eq!(a.len(), MAX_IDS_PER_RESPONSE + 13);
    }

    #[test]
    fn the_fetch_budget_ends_a_round_and_the_next_goes_on() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        fill(&b, "b", 500, 2, 3);
        let all = PartitionSet::all();
        let small = RoundLimits { max_fetch: 200 };
        let mut c = claims();
        let (end, _) = round(&a, &b, all, all, (1000, 1001), small, &mut c);
        assert_eq!((end, a.len()), (RoundEnd::Budget, 200));
        let (end, _) = round(&a, &b, all, all, (1000, 1001), small, &mut c);
        assert_eq!((end, a.len()), (RoundEnd::Budget, 400));
        let (end, _) = round(&a, &b, all, all, (1000, 1001), small, &mut c);
        assert_eq!((end, a.len()), (RoundEnd::Complete, 500));
    }

    #[test]
    fn ids_claimed_recently_are_not_fetched_twice() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        fill(&b, "b", 50, 1, 1);
        let all = PartitionSet::all();
        let mut c = claims();
        // A node that rejects everything: nothing lands in `a`.
        let (mut r, req) = Reconciler::start(1000, 1000, all, LIMITS).unwrap();
        let mut req = req;
        let now = Instant::now();
        let mut fetched = 0;
        loop {
            let out = r.on_response(answer(&b, &all, req), &a, &mut c, now).unwrap();
            fetched += out.fetched.len();
            match out.next {
                Next::Request(next) => req = next,
                Next::Done(end) => break assert_eq!(end, RoundEnd::Complete),
            }
        }
        assert_eq!(fetched, 50);
        // The next round finds them missing still, but claimed.
        let (mut r, mut req) = Reconciler::start(1000, 1000, all, LIMITS).unwrap();
        loop {
            let out = r.on_response(answer(&b, &all, req), &a, &mut c, now).unwrap();
            assert!(out.fetched.is_empty());
            match out.next {
                Next::Request(next) => req = next,
                Next::Done(_) => break,
            }
        }
        assert_eq!(r.counts().recently_fetched, 50);
        // After the ttl they are fetched again.
        let later = now + Duration::from_secs(61);
        assert_eq!(c.claim([0; 32], later), Claim::Granted);
        assert_eq!(c.len(), 1, "the old claims expired");
    }

    #[test]
    fn the_claim_bound_stops_a_round() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        fill(&b, "b", 30, 1, 1);
        let all = PartitionSet::all();
        let mut c = FetchClaims::new(Duration::from_secs(60), 10);
        let (end, _) = round(&a, &b, all, all, (1000, 1000), LIMITS, &mut c);
        assert_eq!((end, a.len()), (RoundEnd::Budget, 10));
    }

    #[test]
    fn a_refusal_ends_the_round_and_releases_its_claims() {
        let b = MemoryStore::new();
        fill(&b, "b", 300, 1, 1);
        let a = MemoryStore::new();
        let all = PartitionSet::all();
        let mut c = claims();
        let (mut r, req) = Reconciler::start(1000, 1000, all, LIMITS).unwrap();
        let now = Instant::now();
        let mut req = req;
        // Minutes, partitions, ids: 300 ids queued, the first 256 asked.
        for _ in 0..3 {
            let Next::Request(next) =
                r.on_response(answer(&b, &all, req), &a, &mut c, now).unwrap().next
            else {
                panic!("more to do")
            };
            req = next;
        }
        assert!(matches!(&req, SyncRequest::Fetch { ids } if ids.len() == MAX_FETCH_IDS));
        assert_eq!(c.len(), 300);
        let refused = SyncResponse::Refused { reason: RefusedReason::Busy };
        let out = r.on_response(refused, &a, &mut c, now).unwrap();
        assert_eq!(out.next, Next::Done(RoundEnd::Refused(RefusedReason::Busy)));
        assert!(c.is_empty(), "the ids queued and asked for were released");
    }

    #[test]
    fn answers_that_no_honest_peer_gives_are_misbehaviour() {
        let a = MemoryStore::new();
        let all = PartitionSet::all();
        let two: PartitionSet = [2].into_iter().collect();
        let d = Digest { count: 1, hash: [1; 32] };
        let start = |own| Reconciler::start(1000, 1004, own, LIMITS).unwrap().0;
        let cases: Vec<(PartitionSet, SyncResponse, Misbehaviour)> = vec![
            (
                all,
                SyncResponse::Ids { ids: vec![], truncated: false },
                Misbehaviour::WrongAnswer { asked: "minutes" },
            ),
            (
                all,
                SyncResponse::Minutes { partitions: all, digests: vec![(999, d)] },
                Misbehaviour::BadDigests,
            ),
            (
                all,
                SyncResponse::Minutes { partitions: all, digests: vec![(1001, d), (1000, d)] },
                Misbehaviour::BadDigests,
            ),
            (
                all,
                SyncResponse::Minutes { partitions: all, digests: vec![(1001, Digest::default())] },
                Misbehaviour::BadDigests,
            ),
            (
                two,
                SyncResponse::Minutes { partitions: all, digests: vec![] },
                Misbehaviour::BadDigests,
            ),
        ];
        for (own, resp, want) in cases {
            let got = start(own).on_response(resp.clone(), &a, &mut claims(), Instant::now());
            assert_eq!(got, Err(want), "{resp:?}");
        }

        // Past the minutes: a peer that says it holds minute 1000 in
        // partition 2, then serves unsorted ids, then an envelope not asked for.
        let mut r = start(all);
        let now = Instant::now();
        let mut c = claims();
        let step = |r: &mut Reconciler, c: &mut FetchClaims, resp| r.on_response(resp, &a, c, now);
        let minutes = SyncResponse::Minutes { partitions: all, digests: vec![(1000, d)] };
        assert!(step(&mut r, &mut c, minutes.clone()).is_ok());
        let wrong_minute = SyncResponse::Partitions { minute: 1001, digests: vec![(2, d)] };
        assert_eq!(step(&mut r, &mut c, wrong_minute), Err(Misbehaviour::BadDigests));

        let mut r = start(all);
        step(&mut r, &mut c, minutes.clone()).unwrap();
        step(&mut r, &mut c, SyncResponse::Partitions { minute: 1000, digests: vec![(2, d)] })
            .unwrap();
        let unsorted = SyncResponse::Ids { ids: vec![[2; 32], [1; 32]], truncated: false };
        assert_eq!(step(&mut r, &mut c, unsorted), Err(Misbehaviour::BadIds));

        let mut r = start(all);
        let mut c = claims();
        step(&mut r, &mut c, minutes).unwrap();
        step(&mut r, &mut c, SyncResponse::Partitions { minute: 1000, digests: vec![(2, d)] })
            .unwrap();
        let ids = vec![envelope_id(b"x"), envelope_id(b"y")];
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let out = step(&mut r, &mut c, SyncResponse::Ids { ids: sorted, truncated: false });
        assert!(matches!(out.unwrap().next, Next::Request(SyncRequest::Fetch { .. })));
        let garbage = SyncResponse::Envelopes { envelopes: vec![b"x".to_vec(), b"z".to_vec()] };
        assert_eq!(step(&mut r, &mut c, garbage), Err(Misbehaviour::UnrequestedEnvelope));
    }

    #[test]
    fn empty_spans_and_partitions_start_nothing() {
        let all = PartitionSet::all();
        assert!(Reconciler::start(5, 4, all, LIMITS).is_none());
        assert!(Reconciler::start(5, 5, PartitionSet::default(), LIMITS).is_none());
        let (_, req) = Reconciler::start(0, u64::MAX, all, LIMITS).unwrap();
        assert_eq!(req.check(), Ok(()), "a huge span is asked a chunk at a time");
    }
}
