//! The bridge's counters and its small HTTP API: `/healthz`, `/metrics`
//! (Prometheus, `vouch_bridge_*`) and `/v1/bridge/stats` (JSON).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use vouch_net::metrics::{CONTENT_TYPE, counter, counter_family, encode, gauge};

use crate::http_server::HttpServerMetrics;
use crate::validate::Outcome;

use super::seen::SeenSet;

/// Counters shared by the bridge's tasks and its HTTP server.
#[derive(Debug)]
pub struct BridgeMetrics {
    /// Envelopes published and confirmed (by the sidecar, or the MQTT broker).
    pub outbound_published: AtomicU64,
    /// Log envelopes not published because they came in through the bridge (loop broken).
    pub outbound_from_inbound: AtomicU64,
    /// Publishes sent again after the sidecar failed them or restarted.
    pub outbound_retried: AtomicU64,
    /// Publishes the sidecar refused for good (not a StreamMessage: never expected).
    pub outbound_refused: AtomicU64,
    /// Log records that are not envelopes (authority views, revocations), skipped.
    pub outbound_other_records: AtomicU64,
    /// Log envelopes that did not decode (never expected: the log holds accepted ones).
    pub outbound_invalid: AtomicU64,
    /// Batches published again after the broker connection dropped before all acks.
    pub outbound_resent_batches: AtomicU64,
    /// The next log index to publish (what the cursor file holds).
    pub outbound_cursor: AtomicU64,
    /// Envelopes gossiped after validation.
    pub inbound_forwarded: AtomicU64,
    /// Validated envelopes the gossip transport could not take (its buffer full).
    pub inbound_gossip_dropped: AtomicU64,
    /// Streamr messages dropped because the validation queue was full.
    pub inbound_dropped: AtomicU64,
    /// Logged revocations applied to the inbound pipeline.
    pub revocations_applied: AtomicU64,
    /// Logged revocations the inbound pipeline did not apply (in force already, or refused).
    pub revocations_not_applied: AtomicU64,
    /// Streamr messages the sidecar dropped because its output toward the bridge was full.
    pub sidecar_dropped_inbound: AtomicU64,
    /// Whether a sidecar is running and has joined the network (0 or 1).
    pub sidecar_up: AtomicU64,
    /// Sidecar processes started.
    pub sidecar_starts: AtomicU64,
    /// Sidecar processes that exited, failed to start, or were killed.
    pub sidecar_restarts: AtomicU64,
    /// Sidecars killed for missing their health checks.
    pub sidecar_unhealthy: AtomicU64,
    /// Publishes waiting in the bounded queue toward the sidecar.
    pub sidecar_queued: AtomicU64,
    /// That queue's capacity.
    pub sidecar_queue_capacity: AtomicU64,
    /// Publishes written to the sidecar and not yet confirmed or failed.
    pub sidecar_in_flight: AtomicU64,
    /// Lines from the sidecar that were not its protocol.
    pub sidecar_protocol_errors: AtomicU64,
    /// The running sidecar's Streamr node id.
    pub sidecar_node_id: Mutex<Option<String>>,
    /// MQTT connections established.
    pub mqtt_connects: AtomicU64,
    /// MQTT connection errors (each followed by a reconnect).
    pub mqtt_errors: AtomicU64,
    /// Inbound outcomes: (outcome, reason) → count.
    inbound: Mutex<BTreeMap<(Outcome, &'static str), u64>>,
    /// The loop-breaking set (its size and evictions are exported).
    pub seen: Arc<Mutex<SeenSet>>,
}

impl BridgeMetrics {
    /// Zeroed counters over `seen`.
    pub fn new(seen: Arc<Mutex<SeenSet>>) -> BridgeMetrics {
        BridgeMetrics {
            outbound_published: AtomicU64::new(0),
            outbound_from_inbound: AtomicU64::new(0),
            outbound_retried: AtomicU64::new(0),
            outbound_refused: AtomicU64::new(0),
            outbound_other_records: AtomicU64::new(0),
            outbound_invalid: AtomicU64::new(0),
            outbound_resent_batches: AtomicU64::new(0),
            outbound_cursor: AtomicU64::new(0),
            inbound_forwarded: AtomicU64::new(0),
            inbound_gossip_dropped: AtomicU64::new(0),
            inbound_dropped: AtomicU64::new(0),
            revocations_applied: AtomicU64::new(0),
            revocations_not_applied: AtomicU64::new(0),
            sidecar_dropped_inbound: AtomicU64::new(0),
            sidecar_up: AtomicU64::new(0),
            sidecar_starts: AtomicU64::new(0),
            sidecar_restarts: AtomicU64::new(0),
            sidecar_unhealthy: AtomicU64::new(0),
            sidecar_queued: AtomicU64::new(0),
            sidecar_queue_capacity: AtomicU64::new(0),
            sidecar_in_flight: AtomicU64::new(0),
            sidecar_protocol_errors: AtomicU64::new(0),
            sidecar_node_id: Mutex::new(None),
            mqtt_connects: AtomicU64::new(0),
            mqtt_errors: AtomicU64::new(0),
            inbound: Mutex::new(BTreeMap::new()),
            seen,
        }
    }

