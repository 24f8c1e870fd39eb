//! Revocations in force, bounded per principal (DESIGN.md §4).
//!
//! Only principals of the authority view can add entries (the pipeline
//! checks before it applies), so the table can only grow by what real
//! principals sign. Within a principal, a revocation of a delegate this
//! verifier has seen (a verified certificate of that delegate for that
//! principal, still within its `notAfter` plus the clock skew) is
//! *protected*: it is never dropped for capacity. Revocations of delegates
//! it never saw (or whose certificates have all expired) are kept up to a
//! per-principal bound; past it the principal's own oldest such revocation
//! goes, never anyone else's and never a protected one. So the table holds at
//! most `principals × (bound + live delegates)` entries.

use std::collections::{BTreeMap, HashMap};

use vouch_schema::Address;

/// One revocation in force.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// From when the delegate's envelopes are refused, ms.
    revoked_at_ms: u64,
    /// The latest `notAfter` (s) of a verified certificate of this delegate
    /// seen for this principal, if any: the revocation is protected until
    /// then plus the clock skew.
    known_until_secs: Option<u64>,
}

/// What applying a revocation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// A new (principal, delegate) pair.
    New,
    /// An earlier `revokedAt` for a pair already in force.
    Earlier,
    /// Nothing: the pair is in force from the same or an earlier time.
    Unchanged,
}

/// The revocation table.
#[derive(Debug)]
pub(crate) struct Revocations {
    entries: HashMap<(Address, Address), Entry>,
    /// Each principal's revoked delegates by insertion order (lower is older).
    by_principal: HashMap<Address, BTreeMap<u64, Address>>,
    next_seq: u64,
    /// Unprotected revocations kept per principal (at least 1).
    unknown_cap: usize,
    /// Grace after a certificate's `notAfter`, s.
    grace_secs: u64,
}

impl Revocations {
    pub(crate) fn new(unknown_cap: usize, grace_secs: u64) -> Self {
        Revocations {
            entries: HashMap::new(),
            by_principal: HashMap::new(),
            next_seq: 0,
            unknown_cap: unknown_cap.max(1),
            grace_secs,
        }
    }

    /// When `(principal, delegate)` was revoked, ms, if it is.
    pub(crate) fn revoked_at_ms(&self, principal: Address, delegate: Address) -> Option<u64> {
        self.entries.get(&(principal, delegate)).map(|e| e.revoked_at_ms)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The most revocations one principal has in force.
    pub(crate) fn max_per_principal(&self) -> usize {
        self.by_principal.values().map(BTreeMap::len).max().unwrap_or(0)
    }

    /// Applies a revocation. `known_until_secs` is the `notAfter` of the
    /// delegate's certificate when the verifier knows one. With `trim`, the
    /// principal is brought back within its bound at once; returns what
    /// changed and how many of the principal's revocations were evicted.
    pub(crate) fn apply(
        &mut self,
        key: (Address, Address),
        revoked_at_ms: u64,
        known_until_secs: Option<u64>,
        now_secs: u64,
        trim: bool,
    ) -> (Applied, u64) {
        let applied = match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.known_until_secs = entry.known_until_secs.max(known_until_secs);
                if revoked_at_ms < entry.revoked_at_ms {
                    entry.revoked_at_ms = revoked_at_ms;
                    Applied::Earlier
                } else {
                    Applied::Unchanged
                }
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.entries.insert(key, Entry { revoked_at_ms, known_until_secs });
                self.by_principal.entry(key.0).or_default().insert(seq, key.1);
                Applied::New
            }
        };
        let evicted = if trim { self.trim(key.0, now_secs, Order::Arrival) } else { 0 };
        (applied, evicted)
    }

    /// Records that a verified certificate of `(principal, delegate)` valid
    /// until `not_after_secs` was seen: a revocation of it becomes protected.
    pub(crate) fn mark_known(&mut self, key: (Address, Address), not_after_secs: u64) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.known_until_secs = entry.known_until_secs.max(Some(not_after_secs));
        }
    }

    /// Brings every principal within its bound, dropping the revocations
    /// with the oldest `revokedAt` first: after a restart, when entries were
    /// restored in key order rather than in the order they arrived.
    pub(crate) fn trim_all(&mut self, now_secs: u64) -> u64 {
        let principals: Vec<Address> = self.by_principal.keys().copied().collect();
        principals.into_iter().map(|p| self.trim(p, now_secs, Order::RevokedAt)).sum()
    }

    fn protected(&self, entry: &Entry, now_secs: u64) -> bool {
        entry.known_until_secs.is_some_and(|k| k.saturating_add(self.grace_secs) >= now_secs)
    }

    /// Evicts `principal`'s oldest unprotected revocations beyond the bound.
    fn trim(&mut self, principal: Address, now_secs: u64, order: Order) -> u64 {
        let Some(delegates) = self.by_principal.get(&principal) else { return 0 };
        let mut unprotected: Vec<(u64, u64, Address)> = delegates
            .iter()
            .filter_map(|(&seq, &delegate)| {
                let entry = self.entries.get(&(principal, delegate))?;
                let age = match order {
                    Order::Arrival => seq,
                    Order::RevokedAt => entry.revoked_at_ms,
                };
                (!self.protected(entry, now_secs)).then_some((age, seq, delegate))
            })
            .collect();
        let excess = unprotected.len().saturating_sub(self.unknown_cap);
        if excess == 0 {
            return 0;
        }
        unprotected.sort_unstable();
        for &(_, seq, delegate) in &unprotected[..excess] {
            self.entries.remove(&(principal, delegate));
            if let Some(delegates) = self.by_principal.get_mut(&principal) {
                delegates.remove(&seq);
            }
        }
        excess as u64
    }
}

