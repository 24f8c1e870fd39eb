//! Own and peers' checkpoints, and what they say about agreement.
//!
//! The book keeps, per minute, this verifier's own checkpoint and every
//! peer verifier's verified one (bounded: minutes kept, verifiers per
//! minute). Two verifiers agree on a minute when their checkpoints agree
//! ([`vouch_delegation::Checkpoint::agrees_with`]: same envelopes, root,
//! buckets, policy and partitions).

use std::collections::BTreeMap;

use serde::Serialize;
use vouch_delegation::{Checkpoint, SignedCheckpoint};
use vouch_schema::Address;
pub use vouch_sla::Agreement;

/// Bounds of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookLimits {
    /// Minutes kept (the oldest go first).
    pub minutes: usize,
    /// Peer verifiers kept per minute (further ones are counted, not kept).
    pub verifiers_per_minute: usize,
}

impl Default for BookLimits {
    fn default() -> Self {
        BookLimits { minutes: 24 * 60, verifiers_per_minute: 64 }
    }
}

/// A peer whose checkpoint of a minute says something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    /// The peer verifier (principal).
    pub verifier: Address,
    /// The minute.
    pub minute: u64,
    /// Its envelopes count against ours.
    pub envelopes: (u64, u64),
    /// Whether the sealed buckets differ too.
    pub buckets_differ: bool,
}

#[derive(Debug, Default, Clone)]
struct Minute {
    own: Option<SignedCheckpoint>,
    peers: BTreeMap<Address, SignedCheckpoint>,
}

/// Own and peers' checkpoints by minute.
#[derive(Debug, Default, Clone)]
pub struct CheckpointBook {
    minutes: BTreeMap<u64, Minute>,
    limits: BookLimits,
    refused: u64,
}

/// What adding a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// New in the book; `Some` when it disagrees with ours.
    New(Option<Disagreement>),
    /// The same verifier's checkpoint of that minute was already there.
    Known,
    /// The minute already holds the most verifiers kept, or is older than the book.
    Full,
}

impl CheckpointBook {
    /// An empty book.
    pub fn new(limits: BookLimits) -> CheckpointBook {
        CheckpointBook { limits, ..CheckpointBook::default() }
    }

