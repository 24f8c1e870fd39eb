//! Counters of validation outcomes and guard evictions.

use std::collections::BTreeMap;

use super::error::Outcome;

/// Which bounded map an eviction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// A (publisher, chain) was forgotten.
    Chains,
    /// A chain's oldest remembered position was dropped.
    ChainPositions,
    /// A verified certificate left the cache.
    Certificates,
    /// A delegate public key left the cache.
    DelegateKeys,
    /// A token bucket was dropped.
    Buckets,
    /// A principal's live-delegate set was dropped.
    Principals,
    /// A principal's oldest revocation of a delegate this verifier never saw
    /// made room for a newer one of the same principal.
    Revocations,
}

impl Bound {
    /// The `bound` label of `vouch_ingest_evictions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Chains => "chains",
            Bound::ChainPositions => "chain_positions",
            Bound::Certificates => "certificates",
            Bound::DelegateKeys => "delegate_keys",
            Bound::Buckets => "buckets",
            Bound::Principals => "principals",
            Bound::Revocations => "revocations",
        }
    }
}

/// Counts per (outcome, reason) and evictions per bound.
#[derive(Debug, Clone, Default)]
pub struct IngestStats {
    outcomes: BTreeMap<(Outcome, &'static str), u64>,
    evictions: BTreeMap<Bound, u64>,
    gaps: u64,
}

impl IngestStats {
    /// Counts one message with `outcome` and `reason`.
    pub fn record(&mut self, outcome: Outcome, reason: &'static str) {
        *self.outcomes.entry((outcome, reason)).or_default() += 1;
    }

    /// Counts an accepted envelope whose `prev` is not the newest position
    /// accepted on its chain (messages lost or reordered before it).
    pub fn gap(&mut self) {
        self.gaps += 1;
    }

    /// Chain gaps seen so far (`vouch_ingest_chain_gaps_total`).
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Counts `n` evictions from `bound`.
    pub fn evicted(&mut self, bound: Bound, n: u64) {
        if n > 0 {
            *self.evictions.entry(bound).or_default() += n;
        }
    }

    /// The count for `(outcome, reason)`, 0 if never seen.
    pub fn count(&self, outcome: Outcome, reason: &str) -> u64 {
        self.outcomes
            .iter()
            .filter(|((o, r), _)| *o == outcome && *r == reason)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Evictions from `bound` so far.
    pub fn evictions(&self, bound: Bound) -> u64 {
        self.evictions.get(&bound).copied().unwrap_or(0)
    }

    /// Every (outcome, reason, count), sorted: `vouch_ingest_total{outcome,reason}`.
    pub fn snapshot(&self) -> Vec<(Outcome, &'static str, u64)> {
        self.outcomes.iter().map(|((o, r), n)| (*o, *r, *n)).collect()
    }

    /// Every (bound, evictions), sorted: `vouch_ingest_evictions_total{bound}`.
    pub fn eviction_snapshot(&self) -> Vec<(&'static str, u64)> {
        self.evictions.iter().map(|(b, n)| (b.as_str(), *n)).collect()
    }
}