/// Which revocations count as oldest when trimming.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// By arrival at this verifier.
    Arrival,
    /// By `revokedAt`.
    RevokedAt,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Address {
        Address([n; 20])
    }

    #[test]
    fn a_principal_evicts_only_its_own_oldest_unknown_revocations() {
        let mut r = Revocations::new(2, 300);
        let (p, q) = (a(1), a(2));
        // q's revocation of a known delegate, and one unknown of p's.
        assert_eq!(r.apply((q, a(9)), 5, None, 1000, true), (Applied::New, 0));
        assert_eq!(r.apply((p, a(10)), 5, Some(2000), 1000, true), (Applied::New, 0));
        for d in 11..16 {
            r.apply((p, a(d)), 5, None, 1000, true);
        }
        // p holds its known one plus its 2 newest unknown ones; q is untouched.
        assert_eq!(r.len(), 4);
        assert!(r.revoked_at_ms(p, a(10)).is_some(), "protected");
        assert!(r.revoked_at_ms(p, a(14)).is_some() && r.revoked_at_ms(p, a(15)).is_some());
        assert!(r.revoked_at_ms(p, a(11)).is_none(), "the oldest unknown went");
        assert!(r.revoked_at_ms(q, a(9)).is_some(), "another principal's stays");
        // An earlier revokedAt wins; the same or a later one changes nothing.
        assert_eq!(r.apply((p, a(15)), 4, None, 1000, true).0, Applied::Earlier);
        assert_eq!(r.apply((p, a(15)), 9, None, 1000, true).0, Applied::Unchanged);
        assert_eq!(r.revoked_at_ms(p, a(15)), Some(4));
    }

    #[test]
    fn protection_ends_after_the_certificate_expired_and_trim_all_uses_revoked_at() {
        let mut r = Revocations::new(1, 300);
        let p = a(1);
        r.apply((p, a(10)), 50, None, 1000, false);
        r.apply((p, a(11)), 10, None, 1000, false);
        r.apply((p, a(12)), 30, None, 1000, false);
        r.mark_known((p, a(12)), 1000);
        // a(12) is protected until 1300; of the others the older revokedAt goes.
        assert_eq!(r.trim_all(1200), 1);
        assert!(r.revoked_at_ms(p, a(11)).is_none());
        assert_eq!(r.max_per_principal(), 2);
        // Past its notAfter plus the grace it is an ordinary unknown one.
        assert_eq!(r.trim_all(1301), 1);
        assert!(r.revoked_at_ms(p, a(12)).is_none(), "older revokedAt than a(10)");
        assert!(r.revoked_at_ms(p, a(10)).is_some());
    }
}
