//! Gossip protocol constants shared by the SDK (publisher) and the verifier
//! (subscriber): topic names and the content-addressed message id
//! (DESIGN.md §5).
//!
//! Pure functions with no libp2p dependency, so every implementation (and
//! every language) can reproduce them: a message id is
//! `blake3(MESSAGE_ID_DOMAIN ‖ u64_le(len(topic)) ‖ topic ‖ data)[..20]`.
//! Because the id depends only on the topic and the bytes, the same envelope
//! published twice (or by two peers) is the same gossip message, and is
//! deduplicated by gossipsub's seen cache.

use crate::limits::{MAX_ENVELOPE_BYTES, MAX_PARTITIONS};

/// Prefix of every telemetry topic; the partition number follows.
pub const TELEMETRY_TOPIC_PREFIX: &str = "/vouch/1/telemetry/";

/// The control topic: revocations and checkpoints (never rate-limited).
pub const CONTROL_TOPIC: &str = "/vouch/1/control";

/// Domain separator of gossip message ids, so they can never collide with
/// another blake3 use in the protocol.
pub const MESSAGE_ID_DOMAIN: &[u8] = b"vouch/1/gossip-msg-id";

/// gossipsub's `max_transmit_size`: the largest RPC frame a node accepts.
///
/// gossipsub applies this limit to the whole protobuf RPC (topic, framing and
/// data), not to the data alone, so it is the envelope limit plus headroom:
/// an envelope of exactly [`MAX_ENVELOPE_BYTES`] must still fit in one frame.
/// Publishers enforce [`MAX_ENVELOPE_BYTES`] on the data themselves.
pub const GOSSIP_MAX_TRANSMIT_SIZE: usize = MAX_ENVELOPE_BYTES + 1024;

/// Length of a gossip message id, in bytes (as Ethereum consensus clients use).
pub const MESSAGE_ID_LEN: usize = 20;

/// The gossip topic of telemetry `partition`: `/vouch/1/telemetry/<partition>`.
pub fn telemetry_topic(partition: u32) -> String {
    format!("{TELEMETRY_TOPIC_PREFIX}{partition}")
}

/// The partition a telemetry topic names, or `None` for any other topic
/// (including non-canonical spellings such as `07` and partitions ≥ 100).
pub fn telemetry_partition(topic: &str) -> Option<u32> {
    let digits = topic.strip_prefix(TELEMETRY_TOPIC_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    let partition: u32 = digits.parse().ok()?;
    (partition < MAX_PARTITIONS).then_some(partition)
}

/// The content-addressed gossip message id of `data` published on `topic`:
/// `blake3(MESSAGE_ID_DOMAIN ‖ u64_le(len(topic)) ‖ topic ‖ data)[..20]`.
/// The topic is length-prefixed (8 bytes, little-endian, as in the Ethereum
/// consensus gossip spec) so that no (topic, data) split is ambiguous.
pub fn message_id(topic: &str, data: &[u8]) -> [u8; MESSAGE_ID_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(MESSAGE_ID_DOMAIN);
    hasher.update(&(topic.len() as u64).to_le_bytes());
    hasher.update(topic.as_bytes());
    hasher.update(data);
    let hash = hasher.finalize();
    let mut id = [0u8; MESSAGE_ID_LEN];
    id.copy_from_slice(&hash.as_bytes()[..MESSAGE_ID_LEN]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert_eq!(telemetry_topic(0), "/vouch/1/telemetry/0");
        assert_eq!(telemetry_topic(99), "/vouch/1/telemetry/99");
        assert_eq!(CONTROL_TOPIC, "/vouch/1/control");
    }

    #[test]
    fn partition_round_trip() {
        for p in 0..MAX_PARTITIONS {
            assert_eq!(telemetry_partition(&telemetry_topic(p)), Some(p));
        }
        for bad in [
            "/vouch/1/telemetry/",
            "/vouch/1/telemetry/07",
            "/vouch/1/telemetry/100",
            "/vouch/1/telemetry/+1",
            "/vouch/1/telemetry/1a",
            "/vouch/1/control",
            "/vouch/2/telemetry/1",
        ] {
            assert_eq!(telemetry_partition(bad), None, "{bad}");
        }
    }

    #[test]
    fn message_id_is_domain_separated_and_length_prefixed() {
        let id = message_id("/vouch/1/telemetry/1", b"abc");
        assert_eq!(id, message_id("/vouch/1/telemetry/1", b"abc"));
        // Same concatenation, different split: must differ.
        assert_ne!(id, message_id("/vouch/1/telemetry/1a", b"bc"));
        assert_ne!(id, message_id("/vouch/1/telemetry/2", b"abc"));
        // Pin the construction.
        let mut h = blake3::Hasher::new();
        h.update(b"vouch/1/gossip-msg-id");
        h.update(&20u64.to_le_bytes());
        h.update(b"/vouch/1/telemetry/1");
        h.update(b"abc");
        assert_eq!(&id[..], &h.finalize().as_bytes()[..20]);
    }
}
