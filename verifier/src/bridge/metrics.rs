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
    /// Envelopes published to MQTT and acknowledged by the broker.
    pub outbound_published: AtomicU64,
    /// Log envelopes not published because they came in from MQTT (loop broken).
    pub outbound_from_mqtt: AtomicU64,
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
            outbound_from_mqtt: AtomicU64::new(0),
            outbound_other_records: AtomicU64::new(0),
            outbound_invalid: AtomicU64::new(0),
            outbound_resent_batches: AtomicU64::new(0),
            outbound_cursor: AtomicU64::new(0),
            inbound_forwarded: AtomicU64::new(0),
            inbound_gossip_dropped: AtomicU64::new(0),
            mqtt_connects: AtomicU64::new(0),
            mqtt_errors: AtomicU64::new(0),
            inbound: Mutex::new(BTreeMap::new()),
            seen,
        }
    }

    /// Counts one inbound MQTT message's outcome.
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
        json!({
            "outbound": {
                "published": Self::get(&self.outbound_published),
                "from_mqtt": Self::get(&self.outbound_from_mqtt),
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
                "by_reason": inbound.iter().map(|((o, r), n)| json!({"outcome": o.as_str(), "reason": r, "count": n})).collect::<Vec<_>>(),
            },
            "seen": {"entries": seen, "evictions": evictions},
            "mqtt": {"connects": Self::get(&self.mqtt_connects), "errors": Self::get(&self.mqtt_errors)},
        })
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ =
            writeln!(out, "# HELP vouch_bridge_inbound_total MQTT messages by outcome and reason.");
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
                "Envelopes published to MQTT and acknowledged.",
                Self::get(&self.outbound_published),
            ),
            (
                "vouch_bridge_outbound_from_mqtt_total",
                "counter",
                "Log envelopes not sent back to MQTT because they came from it.",
                Self::get(&self.outbound_from_mqtt),
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