    /// Counts one inbound message's outcome.
    pub fn inbound(&self, outcome: Outcome, reason: &'static str) {
        *self
            .inbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((outcome, reason))
            .or_default() += 1;
    }

    fn inbound_snapshot(&self) -> BTreeMap<(Outcome, &'static str), u64> {
        self.inbound.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn seen_sizes(&self) -> (u64, u64) {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        (seen.len() as u64, seen.evictions())
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// `/v1/bridge/stats`.
    pub fn stats_json(&self) -> Value {
        let inbound = self.inbound_snapshot();
        let total =
            |o: Outcome| inbound.iter().filter(|((x, _), _)| *x == o).map(|(_, n)| n).sum::<u64>();
        let (seen, evictions) = self.seen_sizes();
        let node_id = self.sidecar_node_id.lock().unwrap_or_else(|p| p.into_inner()).clone();
        json!({
            "outbound": {
                "published": Self::get(&self.outbound_published),
                "from_inbound": Self::get(&self.outbound_from_inbound),
                // The same count under its name from the MQTT-only days.
                "from_mqtt": Self::get(&self.outbound_from_inbound),
                "retried": Self::get(&self.outbound_retried),
                "refused": Self::get(&self.outbound_refused),
                "other_records": Self::get(&self.outbound_other_records),
                "invalid": Self::get(&self.outbound_invalid),
                "resent_batches": Self::get(&self.outbound_resent_batches),
                "cursor": Self::get(&self.outbound_cursor),
            },
            "inbound": {
                "accepted": total(Outcome::Accept),
                "rejected": total(Outcome::Reject),
                "ignored": total(Outcome::Ignore),
                "forwarded": Self::get(&self.inbound_forwarded),
                "gossip_dropped": Self::get(&self.inbound_gossip_dropped),
                "dropped": Self::get(&self.inbound_dropped),
                "revocations_applied": Self::get(&self.revocations_applied),
                "revocations_not_applied": Self::get(&self.revocations_not_applied),
                "by_reason": inbound.iter().map(|((o, r), n)| json!({"outcome": o.as_str(), "reason": r, "count": n})).collect::<Vec<_>>(),
            },
            "seen": {"entries": seen, "evictions": evictions},
            "mqtt": {"connects": Self::get(&self.mqtt_connects), "errors": Self::get(&self.mqtt_errors)},
            "sidecar": {
                "up": Self::get(&self.sidecar_up) == 1,
                "node_id": node_id,
                "starts": Self::get(&self.sidecar_starts),
                "restarts": Self::get(&self.sidecar_restarts),
                "unhealthy": Self::get(&self.sidecar_unhealthy),
                "queued": Self::get(&self.sidecar_queued),
                "queue_capacity": Self::get(&self.sidecar_queue_capacity),
                "in_flight": Self::get(&self.sidecar_in_flight),
                "dropped_inbound": Self::get(&self.sidecar_dropped_inbound),
                "protocol_errors": Self::get(&self.sidecar_protocol_errors),
            },
        })
    }
}

/// Whether a bridge row is a counter or a gauge.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl Collector for BridgeMetrics {
    /// The `vouch_bridge_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let enc = &mut enc;
        counter_family(
            enc,
            "vouch_bridge_inbound_total",
            "Inbound messages by outcome and reason.",
            self.inbound_snapshot()
                .into_iter()
                .map(|((o, r), n)| ([("outcome", o.as_str()), ("reason", r)], n)),
        )?;
        let (seen, evictions) = self.seen_sizes();
        let rows = [
            (
                Kind::Counter,
                "vouch_bridge_outbound_published_total",
                "Envelopes published and confirmed.",
                Self::get(&self.outbound_published),
            ),
            (
                Kind::Counter,
                "vouch_bridge_outbound_from_inbound_total",
                "Log envelopes not sent back where they came in from.",
                Self::get(&self.outbound_from_inbound),
            ),
            (
                Kind::Counter,
                "vouch_bridge_outbound_retried_total",
                "Publishes sent again after the sidecar failed them or restarted.",
                Self::get(&self.outbound_retried),
            ),
            (
                Kind::Counter,
                "vouch_bridge_outbound_refused_total",
                "Publishes the sidecar refused for good.",
                Self::get(&self.outbound_refused),
            ),
            (
                Kind::Counter,
                "vouch_bridge_outbound_other_records_total",
                "Log records that are not envelopes.",
                Self::get(&self.outbound_other_records),
            ),
            (
                Kind::Counter,
                "vouch_bridge_outbound_invalid_total",
                "Log envelopes that did not decode.",
                Self::get(&self.outbound_invalid),
            ),
            (
                Kind::Counter,
                "vouch_bridge_outbound_resent_batches_total",
                "Batches published again after a broker disconnect.",
                Self::get(&self.outbound_resent_batches),
            ),
            (
                Kind::Gauge,
                "vouch_bridge_outbound_cursor",
                "Next log index to publish.",
                Self::get(&self.outbound_cursor),
            ),
            (
                Kind::Counter,
                "vouch_bridge_inbound_forwarded_total",
                "Envelopes gossiped after validation.",
                Self::get(&self.inbound_forwarded),
            ),
            (
                Kind::Counter,
                "vouch_bridge_inbound_gossip_dropped_total",
                "Validated envelopes the full gossip buffer refused.",
                Self::get(&self.inbound_gossip_dropped),
            ),
            (
                Kind::Counter,
                "vouch_bridge_inbound_dropped_total",
                "Streamr messages dropped: the validation queue was full.",
                Self::get(&self.inbound_dropped),
            ),
            (
                Kind::Counter,
                "vouch_bridge_revocations_applied_total",
                "Logged revocations applied to the inbound pipeline.",
                Self::get(&self.revocations_applied),
            ),
            (
                Kind::Counter,
                "vouch_bridge_revocations_not_applied_total",
                "Logged revocations the inbound pipeline did not apply.",
                Self::get(&self.revocations_not_applied),
            ),
            (
                Kind::Counter,
                "vouch_bridge_sidecar_dropped_inbound_total",
                "Streamr messages the sidecar dropped: its output toward the bridge was full.",
                Self::get(&self.sidecar_dropped_inbound),
            ),
            (
                Kind::Gauge,
                "vouch_bridge_sidecar_up",
                "1 while a sidecar runs and has joined the Streamr network.",
                Self::get(&self.sidecar_up),
            ),
            (
                Kind::Counter,
                "vouch_bridge_sidecar_starts_total",
                "Sidecar processes started.",
                Self::get(&self.sidecar_starts),
            ),
            (
                Kind::Counter,
                "vouch_bridge_sidecar_restarts_total",
                "Sidecars that exited, failed to start or were killed.",
                Self::get(&self.sidecar_restarts),
            ),
            (
                Kind::Counter,
                "vouch_bridge_sidecar_unhealthy_total",
                "Sidecars killed for missing their health checks.",
                Self::get(&self.sidecar_unhealthy),
            ),
            (
                Kind::Gauge,
                "vouch_bridge_sidecar_queued",
                "Publishes waiting in the bounded queue toward the sidecar.",
                Self::get(&self.sidecar_queued),
            ),
            (
                Kind::Gauge,
                "vouch_bridge_sidecar_queue_capacity",
                "Capacity of the queue toward the sidecar.",
                Self::get(&self.sidecar_queue_capacity),
            ),
            (
                Kind::Gauge,
                "vouch_bridge_sidecar_in_flight",
                "Publishes written to the sidecar, not yet confirmed.",
                Self::get(&self.sidecar_in_flight),
            ),
            (
                Kind::Counter,
                "vouch_bridge_sidecar_protocol_errors_total",
                "Lines from the sidecar that were not its protocol.",
                Self::get(&self.sidecar_protocol_errors),
            ),
            (
                Kind::Gauge,
                "vouch_bridge_seen_entries",
                "Message ids in the loop-breaking set.",
                seen,
            ),
            (
                Kind::Counter,
                "vouch_bridge_seen_evictions_total",
                "Message ids evicted from the full loop-breaking set.",
                evictions,
            ),
            (
                Kind::Counter,
                "vouch_bridge_mqtt_connects_total",
                "MQTT connections established.",
                Self::get(&self.mqtt_connects),
            ),
            (
                Kind::Counter,
                "vouch_bridge_mqtt_errors_total",
                "MQTT connection errors.",
                Self::get(&self.mqtt_errors),
            ),
        ];
        for (kind, name, help, value) in rows {
            match kind {
                Kind::Counter => counter(enc, name, help, value)?,
                Kind::Gauge => gauge(enc, name, help, value)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct HttpState {
    bridge: Arc<BridgeMetrics>,
    registry: Arc<Registry>,
}

/// The bridge's HTTP router; `/metrics` encodes one registry of the bridge's
/// counters and its HTTP listener's `http` counters.
pub fn router(metrics: Arc<BridgeMetrics>, http: Arc<HttpServerMetrics>) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Arc::clone(&metrics)));
    registry.register_collector(Box::new(http));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(prometheus))
        .route("/v1/bridge/stats", get(stats))
        .with_state(HttpState { bridge: metrics, registry: Arc::new(registry) })
}

async fn prometheus(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], encode(&s.registry))
}

