//! Sync's counters and gauges, declared as the `vouch_sync_*` Prometheus
//! families ([`SyncStats`] is a
//! [`Collector`](prometheus_client::collector::Collector)).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::reconciler::RoundEnd;
use super::wire::{RefusedReason, RequestKind};
use crate::metrics;

/// Why an outbound request failed without an answer, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// No answer within the request timeout.
    Timeout,
    /// The connection closed first.
    Closed,
    /// The peer does not speak `/vouch/1/sync`.
    Unsupported,
    /// The answer broke the protocol (over its bound, not CBOR, not the
    /// answer asked for).
    Protocol,
    /// Any other stream failure.
    Io,
}

impl FailureKind {
    const ALL: [FailureKind; 5] = [
        FailureKind::Timeout,
        FailureKind::Closed,
        FailureKind::Unsupported,
        FailureKind::Protocol,
        FailureKind::Io,
    ];

    fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Closed => "closed",
            FailureKind::Unsupported => "unsupported",
            FailureKind::Protocol => "protocol",
            FailureKind::Io => "io",
        }
    }
}

/// The counters of one node's sync, live. Counters only grow; the three
/// gauges (`serving`, `syncing`, `banned`) are set by the sync layer.
#[derive(Debug, Default)]
pub struct SyncStats {
    served: [AtomicU64; 4],
    made: [AtomicU64; 4],
    refused: [AtomicU64; 5],
    malformed_requests: AtomicU64,
    refusals_received: [AtomicU64; 5],
    failures: [AtomicU64; 5],
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    ids_compared: AtomicU64,
    envelopes_fetched: AtomicU64,
    ids_recently_fetched: AtomicU64,
    rounds: [AtomicU64; RoundEnd::LABELS.len()],
    penalties: AtomicU64,
    bans: AtomicU64,
    claims_full: AtomicU64,
    peers_full: AtomicU64,
    serving: AtomicU64,
    syncing: AtomicU64,
    banned: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn kind_index(k: RequestKind) -> usize {
    RequestKind::ALL.iter().position(|&x| x == k).unwrap_or(0)
}

fn reason_index(r: RefusedReason) -> usize {
    RefusedReason::ALL.iter().position(|&x| x == r).unwrap_or(0)
}

impl SyncStats {
    pub(crate) fn served(&self, k: RequestKind) {
        add(&self.served[kind_index(k)], 1);
    }

    pub(crate) fn made(&self, k: RequestKind) {
        add(&self.made[kind_index(k)], 1);
    }

    pub(crate) fn refused(&self, r: RefusedReason) {
        add(&self.refused[reason_index(r)], 1);
    }

    pub(crate) fn malformed_request(&self) {
        add(&self.malformed_requests, 1);
    }

    pub(crate) fn refusal_received(&self, r: RefusedReason) {
        add(&self.refusals_received[reason_index(r)], 1);
    }

    pub(crate) fn failure(&self, f: FailureKind) {
        let i = FailureKind::ALL.iter().position(|&x| x == f).unwrap_or(0);
        add(&self.failures[i], 1);
    }

    pub(crate) fn received_bytes(&self, n: usize) {
        add(&self.bytes_received, n as u64);
    }

    pub(crate) fn sent_bytes(&self, n: usize) {
        add(&self.bytes_sent, n as u64);
    }

    pub(crate) fn compared(&self, ids: usize) {
        add(&self.ids_compared, ids as u64);
    }

    pub(crate) fn fetched(&self, envelopes: usize) {
        add(&self.envelopes_fetched, envelopes as u64);
    }

    pub(crate) fn recently_fetched(&self, ids: usize) {
        add(&self.ids_recently_fetched, ids as u64);
    }

    pub(crate) fn round_ended(&self, end: RoundEnd) {
        add(&self.rounds[end.label_index()], 1);
    }

    pub(crate) fn penalized(&self) {
        add(&self.penalties, 1);
    }

    pub(crate) fn banned_now(&self) {
        add(&self.bans, 1);
    }

    pub(crate) fn claims_were_full(&self) {
        add(&self.claims_full, 1);
    }

    pub(crate) fn peers_were_full(&self) {
        add(&self.peers_full, 1);
    }

    pub(crate) fn set_gauges(&self, serving: usize, syncing: usize, banned: usize) {
        self.serving.store(serving as u64, Ordering::Relaxed);
        self.syncing.store(syncing as u64, Ordering::Relaxed);
        self.banned.store(banned as u64, Ordering::Relaxed);
    }

    /// Requests of `kind` this node answered.
    pub fn requests_served(&self, kind: RequestKind) -> u64 {
        get(&self.served[kind_index(kind)])
    }

    /// Requests of `kind` this node sent.
    pub fn requests_made(&self, kind: RequestKind) -> u64 {
        get(&self.made[kind_index(kind)])
    }

    /// Requests this node refused for `reason`.
    pub fn requests_refused(&self, reason: RefusedReason) -> u64 {
        get(&self.refused[reason_index(reason)])
    }

    /// Inbound requests that were over the size bound or not a request.
    pub fn malformed_requests(&self) -> u64 {
        get(&self.malformed_requests)
    }

    /// Refusals this node's requests got, for `reason`.
    pub fn refusals_received(&self, reason: RefusedReason) -> u64 {
        get(&self.refusals_received[reason_index(reason)])
    }

    /// Payload bytes received (requests and responses).
    pub fn bytes_received(&self) -> usize {
        get(&self.bytes_received) as usize
    }

    /// Payload bytes sent (requests and responses).
    pub fn bytes_sent(&self) -> usize {
        get(&self.bytes_sent) as usize
    }

    /// Ids received in peers' id lists and compared with the local store.
    pub fn ids_compared(&self) -> u64 {
        get(&self.ids_compared)
    }

