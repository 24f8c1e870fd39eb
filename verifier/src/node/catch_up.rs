//! After a start, a verifier seals nothing until it has caught up with its
//! peers: the minutes it missed while down are fetched by sync first, or
//! its checkpoints of them would differ from everyone else's for good.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use vouch_net::sync::RoundEnd;

/// How long a node with no sync peer waits for one before sealing alone.
pub(crate) const ALONE: Duration = Duration::from_secs(10);

/// The longest hold: past it the node seals with what it has (peers that
/// never finish a round must not stop its scores).
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(120);

/// Why the hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaughtUp {
    /// Every connected sync peer had a complete round with this node.
    WithPeers(usize),
    /// No sync peer showed up within [`ALONE`].
    Alone,
    /// [`MAX_HOLD`] passed.
    TimedOut,
}

/// The hold's progress: the peers a round completed with since the start.
#[derive(Debug)]
pub(crate) struct CatchUp {
    started: Instant,
    complete: HashSet<PeerId>,
    done: bool,
}

impl CatchUp {
    /// A hold starting now.
    pub(crate) fn new(started: Instant) -> CatchUp {
        CatchUp { started, complete: HashSet::new(), done: false }
    }

    /// Records how a round with `peer` ended.
    pub(crate) fn round_ended(&mut self, peer: PeerId, end: RoundEnd) {
        if end == RoundEnd::Complete && !self.done {
            self.complete.insert(peer);
        }
    }

    /// Fetched envelopes were shed before they were validated: rounds that
    /// completed so far no longer prove this node holds what its peers
    /// hold, so each peer must complete another.
    pub(crate) fn batch_shed(&mut self) {
        self.complete.clear();
    }

    /// Whether the hold ends at `now` with `sync_peers` connected; says why
    /// once, then `None` for good.
    pub(crate) fn check(&mut self, sync_peers: usize, now: Instant) -> Option<CaughtUp> {
        if self.done {
            return None;
        }
        let waited = now.saturating_duration_since(self.started);
        let why = if !self.complete.is_empty() && self.complete.len() >= sync_peers {
            CaughtUp::WithPeers(self.complete.len())
        } else if sync_peers == 0 && waited >= ALONE {
            CaughtUp::Alone
        } else if waited >= MAX_HOLD {
            CaughtUp::TimedOut
        } else {
            return None;
        };
        self.done = true;
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_ends_when_every_peer_completed_a_round() {
        let t0 = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut c = CatchUp::new(t0);
        assert_eq!(c.check(2, t0), None);
        c.round_ended(a, RoundEnd::Budget);
        c.round_ended(a, RoundEnd::Complete);
        c.round_ended(b, RoundEnd::Failed);
        assert_eq!(c.check(2, t0 + ALONE), None, "b has not completed a round");
        c.round_ended(b, RoundEnd::Complete);
        assert_eq!(c.check(2, t0 + ALONE), Some(CaughtUp::WithPeers(2)));
        assert_eq!(c.check(2, t0 + MAX_HOLD), None, "said once");
    }

    #[test]
    fn a_shed_batch_asks_every_peer_for_another_round() {
        let t0 = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut c = CatchUp::new(t0);
        c.round_ended(a, RoundEnd::Complete);
        c.batch_shed();
        c.round_ended(b, RoundEnd::Complete);
        assert_eq!(c.check(2, t0 + ALONE), None, "a's round came before the shed batch");
        c.round_ended(a, RoundEnd::Complete);
        assert_eq!(c.check(2, t0 + ALONE), Some(CaughtUp::WithPeers(2)));
    }

    #[test]
    fn a_lone_or_stuck_node_stops_holding() {
        let t0 = Instant::now();
        let mut alone = CatchUp::new(t0);
        assert_eq!(alone.check(0, t0 + Duration::from_secs(1)), None);
        assert_eq!(alone.check(0, t0 + ALONE), Some(CaughtUp::Alone));
        let mut stuck = CatchUp::new(t0);
        assert_eq!(stuck.check(3, t0 + ALONE), None);
        assert_eq!(stuck.check(3, t0 + MAX_HOLD), Some(CaughtUp::TimedOut));
    }
}