async fn stats(State(s): State<HttpState>) -> Json<Value> {
    Json(s.bridge.stats_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the bridge's `/metrics` serves besides its HTTP
    /// listener's: a rename must change this list.
    const NAMES: [&str; 27] = [
        "vouch_bridge_inbound_dropped_total",
        "vouch_bridge_inbound_forwarded_total",
        "vouch_bridge_inbound_gossip_dropped_total",
        "vouch_bridge_inbound_total",
        "vouch_bridge_mqtt_connects_total",
        "vouch_bridge_mqtt_errors_total",
        "vouch_bridge_outbound_cursor",
        "vouch_bridge_outbound_from_inbound_total",
        "vouch_bridge_outbound_invalid_total",
        "vouch_bridge_outbound_other_records_total",
        "vouch_bridge_outbound_published_total",
        "vouch_bridge_outbound_refused_total",
        "vouch_bridge_outbound_resent_batches_total",
        "vouch_bridge_outbound_retried_total",
        "vouch_bridge_revocations_applied_total",
        "vouch_bridge_revocations_not_applied_total",
        "vouch_bridge_seen_entries",
        "vouch_bridge_seen_evictions_total",
        "vouch_bridge_sidecar_dropped_inbound_total",
        "vouch_bridge_sidecar_in_flight",
        "vouch_bridge_sidecar_protocol_errors_total",
        "vouch_bridge_sidecar_queue_capacity",
        "vouch_bridge_sidecar_queued",
        "vouch_bridge_sidecar_restarts_total",
        "vouch_bridge_sidecar_starts_total",
        "vouch_bridge_sidecar_unhealthy_total",
        "vouch_bridge_sidecar_up",
    ];

    #[test]
    fn every_bridge_name_is_served() {
        let metrics = BridgeMetrics::new(Arc::new(Mutex::new(SeenSet::new(4))));
        let text = vouch_net::metrics::encode_one(metrics);
        assert_eq!(vouch_net::metrics::exposed_names(&text), NAMES, "{text}");
    }
}
