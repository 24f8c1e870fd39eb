//! The Streamr bridge's MQTT payload: one signed envelope as a JSON object.
//!
//! A Streamr node's MQTT plugin re-signs whatever it is given with the
//! node's own key (`shared/reference/streamr.md` §5), so the publisher's
//! signature must ride *inside* the content. The payload carries the
//! original signed message twice, in both encodings, plus its
//! content-addressed id:
//!
//! ```json
//! {"vouch_bridge": 1,
//!  "message_id": "<40 hex: topic::message_id(telemetry_topic(partition), envelope_cbor)>",
//!  "stream_id": "0x…/livepeer/telemetry", "partition": 3,
//!  "envelope_cbor": "<base64: the deterministic CBOR envelope, as gossip carries it>",
//!  "stream_message": "<base64: the same message as a Streamr StreamMessage protobuf>"}
//! ```
//!
//! Base64 is RFC 4648 with padding. A Streamr subscriber verifies
//! `stream_message` with Streamr's own code (content type BINARY, signature
//! type `ECDSA_SECP256K1_EVM`); a Vouch verifier reads `envelope_cbor`.
//! [`BridgePayload::decode`] accepts a payload only if both encodings are the
//! same message and the id, stream and partition match it, so the two
//! audiences can never be shown different messages.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::SharedError;
use crate::envelope::{Envelope, EnvelopeError};
use crate::limits::MAX_ENVELOPE_BYTES;
use crate::streamr::StreamrError;
use crate::topic::{self, MESSAGE_ID_LEN};

/// The payload format version written and accepted (`vouch_bridge`).
pub const BRIDGE_PAYLOAD_VERSION: u64 = 1;

/// Largest payload accepted, in bytes: two base64 copies of a maximal
/// envelope (the protobuf form is a few dozen bytes longer) plus the JSON
/// around them. Far below Streamr's 1 MiB message limit.
pub const MAX_BRIDGE_PAYLOAD_BYTES: usize = 4 * MAX_ENVELOPE_BYTES;

/// The JSON object exactly as written on MQTT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    vouch_bridge: u64,
    message_id: String,
    stream_id: String,
    partition: u32,
    envelope_cbor: String,
    stream_message: String,
}

/// A decoded (or to-be-encoded) bridge payload: one envelope, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePayload {
    /// The envelope.
    pub envelope: Envelope,
    /// Its deterministic CBOR bytes (what gossip carries and the log holds).
    pub envelope_cbor: Vec<u8>,
    /// Its content-addressed gossip message id.
    pub message_id: [u8; MESSAGE_ID_LEN],
}

