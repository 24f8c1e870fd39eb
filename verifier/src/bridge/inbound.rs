//! Inbound: MQTT → validation → gossip.
//!
//! Each MQTT message is decoded ([`BridgePayload::decode`], typed errors),
//! checked against the topic it came on, looked up in the seen-set (our own
//! outbound echo, or a repeat), then run through the same
//! [`crate::validate::Pipeline`] as gossip. Accepted envelopes are gossiped
//! on their telemetry topic so verifiers ingest them; every outcome is
//! counted by reason in `vouch_bridge_inbound_total`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use vouch_schema::bridge::BridgePayload;
use vouch_schema::topic;
use vouch_sdk::transport::{Outgoing, Transport};

use crate::clock::now_ms;
use crate::validate::{ACCEPTED, Outcome, Pipeline, Unverified};

use super::metrics::BridgeMetrics;
use super::seen::{Direction, SeenSet};

/// One MQTT message as received.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
}

/// The inbound worker's state.
pub(crate) struct Inbound<T: Transport> {
    pub(crate) pipeline: Pipeline,
    pub(crate) transport: T,
    pub(crate) seen: Arc<Mutex<SeenSet>>,
    pub(crate) metrics: Arc<BridgeMetrics>,
}

impl<T: Transport> Inbound<T> {
    /// Handles messages until the channel closes; returns the transport to close.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Received>) -> T {
        while let Some(msg) = rx.blocking_recv() {
            let (outcome, reason) = self.handle(&msg);
            tracing::debug!(topic = %msg.topic, outcome = outcome.as_str(), reason, "inbound");
            self.metrics.inbound(outcome, reason);
        }
        self.transport
    }

    /// One MQTT message: its outcome and reason label.
    pub(crate) fn handle(&mut self, msg: &Received) -> (Outcome, &'static str) {
        let payload = match BridgePayload::decode(&msg.payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%e, topic = %msg.topic, "undecodable bridge payload");
                return (Outcome::Reject, e.reason());
            }
        };
        if payload.envelope.id.stream_id != msg.topic {
            return (Outcome::Reject, "wrong_topic");
        }
        match self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&payload.message_id) {
            Some(Direction::Outbound) => return (Outcome::Ignore, "own_echo"),
            Some(Direction::Inbound) => return (Outcome::Ignore, "seen"),
            None => {}
        }
        let partition = payload.envelope.id.partition;
        let now = now_ms();
        let unverified = Unverified::from_topic(
            payload.envelope_cbor.clone(),
            &topic::telemetry_topic(partition),
        );
        if let Err(e) = self.pipeline.validate(unverified, now) {
            return e.outcome();
        }
        // Remembered before it reaches gossip, so the log follower never
        // sends it back to MQTT.
        if self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payload.message_id, Direction::Inbound)
            .is_some()
        {
            return (Outcome::Ignore, "seen");
        }
        match self.transport.send(Outgoing { partition, bytes: payload.envelope_cbor }) {
            Ok(()) => {
                self.metrics.inbound_forwarded.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.metrics.inbound_gossip_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%e, "gossip did not take a validated envelope");
            }
        }
        (Outcome::Accept, ACCEPTED)
    }
}
