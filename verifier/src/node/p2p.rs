//! Gossip connection counters in `/metrics`: how many are open and how many
//! the swarm's `[p2p.limits]` refused (so an operator sees when the caps are
//! hit). [`vouch_net::GossipNode`] keeps the counts.

use vouch_net::ConnectionCounters;

/// Renders `counters` as Prometheus rows.
pub(crate) fn render_metrics(counters: &ConnectionCounters, out: &mut String) {
    let rows = [
        (
            "vouch_p2p_connections",
            "gauge",
            "Gossip connections established.",
            counters.established(),
        ),
        (
            "vouch_p2p_connections_refused_total",
            "counter",
            "Incoming gossip connections refused by [p2p.limits].",
            counters.refused(),
        ),
    ];
    crate::http_server::write_rows(out, &rows);
}