/// Why bytes are not a bridge payload. Each case has its own variant and a
/// stable [`BridgePayloadError::reason`] label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgePayloadError {
    /// Larger than [`MAX_BRIDGE_PAYLOAD_BYTES`] (checked before parsing).
    #[error("bridge payload is {0} bytes, over the {MAX_BRIDGE_PAYLOAD_BYTES}-byte limit")]
    Oversize(usize),
    /// Not the JSON object described in the module docs.
    #[error("bridge payload JSON: {0}")]
    Json(#[source] SharedError<serde_json::Error>),
    /// A `vouch_bridge` version other than [`BRIDGE_PAYLOAD_VERSION`].
    #[error("unsupported bridge payload version {0}")]
    Version(u64),
    /// A field is not valid base64 (or hex, for `message_id`).
    #[error("bridge payload field {0} is not valid base64/hex")]
    Encoding(&'static str),
    /// `envelope_cbor` is not a strictly encoded envelope.
    #[error("bridge payload envelope: {0}")]
    Envelope(#[source] EnvelopeError),
    /// `stream_message` is not a Streamr message of a Vouch envelope.
    #[error("bridge payload stream message: {0}")]
    StreamMessage(#[source] StreamrError),
    /// The two encodings hold different messages.
    #[error("envelope_cbor and stream_message are different messages")]
    Mismatch,
    /// `message_id`, `stream_id` or `partition` does not describe the envelope.
    #[error("bridge payload field {0} does not match the envelope")]
    WrongField(&'static str),
}

impl BridgePayloadError {
    /// A stable, short label for metrics (`payload_json`, `payload_mismatch`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            BridgePayloadError::Oversize(_) => "payload_oversize",
            BridgePayloadError::Json(_) => "payload_json",
            BridgePayloadError::Version(_) => "payload_version",
            BridgePayloadError::Encoding(_) => "payload_encoding",
            BridgePayloadError::Envelope(_) => "payload_envelope",
            BridgePayloadError::StreamMessage(_) => "payload_stream_message",
            BridgePayloadError::Mismatch => "payload_mismatch",
            BridgePayloadError::WrongField(_) => "payload_wrong_field",
        }
    }
}

/// The content-addressed id of an envelope's CBOR bytes: its gossip message
/// id on the telemetry topic of its partition.
pub fn envelope_message_id(partition: u32, envelope_cbor: &[u8]) -> [u8; MESSAGE_ID_LEN] {
    topic::message_id(&topic::telemetry_topic(partition), envelope_cbor)
}

impl BridgePayload {
    /// The payload of an envelope given as its CBOR bytes (as the log holds it).
    pub fn from_cbor(envelope_cbor: Vec<u8>) -> Result<BridgePayload, EnvelopeError> {
        let envelope = Envelope::decode(&envelope_cbor)?;
        let message_id = envelope_message_id(envelope.id.partition, &envelope_cbor);
        Ok(BridgePayload { envelope, envelope_cbor, message_id })
    }

    /// The JSON bytes written to MQTT.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            vouch_bridge: BRIDGE_PAYLOAD_VERSION,
            message_id: hex::encode(self.message_id),
            stream_id: self.envelope.id.stream_id.clone(),
            partition: self.envelope.id.partition,
            envelope_cbor: BASE64.encode(&self.envelope_cbor),
            stream_message: BASE64.encode(self.envelope.to_streamr_bytes()),
        };
        // Serializing plain strings and integers into memory cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Decodes and cross-checks a payload received from MQTT. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<BridgePayload, BridgePayloadError> {
        if bytes.len() > MAX_BRIDGE_PAYLOAD_BYTES {
            return Err(BridgePayloadError::Oversize(bytes.len()));
        }
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| BridgePayloadError::Json(e.into()))?;
        if wire.vouch_bridge != BRIDGE_PAYLOAD_VERSION {
            return Err(BridgePayloadError::Version(wire.vouch_bridge));
        }
        let envelope_cbor = BASE64
            .decode(wire.envelope_cbor.as_bytes())
            .map_err(|_| BridgePayloadError::Encoding("envelope_cbor"))?;
        let proto = BASE64
            .decode(wire.stream_message.as_bytes())
            .map_err(|_| BridgePayloadError::Encoding("stream_message"))?;
        let mut claimed_id = [0u8; MESSAGE_ID_LEN];
        hex::decode_to_slice(&wire.message_id, &mut claimed_id)
            .map_err(|_| BridgePayloadError::Encoding("message_id"))?;
        let envelope = Envelope::decode(&envelope_cbor).map_err(BridgePayloadError::Envelope)?;
        let from_proto =
            Envelope::from_streamr_bytes(&proto).map_err(BridgePayloadError::StreamMessage)?;
        if from_proto != envelope {
            return Err(BridgePayloadError::Mismatch);
        }
        if wire.stream_id != envelope.id.stream_id {
            return Err(BridgePayloadError::WrongField("stream_id"));
        }
        if wire.partition != envelope.id.partition {
            return Err(BridgePayloadError::WrongField("partition"));
        }
        let message_id = envelope_message_id(envelope.id.partition, &envelope_cbor);
        if message_id != claimed_id {
            return Err(BridgePayloadError::WrongField("message_id"));
        }
        Ok(BridgePayload { envelope, envelope_cbor, message_id })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::MessageId;
    use k256::ecdsa::SigningKey;

    fn envelope() -> Envelope {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let id = MessageId {
            stream_id: "0x1111111111111111111111111111111111111111/livepeer/telemetry".into(),
            partition: 3,
            timestamp: 1_700_000_000_000,
            seq: 0,
            publisher: crate::Address([0; 20]),
            msg_chain_id: "chain".into(),
        };
        Envelope::sign(id, None, b"content".to_vec(), &key).unwrap()
    }

    fn wire(payload: &BridgePayload) -> serde_json::Value {
        serde_json::from_slice(&payload.encode()).unwrap()
    }

    #[test]
    fn round_trip() {
        let env = envelope();
        let p = BridgePayload::from_cbor(env.encode()).unwrap();
        assert_eq!(p.message_id, envelope_message_id(3, &env.encode()));
        let back = BridgePayload::decode(&p.encode()).unwrap();
        assert_eq!(back, p);
        let w = wire(&p);
        assert_eq!(w["partition"], 3);
        assert_eq!(w["vouch_bridge"], 1);
    }

    /// The fuzz seed doubles as a golden vector of the payload format (RFC
    /// 6979 makes the signature, hence the bytes, deterministic). Rewrite it
    /// with `VOUCH_WRITE_SEEDS=1 cargo test -p vouch-schema bridge`.
    #[test]
    fn golden_payload_matches_the_fuzz_seed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds/bridge_payload/payload-1.json");
        let bytes = BridgePayload::from_cbor(envelope().encode()).unwrap().encode();
        if std::env::var_os("VOUCH_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
        assert!(BridgePayload::decode(&bytes).is_ok());
    }

    #[test]
    fn every_malformed_case_has_its_error() {
        let p = BridgePayload::from_cbor(envelope().encode()).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut w = wire(&p);
            f(&mut w);
            BridgePayload::decode(&serde_json::to_vec(&w).unwrap()).unwrap_err()
        };
        assert!(matches!(
            BridgePayload::decode(&vec![b' '; MAX_BRIDGE_PAYLOAD_BYTES + 1]),
            Err(BridgePayloadError::Oversize(_))
        ));
        assert!(matches!(BridgePayload::decode(b"[1]"), Err(BridgePayloadError::Json(_))));
        assert!(matches!(with(&|w| w["extra"] = 1.into()), BridgePayloadError::Json(_)));
        assert_eq!(with(&|w| w["vouch_bridge"] = 2.into()), BridgePayloadError::Version(2));
        assert_eq!(
            with(&|w| w["envelope_cbor"] = "!!".into()),
            BridgePayloadError::Encoding("envelope_cbor")
        );
        assert_eq!(
            with(&|w| w["message_id"] = "00".into()),
            BridgePayloadError::Encoding("message_id")
        );
        assert!(matches!(
            with(&|w| w["envelope_cbor"] = BASE64.encode(b"\x01").into()),
            BridgePayloadError::Envelope(_)
        ));
        assert!(matches!(
            with(&|w| w["stream_message"] = BASE64.encode(b"\xff").into()),
            BridgePayloadError::StreamMessage(_)
        ));
        let mut other = envelope();
        other.content.push(0);
        assert_eq!(
            with(&|w| w["stream_message"] = BASE64.encode(other.to_streamr_bytes()).into()),
            BridgePayloadError::Mismatch
        );
        assert_eq!(
            with(&|w| w["stream_id"] = "0x2/x".into()),
            BridgePayloadError::WrongField("stream_id")
        );
        assert_eq!(
            with(&|w| w["partition"] = 4.into()),
            BridgePayloadError::WrongField("partition")
        );
        assert_eq!(
            with(&|w| w["message_id"] = "00".repeat(20).into()),
            BridgePayloadError::WrongField("message_id")
        );
    }
}
