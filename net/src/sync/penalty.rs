//! Penalties of peers that served invalid envelopes or broke the sync
//! protocol's bounds, mirrored into gossipsub's application-specific score
//! (P5) so that such a peer loses its gossip standing as it would for
//! invalid gossip (P4), and, past a threshold, a ban from sync for a while.
//!
//! Penalties decay like P4's invalid-delivery counter (to a tenth in ten
//! minutes), and the score is `-count²` (gossipsub weighs it by
//! [`crate::params::APP_SPECIFIC_WEIGHT`]), so one penalty costs what one
//! invalid gossip message costs, three stop the peer's publishes reaching
//! us and four graylist it, the same ladder as
//! [`crate::peer_score_thresholds`].
//!
//! A banned peer is not disconnected: peer ids cost nothing, so a
//! disconnect would only make an abuser redial, while a ban (its requests
//! refused at once, no rounds with it) and gossipsub's graylist already take
//! away what it could cost us; an honest peer whose view of the authority
//! lagged ours recovers as its penalties decay.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How penalties decay and when they ban.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PenaltyLimits {
    /// Penalties at which a peer is banned.
    pub(crate) ban_at: f64,
    /// How long a ban lasts (from the last penalty).
    pub(crate) ban_for: Duration,
    /// Time for penalties to decay to a tenth.
    pub(crate) decay_to_tenth: Duration,
    /// Peers tracked at most.
    pub(crate) max_peers: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: f64,
    at: Instant,
    banned_until: Option<Instant>,
}

/// What a penalty did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Penalized {
    /// The peer's application score now.
    pub(crate) score: f64,
    /// This penalty banned the peer (it was not banned before).
    pub(crate) newly_banned: bool,
    /// A tracked peer was forgotten to make room.
    pub(crate) evicted: bool,
}

/// Every peer's penalties.
#[derive(Debug)]
pub(crate) struct Penalties {
    limits: PenaltyLimits,
    peers: HashMap<PeerId, Entry>,
}

/// Penalties below this are forgotten.
const FORGET_BELOW: f64 = 0.01;

impl Penalties {
    pub(crate) fn new(limits: PenaltyLimits) -> Penalties {
        Penalties { limits, peers: HashMap::new() }
    }

    fn decayed(&self, e: &Entry, now: Instant) -> f64 {
        let tenth = self.limits.decay_to_tenth.as_secs_f64().max(f64::MIN_POSITIVE);
        let elapsed = now.saturating_duration_since(e.at).as_secs_f64();
        e.count * 0.1f64.powf(elapsed / tenth)
    }

    /// The score a count of penalties maps to.
    fn score(count: f64) -> f64 {
        -(count * count)
    }

    /// Adds `weight` penalties to `peer` at `now`.
    pub(crate) fn add(&mut self, peer: PeerId, weight: f64, now: Instant) -> Penalized {
        let mut evicted = false;
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.limits.max_peers.max(1) {
            evicted = true;
            // Forget the peer that matters least: not banned, fewest penalties;
            // among banned ones, the ban that ends first.
            let victim = self
                .peers
                .iter()
                .map(|(p, e)| (*p, e.banned_until.filter(|&u| u > now), self.decayed(e, now)))
                .min_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)))
                .map(|(p, ..)| p);
            if let Some(victim) = victim {
                self.peers.remove(&victim);
            }
        }
        let current = self.peers.get(&peer).map(|e| (self.decayed(e, now), e.banned_until));
        let (count, banned_until) = current.unwrap_or((0.0, None));
        let count = count + weight;
        let was_banned = banned_until.is_some_and(|u| u > now);
        let banned_until = if count >= self.limits.ban_at || was_banned {
            Some(now + self.limits.ban_for)
        } else {
            banned_until
        };
        self.peers.insert(peer, Entry { count, at: now, banned_until });
        Penalized {
            score: Self::score(count),
            newly_banned: !was_banned && banned_until.is_some_and(|u| u > now),
            evicted,
        }
    }

    /// Whether `peer` is banned at `now`.
    pub(crate) fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers.get(peer).and_then(|e| e.banned_until).is_some_and(|u| u > now)
    }

    /// Decays every peer's penalties to `now` and returns each tracked
    /// peer's score (to hand gossipsub); peers whose penalties have decayed
    /// away and whose ban is over are forgotten, with a last score of 0.
    pub(crate) fn decay(&mut self, now: Instant) -> Vec<(PeerId, f64)> {
        let mut scores = Vec::with_capacity(self.peers.len());
        let decayed: Vec<(PeerId, f64)> =
            self.peers.iter().map(|(p, e)| (*p, self.decayed(e, now))).collect();
        for (peer, count) in decayed {
            let Some(e) = self.peers.get_mut(&peer) else { continue };
            e.count = count;
            e.at = now;
            let banned = e.banned_until.is_some_and(|u| u > now);
            if count < FORGET_BELOW && !banned {
                self.peers.remove(&peer);
                scores.push((peer, 0.0));
            } else {
                scores.push((peer, Self::score(count)));
            }
        }
        scores
    }

    /// Peers banned at `now`.
    pub(crate) fn banned(&self, now: Instant) -> usize {
        self.peers.values().filter(|e| e.banned_until.is_some_and(|u| u > now)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PenaltyLimits {
        PenaltyLimits {
            ban_at: 4.0,
            ban_for: Duration::from_secs(600),
            decay_to_tenth: Duration::from_secs(600),
            max_peers: 2,
        }
    }

    #[test]
    fn penalties_score_ban_and_decay() {
        let mut p = Penalties::new(limits());
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert_eq!(p.add(peer, 1.0, t0).score, -1.0);
        assert_eq!(p.add(peer, 2.0, t0).score, -9.0);
        assert!(!p.is_banned(&peer, t0));
        let fourth = p.add(peer, 1.0, t0);
        assert!(fourth.newly_banned && fourth.score == -16.0);
        assert!(!p.add(peer, 1.0, t0).newly_banned, "already banned");
        assert!(p.is_banned(&peer, t0 + Duration::from_secs(599)));
        assert_eq!(p.banned(t0), 1);
        // Ten minutes: a tenth of the 5 penalties is left, and the ban is over.
        let later = t0 + Duration::from_secs(600);
        let scores = p.decay(later);
        assert_eq!(scores.len(), 1);
        assert!((scores[0].1 + 0.25).abs() < 1e-9, "{scores:?}");
        assert!(!p.is_banned(&peer, later));
        // An hour: forgotten, score back to 0.
        assert_eq!(p.decay(t0 + Duration::from_secs(3600)), [(peer, 0.0)]);
        assert!(p.decay(t0 + Duration::from_secs(3601)).is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_keeps_bans() {
        let mut p = Penalties::new(limits());
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        p.add(a, 4.0, t0);
        p.add(b, 1.0, t0);
        let r = p.add(c, 1.0, t0);
        assert!(r.evicted);
        assert!(p.is_banned(&a, t0), "the banned peer was kept; b was forgotten");
        assert_eq!(p.decay(t0).len(), 2);
    }
}
