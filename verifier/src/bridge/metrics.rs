//! The bridge's counters and its small HTTP API: `/healthz`, `/metrics`
//! (Prometheus, `vouch_bridge_*`) and `/v1/bridge/stats` (JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

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

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP vouch_bridge_inbound_total Inbound messages by outcome and reason."
        );
        let _ = writeln!(out, "# TYPE vouch_bridge_inbound_total counter");
        for ((o, r), n) in self.inbound_snapshot() {
            let _ = writeln!(
                out,
                "vouch_bridge_inbound_total{{outcome=\"{}\",reason=\"{r}\"}} {n}",
                o.as_str()
            );
        }
        let (seen, evictions) = self.seen_sizes();
        let rows = [
            (
                "vouch_bridge_outbound_published_total",
                "counter",
                "Envelopes published and confirmed.",
                Self::get(&self.outbound_published),
            ),
            (
                "vouch_bridge_outbound_from_inbound_total",
                "counter",
                "Log envelopes not sent back where they came in from.",
                Self::get(&self.outbound_from_inbound),
            ),
            (
                "vouch_bridge_outbound_retried_total",
                "counter",
                "Publishes sent again after the sidecar failed them or restarted.",
                Self::get(&self.outbound_retried),
            ),
            (
                "vouch_bridge_outbound_refused_total",
                "counter",
                "Publishes the sidecar refused for good.",
                Self::get(&self.outbound_refused),
            ),
            (
                "vouch_bridge_outbound_other_records_total",
                "counter",
                "Log records that are not envelopes.",
                Self::get(&self.outbound_other_records),
            ),
            (
                "vouch_bridge_outbound_invalid_total",
                "counter",
                "Log envelopes that did not decode.",
                Self::get(&self.outbound_invalid),
            ),
            (
                "vouch_bridge_outbound_resent_batches_total",
                "counter",
                "Batches published again after a broker disconnect.",
                Self::get(&self.outbound_resent_batches),
            ),
            (
                "vouch_bridge_outbound_cursor",
                "gauge",
                "Next log index to publish.",
                Self::get(&self.outbound_cursor),
            ),
            (
                "vouch_bridge_inbound_forwarded_total",
                "counter",
                "Envelopes gossiped after validation.",
                Self::get(&self.inbound_forwarded),
            ),
            (
                "vouch_bridge_inbound_gossip_dropped_total",
                "counter",
                "Validated envelopes the full gossip buffer refused.",
                Self::get(&self.inbound_gossip_dropped),
            ),
            (
                "vouch_bridge_inbound_dropped_total",
                "counter",
                "Streamr messages dropped: the validation queue was full.",
                Self::get(&self.inbound_dropped),
            ),
            (
                "vouch_bridge_revocations_applied_total",
                "counter",
                "Logged revocations applied to the inbound pipeline.",
                Self::get(&self.revocations_applied),
            ),
            (
                "vouch_bridge_revocations_not_applied_total",
                "counter",
                "Logged revocations the inbound pipeline did not apply.",
                Self::get(&self.revocations_not_applied),
            ),
            (
                "vouch_bridge_sidecar_dropped_inbound_total",
                "counter",
                "Streamr messages the sidecar dropped: its output toward the bridge was full.",
                Self::get(&self.sidecar_dropped_inbound),
            ),
            (
                "vouch_bridge_sidecar_up",
                "gauge",
                "1 while a sidecar runs and has joined the Streamr network.",
                Self::get(&self.sidecar_up),
            ),
            (
                "vouch_bridge_sidecar_starts_total",
                "counter",
                "Sidecar processes started.",
                Self::get(&self.sidecar_starts),
            ),
            (
                "vouch_bridge_sidecar_restarts_total",
                "counter",
                "Sidecars that exited, failed to start or were killed.",
                Self::get(&self.sidecar_restarts),
            ),
            (
                "vouch_bridge_sidecar_unhealthy_total",
                "counter",
                "Sidecars killed for missing their health checks.",
                Self::get(&self.sidecar_unhealthy),
            ),
            (
                "vouch_bridge_sidecar_queued",
                "gauge",
                "Publishes waiting in the bounded queue toward the sidecar.",
                Self::get(&self.sidecar_queued),
            ),
            (
                "vouch_bridge_sidecar_queue_capacity",
                "gauge",
                "Capacity of the queue toward the sidecar.",
                Self::get(&self.sidecar_queue_capacity),
            ),
            (
                "vouch_bridge_sidecar_in_flight",
                "gauge",
                "Publishes written to the sidecar, not yet confirmed.",
                Self::get(&self.sidecar_in_flight),
            ),
            (
                "vouch_bridge_sidecar_protocol_errors_total",
                "counter",
                "Lines from the sidecar that were not its protocol.",
                Self::get(&self.sidecar_protocol_errors),
            ),
            ("vouch_bridge_seen_entries", "gauge", "Message ids in the loop-breaking set.", seen),
            (
                "vouch_bridge_seen_evictions_total",
                "counter",
                "Message ids evicted from the full loop-breaking set.",
                evictions,
            ),
            (
                "vouch_bridge_mqtt_connects_total",
                "counter",
                "MQTT connections established.",
                Self::get(&self.mqtt_connects),
            ),
            (
                "vouch_bridge_mqtt_errors_total",
                "counter",
                "MQTT connection errors.",
                Self::get(&self.mqtt_errors),
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}

#[derive(Clone)]
struct HttpState {
    bridge: Arc<BridgeMetrics>,
    http: Arc<HttpServerMetrics>,
}

/// The bridge's HTTP router; `/metrics` also shows its HTTP listener's `http` counters.
pub fn router(metrics: Arc<BridgeMetrics>, http: Arc<HttpServerMetrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(prometheus))
        .route("/v1/bridge/stats", get(stats))
        .with_state(HttpState { bridge: metrics, http })
}

async fn prometheus(State(s): State<HttpState>) -> impl IntoResponse {
    let mut text = s.bridge.render();
    s.http.render_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn stats(State(s): State<HttpState>) -> Json<Value> {
    Json(s.bridge.stats_json())
}