    /// Envelopes fetched from peers and handed to the node.
    pub fn envelopes_fetched(&self) -> u64 {
        get(&self.envelopes_fetched)
    }

    /// Rounds that ended with `end` (a refused round counts under its
    /// label, whatever the reason).
    pub fn rounds(&self, end: RoundEnd) -> u64 {
        get(&self.rounds[end.label_index()])
    }

    /// Penalties given to peers.
    pub fn penalties(&self) -> u64 {
        get(&self.penalties)
    }

    /// Peers banned now.
    pub fn banned(&self) -> u64 {
        get(&self.banned)
    }

    /// Rounds in progress now.
    pub fn syncing(&self) -> u64 {
        get(&self.syncing)
    }
}

impl Collector for SyncStats {
    /// The `vouch_sync_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let by_kind = |a: &[AtomicU64; 4]| {
            RequestKind::ALL.map(|k| ([("kind", k.as_str())], get(&a[kind_index(k)])))
        };
        let by_reason = |a: &[AtomicU64; 5]| {
            RefusedReason::ALL.map(|r| ([("reason", r.as_str())], get(&a[reason_index(r)])))
        };
        let enc = &mut enc;
        metrics::counter_family(
            enc,
            "vouch_sync_requests_served_total",
            "Sync requests this node answered, by kind.",
            by_kind(&self.served),
        )?;
        metrics::counter_family(
            enc,
            "vouch_sync_requests_made_total",
            "Sync requests this node sent, by kind.",
            by_kind(&self.made),
        )?;
        metrics::counter_family(
            enc,
            "vouch_sync_requests_refused_total",
            "Sync requests this node refused, by reason (malformed: over the size bound or \
             not a request, closed without an answer).",
            by_reason(&self.refused)
                .into_iter()
                .chain([([("reason", "malformed")], get(&self.malformed_requests))]),
        )?;
        metrics::counter_family(
            enc,
            "vouch_sync_refusals_received_total",
            "Refusals this node's sync requests got from peers, by reason.",
            by_reason(&self.refusals_received),
        )?;
        metrics::counter_family(
            enc,
            "vouch_sync_request_failures_total",
            "Sync requests this node sent that got no usable answer, by reason.",
            FailureKind::ALL
                .iter()
                .zip(&self.failures)
                .map(|(f, n)| ([("reason", f.as_str())], get(n))),
        )?;
        metrics::counter_family(
            enc,
            "vouch_sync_rounds_total",
            "Sync rounds with a peer that ended, by outcome (complete: everything compared; \
             budget: the round's fetch budget or the claim bound was reached; refused, failed, \
             misbehaved: cut short).",
            RoundEnd::LABELS.iter().zip(&self.rounds).map(|(o, n)| ([("outcome", *o)], get(n))),
        )?;
        let counters = [
            (
                "vouch_sync_bytes_received_total",
                "Sync payload bytes received, requests and responses (framing not counted).",
                &self.bytes_received,
            ),
            (
                "vouch_sync_bytes_sent_total",
                "Sync payload bytes sent, requests and responses (framing not counted).",
                &self.bytes_sent,
            ),
            (
                "vouch_sync_ids_compared_total",
                "Ids received in peers' id lists and compared with the local store.",
                &self.ids_compared,
            ),
            (
                "vouch_sync_envelopes_fetched_total",
                "Envelopes fetched from peers and handed to validation.",
                &self.envelopes_fetched,
            ),
            (
                "vouch_sync_ids_recently_fetched_total",
                "Missing ids not fetched because they were fetched or asked for recently.",
                &self.ids_recently_fetched,
            ),
            (
                "vouch_sync_penalties_total",
                "Penalties given to peers (invalid envelopes served, protocol bounds broken).",
                &self.penalties,
            ),
            (
                "vouch_sync_bans_total",
                "Peers banned from sync (penalties past the threshold).",
                &self.bans,
            ),
            (
                "vouch_sync_claims_full_total",
                "Times the bound on ids being fetched was reached (a round stopped early).",
                &self.claims_full,
            ),
            (
                "vouch_sync_peers_full_total",
                "Times a per-peer table (rate buckets, penalties, sync peers) was at its bound.",
                &self.peers_full,
            ),
        ];
        for (name, help, value) in counters {
            metrics::counter(enc, name, help, get(value))?;
        }
        let gauges = [
            ("vouch_sync_serving", "Sync requests being answered now.", &self.serving),
            ("vouch_sync_peers_syncing", "Sync rounds in progress now.", &self.syncing),
            ("vouch_sync_peers_banned", "Peers banned from sync now.", &self.banned),
        ];
        for (name, help, value) in gauges {
            metrics::gauge(enc, name, help, get(value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_renders_with_help_and_type() {
        let s = SyncStats::default();
        s.served(RequestKind::Fetch);
        s.refused(RefusedReason::Banned);
        s.malformed_request();
        s.round_ended(RoundEnd::Refused(RefusedReason::Busy));
        s.set_gauges(1, 2, 3);
        let out = crate::metrics::encode_one(s);
        assert!(out.contains("vouch_sync_requests_served_total{kind=\"fetch\"} 1\n"), "{out}");
        assert!(out.contains("vouch_sync_requests_refused_total{reason=\"banned\"} 1\n"));
        assert!(out.contains("vouch_sync_requests_refused_total{reason=\"malformed\"} 1\n"));
        assert!(out.contains("vouch_sync_rounds_total{outcome=\"refused\"} 1\n"));
        assert!(out.contains("vouch_sync_peers_banned 3\n"));
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(names.len(), 18);
        assert!(names.iter().all(|n| n.starts_with("vouch_sync_")));
        for n in &names {
            assert!(out.contains(&format!("# HELP {n} ")), "{n}");
        }
    }
}
