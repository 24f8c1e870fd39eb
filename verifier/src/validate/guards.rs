//! Bounded building blocks: an LRU map, token buckets and chain positions.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use vouch_schema::MessageRef;

/// A map that never holds more than its capacity: inserting into a full map
/// evicts the least recently used entry. Deterministic (no clocks, no hashing
/// order leaks into which entry goes).
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
    tick: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Looks `key` up and marks it most recently used.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        let (v, t) = self.entries.get_mut(key)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, key.clone());
        Some(v)
    }

    /// Inserts or replaces; returns how many entries were evicted (0 or 1).
    pub(crate) fn insert(&mut self, key: K, value: V) -> u64 {
        u64::from(self.insert_evicting(key, value).is_some())
    }

    /// Inserts or replaces; returns the least recently used entry if the map
    /// was full and it had to go.
    pub(crate) fn insert_evicting(&mut self, key: K, value: V) -> Option<(K, V)> {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, t)) = self.entries.remove(&key) {
            self.order.remove(&t);
        }
        let mut evicted = None;
        if self.entries.len() >= self.capacity
            && let Some((_, old)) = self.order.pop_first()
        {
            evicted = self.entries.remove(&old).map(|(v, _)| (old, v));
        }
        self.order.insert(tick, key.clone());
        self.entries.insert(key, (value, tick));
        evicted
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (v, t) = self.entries.remove(key)?;
        self.order.remove(&t);
        Some(v)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(v, _)| v)
    }
}

/// A token bucket in milli-tokens, refilled from the injected clock.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    milli_tokens: u64,
    updated_ms: u64,
}

impl TokenBucket {
    pub(crate) fn full(burst: u32, now_ms: u64) -> Self {
        TokenBucket { milli_tokens: u64::from(burst) * 1000, updated_ms: now_ms }
    }

    fn refill(&mut self, rate_per_sec: u32, burst: u32, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        // rate/s × elapsed ms = milli-tokens.
        let add = elapsed.saturating_mul(u64::from(rate_per_sec));
        self.milli_tokens = self.milli_tokens.saturating_add(add).min(u64::from(burst) * 1000);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Whether one token is available now (does not take it).
    pub(crate) fn has_token(&mut self, rate_per_sec: u32, burst: u32, now_ms: u64) -> bool {
        self.refill(rate_per_sec, burst, now_ms);
        self.milli_tokens >= 1000
    }

    /// Takes one token (saturating at empty).
    pub(crate) fn take(&mut self, rate_per_sec: u32, burst: u32, now_ms: u64) {
        self.refill(rate_per_sec, burst, now_ms);
        self.milli_tokens = self.milli_tokens.saturating_sub(1000);
    }
}

/// What a chain has accepted: its newest position, a bounded window of
/// recent positions (with a short content hash each) and a floor below which
/// nothing is accepted any more.
#[derive(Debug, Default)]
pub(crate) struct ChainState {
    pub(crate) newest: Option<MessageRef>,
    recent: BTreeMap<MessageRef, u64>,
    floor: Option<MessageRef>,
}

/// Where a position stands against a chain.
pub(crate) enum Position {
    /// Not seen, acceptable.
    New,
    /// Seen with the same content hash.
    Duplicate,
    /// Seen with another content hash.
    Conflict,
    /// At or below the floor or behind the reorder window.
    TooOld,
}

impl ChainState {
    pub(crate) fn check(&self, at: MessageRef, content: u64, reorder_ms: u64) -> Position {
        if let Some(seen) = self.recent.get(&at) {
            return if *seen == content { Position::Duplicate } else { Position::Conflict };
        }
        if self.floor.is_some_and(|f| at <= f) {
            return Position::TooOld;
        }
        if let Some(newest) = self.newest
            && at < newest
            && newest.timestamp.saturating_sub(at.timestamp) > reorder_ms
        {
            return Position::TooOld;
        }
        Position::New
    }

    /// Records an accepted position; returns positions evicted by the bound.
    pub(crate) fn record(
        &mut self,
        at: MessageRef,
        content: u64,
        reorder_ms: u64,
        cap: usize,
    ) -> u64 {
        self.recent.insert(at, content);
        if self.newest.is_none_or(|n| at > n) {
            self.newest = Some(at);
        }
        // Positions behind the reorder window are refused by `check` anyway.
        if let Some(newest) = self.newest {
            let cutoff =
                MessageRef { timestamp: newest.timestamp.saturating_sub(reorder_ms), seq: 0 };
            while let Some((&first, _)) = self.recent.first_key_value() {
                if first >= cutoff {
                    break;
                }
                self.recent.remove(&first);
                self.raise_floor(first);
            }
        }
        let mut evicted = 0;
        while self.recent.len() > cap.max(1) {
            let Some((first, _)) = self.recent.pop_first() else { break };
            self.raise_floor(first);
            evicted += 1;
        }
        evicted
    }

    fn raise_floor(&mut self, at: MessageRef) {
        if self.floor.is_none_or(|f| at > f) {
            self.floor = Some(at);
        }
    }

    pub(crate) fn positions(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounded_map_evicts_least_recently_used() {
        let mut m = BoundedMap::new(2);
        assert_eq!(m.insert(1, "a"), 0);
        assert_eq!(m.insert(2, "b"), 0);
        m.get_mut(&1).unwrap();
        assert_eq!(m.insert_evicting(3, "c"), Some((2, "b")));
        assert_eq!(m.len(), 2);
        assert_eq!(m.peek(&1), Some(&"a"));
        assert_eq!(m.remove(&1), Some("a"));
        assert_eq!(m.insert(4, "d"), 0);
        // Replacing an existing key never evicts.
        assert_eq!(m.insert(4, "e"), 0);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn token_bucket_refills_at_its_rate_up_to_its_burst() {
        let mut b = TokenBucket::full(2, 0);
        assert!(b.has_token(1, 2, 0));
        b.take(1, 2, 0);
        b.take(1, 2, 0);
        assert!(!b.has_token(1, 2, 999));
        assert!(b.has_token(1, 2, 1000));
        // Long idle: capped at the burst.
        assert!(b.has_token(1, 2, 1_000_000));
        b.take(1, 2, 1_000_000);
        b.take(1, 2, 1_000_000);
        assert!(!b.has_token(1, 2, 1_000_000));
    }

    #[test]
    fn chain_positions_stay_bounded_and_raise_the_floor() {
        let at = |timestamp, seq| MessageRef { timestamp, seq };
        let mut c = ChainState::default();
        for seq in 0..10 {
            c.record(at(100, seq), u64::from(seq), 50, 4);
        }
        assert_eq!(c.positions(), 4);
        assert!(matches!(c.check(at(100, 9), 9, 50), Position::Duplicate));
        assert!(matches!(c.check(at(100, 9), 1, 50), Position::Conflict));
        assert!(matches!(c.check(at(100, 2), 2, 50), Position::TooOld));
        assert!(matches!(c.check(at(100, 10), 0, 50), Position::New));
        assert!(matches!(c.check(at(49, 0), 0, 50), Position::TooOld));
    }
}