    /// Peer checkpoints not kept for lack of room (`vouch_checkpoints_refused_total`).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Checkpoints held (own and peers').
    pub fn len(&self) -> usize {
        self.minutes.values().map(|m| usize::from(m.own.is_some()) + m.peers.len()).sum()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn trim(&mut self) {
        while self.minutes.len() > self.limits.minutes.max(1) {
            self.minutes.pop_first();
        }
    }

    /// Records this verifier's checkpoint of its minute; returns the peers
    /// already on record that disagree with it.
    pub fn add_own(&mut self, signed: SignedCheckpoint) -> Vec<Disagreement> {
        let minute = signed.checkpoint.minute;
        let m = self.minutes.entry(minute).or_default();
        let found = m
            .peers
            .iter()
            .filter_map(|(v, p)| disagreement(*v, &signed.checkpoint, &p.checkpoint))
            .collect();
        m.own = Some(signed);
        self.trim();
        found
    }

    /// Records a peer verifier's verified checkpoint.
    pub fn add_peer(&mut self, verifier: Address, signed: SignedCheckpoint) -> Added {
        let minute = signed.checkpoint.minute;
        if self.minutes.len() >= self.limits.minutes
            && self.minutes.keys().next().is_some_and(|&first| minute < first)
        {
            self.refused += 1;
            return Added::Full;
        }
        let m = self.minutes.entry(minute).or_default();
        if m.peers.contains_key(&verifier) {
            return Added::Known;
        }
        if m.peers.len() >= self.limits.verifiers_per_minute {
            self.refused += 1;
            return Added::Full;
        }
        let found = m
            .own
            .as_ref()
            .and_then(|own| disagreement(verifier, &own.checkpoint, &signed.checkpoint));
        m.peers.insert(verifier, signed);
        self.trim();
        Added::New(found)
    }

    /// Every checkpoint held, as `(own, wire bytes)`, oldest minute first:
    /// what a snapshot keeps.
    pub fn to_records(&self) -> Vec<(bool, Vec<u8>)> {
        self.minutes
            .values()
            .flat_map(|m| {
                m.own
                    .iter()
                    .map(|s| (true, s.encode()))
                    .chain(m.peers.values().map(|s| (false, s.encode())))
            })
            .collect()
    }

    /// A book holding `records` (from [`CheckpointBook::to_records`]); a
    /// peer's verifier is its certificate's principal.
    pub fn from_records(
        limits: BookLimits,
        records: &[(bool, Vec<u8>)],
    ) -> Result<CheckpointBook, vouch_delegation::DecodeError> {
        let mut book = CheckpointBook::new(limits);
        for (own, bytes) in records {
            let signed = SignedCheckpoint::decode(bytes)?;
            if *own {
                book.add_own(signed);
            } else {
                let verifier =
                    vouch_delegation::SignedDelegation::decode(&signed.certificate)?.principal;
                book.add_peer(verifier, signed);
            }
        }
        Ok(book)
    }

    /// This verifier's checkpoint of `minute`.
    pub fn own(&self, minute: u64) -> Option<&SignedCheckpoint> {
        self.minutes.get(&minute).and_then(|m| m.own.as_ref())
    }

    /// Peers' checkpoints of `minute`, by verifier.
    pub fn peers(&self, minute: u64) -> impl Iterator<Item = (&Address, &SignedCheckpoint)> {
        self.minutes.get(&minute).into_iter().flat_map(|m| m.peers.iter())
    }

    /// Minutes of `[from, to)` this verifier checkpointed.
    pub fn own_minutes(&self, from: u64, to: u64) -> u64 {
        self.minutes.range(from..to).filter(|(_, m)| m.own.is_some()).count() as u64
    }

    /// Agreement over minutes `[from, to)`.
    pub fn agreement(&self, from: u64, to: u64) -> Agreement {
        // verifier → agrees on every minute seen so far
        let mut peers: BTreeMap<Address, bool> = BTreeMap::new();
        for (_, m) in self.minutes.range(from..to) {
            let own = m.own.as_ref().map(|s| &s.checkpoint);
            for (v, p) in &m.peers {
                let ok = own.is_some_and(|o| o.agrees_with(&p.checkpoint));
                let entry = peers.entry(*v).or_insert(true);
                *entry &= ok;
            }
        }
        // A peer silent on a minute we checkpointed does not agree on it.
        for (v, ok) in peers.iter_mut() {
            if *ok {
                *ok = self
                    .minutes
                    .range(from..to)
                    .all(|(_, m)| m.own.is_none() || m.peers.contains_key(v));
            }
        }
        Agreement {
            verifiers: 1 + peers.len() as u64,
            agree: 1 + peers.values().filter(|ok| **ok).count() as u64,
        }
    }

    /// Every disagreement over minutes `[from, to)`, by minute then verifier.
    pub fn disagreements(&self, from: u64, to: u64) -> Vec<Disagreement> {
        self.minutes
            .range(from..to)
            .flat_map(|(_, m)| {
                m.own.iter().flat_map(|own| {
                    m.peers
                        .iter()
                        .filter_map(|(v, p)| disagreement(*v, &own.checkpoint, &p.checkpoint))
                })
            })
            .collect()
    }
}

fn disagreement(verifier: Address, own: &Checkpoint, peer: &Checkpoint) -> Option<Disagreement> {
    (!own.agrees_with(peer)).then(|| Disagreement {
        verifier,
        minute: own.minute,
        envelopes: (peer.envelopes, own.envelopes),
        buckets_differ: own.buckets != peer.buckets,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use vouch_delegation::Eip712Network;

    fn cp(minute: u64, envelopes: u64) -> SignedCheckpoint {
        Checkpoint {
            network: Eip712Network::arbitrum_one(),
            minute,
            envelopes,
            root: [envelopes as u8; 32],
            buckets: [0; 32],
            policy: [1; 32],
            view: [2; 32],
            partitions: [0xff; 13],
            log_records: minute,
            log_head: [3; 32],
        }
        .sign(&SigningKey::from_slice(&[7; 32]).unwrap(), Vec::new())
    }

    #[test]
    fn agreement_counts_peers_that_match_every_minute() {
        let (a, b, c) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
        let mut book = CheckpointBook::new(BookLimits::default());
        for m in 10..13 {
            book.add_own(cp(m, 5));
            assert_eq!(book.add_peer(a, cp(m, 5)), Added::New(None));
        }
        book.add_peer(b, cp(10, 5));
        book.add_peer(b, cp(11, 5));
        assert!(matches!(book.add_peer(c, cp(12, 4)), Added::New(Some(_))));
        assert_eq!(book.add_peer(c, cp(12, 4)), Added::Known);
        let ag = book.agreement(10, 13);
        assert_eq!(ag, Agreement { verifiers: 4, agree: 2 }, "b missed 12, c differs");
        assert_eq!(book.agreement(10, 12), Agreement { verifiers: 3, agree: 3 });
        assert_eq!(book.own_minutes(10, 13), 3);
        let d = book.disagreements(10, 13);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].verifier, d[0].minute, d[0].envelopes), (c, 12, (4, 5)));
        // Our own checkpoint arriving after a peer's names the peer.
        assert_eq!(book.add_peer(c, cp(13, 9)), Added::New(None));
        assert_eq!(book.add_own(cp(13, 8)).len(), 1);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = CheckpointBook::new(BookLimits { minutes: 2, verifiers_per_minute: 1 });
        book.add_own(cp(1, 1));
        book.add_own(cp(2, 1));
        book.add_own(cp(3, 1));
        assert!(book.own(1).is_none() && book.own(3).is_some());
        assert_eq!(book.add_peer(Address([1; 20]), cp(3, 1)), Added::New(None));
        assert_eq!(book.add_peer(Address([2; 20]), cp(3, 1)), Added::Full);
        assert_eq!(book.add_peer(Address([2; 20]), cp(1, 1)), Added::Full, "older than the book");
        assert_eq!(book.refused(), 2);
    }
}
