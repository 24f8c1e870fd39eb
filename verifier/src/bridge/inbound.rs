//! Inbound: the Streamr network (or the MQTT feed) → validation → gossip.
//!
//! Each message is decoded — a Streamr `StreamMessage` protobuf into an
//! envelope ([`Envelope::from_streamr_bytes`]), an MQTT payload with
//! [`BridgePayload::decode`], both with typed errors — checked against the
//! stream part or topic it came on, looked up in the seen-set (our own
//! outbound echo, or a repeat), then run through the same
//! [`crate::validate::Pipeline`] as gossip. Accepted envelopes are gossiped
//! on their telemetry topic so verifiers ingest them; every outcome is
//! counted by reason in `vouch_bridge_inbound_total`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use vouch_schema::Envelope;
use vouch_schema::bridge::BridgePayload;
use vouch_schema::streamr::StreamrError;
use vouch_schema::topic;
use vouch_sdk::transport::{Outgoing, Transport};

use crate::clock::now_ms;
use crate::validate::{ACCEPTED, Outcome, Pipeline, Unverified};

use super::metrics::BridgeMetrics;
use super::seen::{Direction, SeenSet};

/// One message as received.
#[derive(Debug)]
pub(crate) enum Received {
    /// From the Streamr network: a `StreamMessage` protobuf of a subscribed stream part.
    Streamr {
        /// The stream subscribed to.
        stream: String,
        /// The partition subscribed to.
        partition: u32,
        /// The message's protobuf bytes.
        message: Vec<u8>,
    },
    /// From the MQTT feed: a [`BridgePayload`] JSON object on a topic.
    Mqtt {
        /// The topic it came on (a stream id).
        topic: String,
        /// The payload bytes.
        payload: Vec<u8>,
    },
    /// A revocation the co-located verifier logged ([`follow_revocations`]):
    /// applied to the pipeline, so a revoked delegate's messages stop here
    /// rather than reach gossip (where verifiers would penalize the bridge).
    Revocation(Vec<u8>),
}

impl Received {
    fn source(&self) -> &str {
        match self {
            Received::Streamr { stream, .. } => stream,
            Received::Mqtt { topic, .. } => topic,
            Received::Revocation(_) => "log",
        }
    }
}

/// The stable reason label of a Streamr message that is not a Vouch envelope.
pub(crate) fn streamr_reason(e: &StreamrError) -> &'static str {
    match e {
        StreamrError::Protobuf(_) | StreamrError::NoMessageId | StreamrError::Negative(_) => {
            "streamr_protobuf"
        }
        StreamrError::Oversize(_) => "streamr_oversize",
        StreamrError::SignatureType(_) => "streamr_signature_type",
        StreamrError::NotContent | StreamrError::ContentKind => "streamr_not_vouch",
        StreamrError::Envelope(_) => "streamr_envelope",
    }
}

/// A Streamr message as a bridge payload, checked against its stream part.
fn from_streamr(
    stream: &str,
    partition: u32,
    message: &[u8],
) -> Result<BridgePayload, &'static str> {
    let envelope = Envelope::from_streamr_bytes(message).map_err(|e| {
        tracing::debug!(%e, stream, "not a Vouch envelope");
        streamr_reason(&e)
    })?;
    if envelope.id.stream_id != stream || envelope.id.partition != partition {
        return Err("wrong_stream_part");
    }
    // The CBOR the log and gossip hold: the same message id as A's outbound computed.
    BridgePayload::from_cbor(envelope.encode()).map_err(|_| "streamr_envelope")
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
            if let Received::Revocation(bytes) = &msg {
                let applied = self.pipeline.validate_revocation(bytes, now_ms());
                let counter = match &applied {
                    Ok(_) => &self.metrics.revocations_applied,
                    Err(_) => &self.metrics.revocations_not_applied,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = applied {
                    tracing::debug!(%e, "logged revocation not applied");
                }
                continue;
            }
            let (outcome, reason) = self.handle(&msg);
            tracing::debug!(source = %msg.source(), outcome = outcome.as_str(), reason, "inbound");
            self.metrics.inbound(outcome, reason);
        }
        self.transport
    }

    /// One message: its outcome and reason label.
    pub(crate) fn handle(&mut self, msg: &Received) -> (Outcome, &'static str) {
        let payload = match msg {
            Received::Streamr { stream, partition, message } => {
                match from_streamr(stream, *partition, message) {
                    Ok(p) => p,
                    Err(reason) => return (Outcome::Reject, reason),
                }
            }
            Received::Revocation(_) => return (Outcome::Ignore, "revocation"),
            Received::Mqtt { topic, payload } => {
                let payload = match BridgePayload::decode(payload) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(%e, topic, "undecodable bridge payload");
                        return (Outcome::Reject, e.reason());
                    }
                };
                if payload.envelope.id.stream_id != *topic {
                    return (Outcome::Reject, "wrong_topic");
                }
                payload
            }
        };
        match self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&payload.message_id) {
            Some(Direction::Outbound) => return (Outcome::Ignore, "own_echo"),
            Some(Direction::Inbound) => return (Outcome::Ignore, "seen"),
            None => {}
        }
        let partition = payload.envelope.id.partition;
        let now = now_ms();
        let mut unverified =
            Unverified::from_topic(payload.envelope_cbor, &topic::telemetry_topic(partition));
        if let Err(e) = self.pipeline.validate(&mut unverified, now) {
            return e.outcome();
        }
        // Remembered before it reaches gossip, so the log follower never
        // sends it back where it came from.
        if self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payload.message_id, Direction::Inbound)
            .is_some()
        {
            return (Outcome::Ignore, "seen");
        }
        match self.transport.send(Outgoing { partition, bytes: unverified.into_bytes() }) {
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

/// Follows the revocations a verifier logs (`dir`, polled every `poll`)
/// into the inbound worker until `stop`: every one in the log at start, then
/// each new one.
pub(crate) async fn follow_revocations(
    dir: std::path::PathBuf,
    poll: std::time::Duration,
    tx: mpsc::Sender<Received>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), super::BridgeError> {
    let mut next = 0u64;
    loop {
        let from = next;
        let dir_read = dir.clone();
        let read = tokio::task::spawn_blocking(move || read_revocations(&dir_read, from))
            .await
            .map_err(super::BridgeError::ReadTask)?;
        match read {
            Ok((found, after)) => {
                next = after;
                for bytes in found {
                    if tx.send(Received::Revocation(bytes)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            // Not there yet, or briefly unreadable: the next poll tries again.
            Err(crate::store::LogError::Io { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Revocation records from index `from` on, and the index after the last record.
fn read_revocations(
    dir: &std::path::Path,
    from: u64,
) -> Result<(Vec<Vec<u8>>, u64), crate::store::LogError> {
    use crate::store::{LogError, LogReader, RecordKind};
    let mut reader = match LogReader::open(dir, from) {
        Err(LogError::NotInLog { first, .. }) if from < first => LogReader::open(dir, first)?,
        other => other?,
    };
    let mut found = Vec::new();
    for record in reader.by_ref() {
        let record = record?;
        if record.kind == RecordKind::Revocation {
            found.push(record.payload);
        }
    }
    Ok((found, reader.next_index()))
}
