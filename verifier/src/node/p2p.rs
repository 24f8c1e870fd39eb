//! Gossip connection counters: how many are open and how many the swarm's
//! `[p2p.limits]` refused (so an operator sees when the caps are hit).

use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::connection_limits::Exceeded;
use libp2p::swarm::ListenError;

/// Gossip connection counters, rendered into `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct P2pMetrics {
    established: AtomicU64,
    refused: AtomicU64,
}

impl P2pMetrics {
    pub(crate) fn connected(&self) {
        self.established.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        let _ = self
            .established
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Counts `error` if it is a refusal by the connection caps.
    pub(crate) fn incoming_failed(&self, error: &ListenError) {
        if let ListenError::Denied { cause } = error
            && cause.downcast_ref::<Exceeded>().is_some()
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn render_metrics(&self, out: &mut String) {
        let rows = [
            (
                "vouch_p2p_connections",
                "gauge",
                "Gossip connections established.",
                self.established.load(Ordering::Relaxed),
            ),
            (
                "vouch_p2p_connections_refused_total",
                "counter",
                "Incoming gossip connections refused by [p2p.limits].",
                self.refused.load(Ordering::Relaxed),
            ),
        ];
        crate::http_server::write_rows(out, &rows);
    }
}
