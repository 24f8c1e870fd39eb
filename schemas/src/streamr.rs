//! Streamr compatibility: the protobuf `StreamMessage` and partition keys.
//!
//! The messages mirror `NetworkRpc.proto` of the Streamr network (1.0,
//! SDK 100–103; see `shared/reference/streamr.md`), written by hand from its
//! field numbers so no protobuf compiler is needed. An [`Envelope`]
//! transcodes to a `StreamMessage` with content type BINARY and back, and the
//! publisher's signature carries over unchanged.

use md5::{Digest, Md5};
use prost::Message;

use crate::envelope::{Envelope, EnvelopeError, MessageId, MessageRef};
use crate::{Address, Signature};

/// Streamr's `SignatureType.ECDSA_SECP256K1_EVM`, the scheme Vouch signs with.
pub const SIGNATURE_TYPE_EVM: i32 = 1;
/// Streamr's `ContentType.BINARY`.
pub const CONTENT_TYPE_BINARY: i32 = 1;
/// Streamr's `EncryptionType.NONE`.
pub const ENCRYPTION_NONE: i32 = 0;

/// `MessageID` (NetworkRpc.proto).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoMessageId {
    /// `string streamId = 1`
    #[prost(string, tag = "1")]
    pub stream_id: String,
    /// `int32 streamPartition = 2`
    #[prost(int32, tag = "2")]
    pub stream_partition: i32,
    /// `int64 timestamp = 3`
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
    /// `int32 sequenceNumber = 4`
    #[prost(int32, tag = "4")]
    pub sequence_number: i32,
    /// `bytes publisherId = 5`
    #[prost(bytes = "vec", tag = "5")]
    pub publisher_id: Vec<u8>,
    /// `string messageChainId = 6`
    #[prost(string, tag = "6")]
    pub message_chain_id: String,
}

/// `MessageRef` (NetworkRpc.proto).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoMessageRef {
    /// `int64 timestamp = 1`
    #[prost(int64, tag = "1")]
    pub timestamp: i64,
    /// `int32 sequenceNumber = 2`
    #[prost(int32, tag = "2")]
    pub sequence_number: i32,
}

/// `EncryptedGroupKey` (NetworkRpc.proto).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoEncryptedGroupKey {
    /// `string id = 1`
    #[prost(string, tag = "1")]
    pub id: String,
    /// `bytes data = 2`
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// `ContentMessage` (NetworkRpc.proto).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoContentMessage {
    /// `bytes content = 1`
    #[prost(bytes = "vec", tag = "1")]
    pub content: Vec<u8>,
    /// `ContentType contentType = 2` (JSON = 0, BINARY = 1)
    #[prost(int32, tag = "2")]
    pub content_type: i32,
    /// `EncryptionType encryptionType = 3` (NONE = 0, AES = 1)
    #[prost(int32, tag = "3")]
    pub encryption_type: i32,
    /// `optional string groupKeyId = 4`
    #[prost(string, optional, tag = "4")]
    pub group_key_id: Option<String>,
    /// `optional EncryptedGroupKey newGroupKey = 5`
    #[prost(message, optional, tag = "5")]
    pub new_group_key: Option<ProtoEncryptedGroupKey>,
}

/// The `StreamMessage` body oneof. Group-key messages are carried as raw
/// bytes: Vouch never produces them, but a bridge must not lose them.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ProtoBody {
    /// `ContentMessage contentMessage = 5`
    #[prost(message, tag = "5")]
    ContentMessage(ProtoContentMessage),
    /// `GroupKeyRequest groupKeyRequest = 6`, undecoded.
    #[prost(bytes, tag = "6")]
    GroupKeyRequest(Vec<u8>),
    /// `GroupKeyResponse groupKeyResponse = 7`, undecoded.
    #[prost(bytes, tag = "7")]
    GroupKeyResponse(Vec<u8>),
}

/// `StreamMessage` (NetworkRpc.proto).
#[derive(Clone, PartialEq, Message)]
pub struct StreamMessage {
    /// `MessageID messageId = 1`
    #[prost(message, optional, tag = "1")]
    pub message_id: Option<ProtoMessageId>,
    /// `optional MessageRef previousMessageRef = 2`
    #[prost(message, optional, tag = "2")]
    pub previous_message_ref: Option<ProtoMessageRef>,
    /// `bytes signature = 3`
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
    /// `SignatureType signatureType = 4`
    #[prost(int32, tag = "4")]
    pub signature_type: i32,
    /// `oneof body`
    #[prost(oneof = "ProtoBody", tags = "5, 6, 7")]
    pub body: Option<ProtoBody>,
}

/// Why a Streamr message is not a Vouch envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamrError {
    /// Not a protobuf `StreamMessage`.
    #[error("not a Streamr StreamMessage: {0}")]
    Protobuf(#[source] prost::DecodeError),
    /// Larger than an envelope may be.
    #[error("StreamMessage is {0} bytes, over the limit")]
    Oversize(usize),
    /// No `messageId`.
    #[error("StreamMessage has no messageId")]
    NoMessageId,
    /// A signature scheme other than `ECDSA_SECP256K1_EVM`.
    #[error("signature type {0} is not ECDSA_SECP256K1_EVM (1)")]
    SignatureType(i32),
    /// A group-key message, or no body.
    #[error("StreamMessage is not a content message")]
    NotContent,
    /// JSON content, encryption or group keys: not a Vouch envelope.
    #[error("content must be BINARY, unencrypted and without group keys")]
    ContentKind,
    /// A negative number where Vouch needs an unsigned one.
    #[error("StreamMessage field {0} is negative")]
    Negative(&'static str),
    /// The fields violate an envelope rule.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl StreamMessage {
    /// Decodes protobuf bytes, refusing anything over `max_len` first.
    pub fn decode_bounded(bytes: &[u8], max_len: usize) -> Result<StreamMessage, StreamrError> {
        if bytes.len() > max_len {
            return Err(StreamrError::Oversize(bytes.len()));
        }
        StreamMessage::decode(bytes).map_err(StreamrError::Protobuf)
    }
}

impl From<&Envelope> for StreamMessage {
    fn from(env: &Envelope) -> StreamMessage {
        let id = &env.id;
        StreamMessage {
            message_id: Some(ProtoMessageId {
                stream_id: id.stream_id.clone(),
                // Envelope invariants keep these within int32/int64.
                stream_partition: id.partition as i32,
                timestamp: id.timestamp as i64,
                sequence_number: id.seq as i32,
                publisher_id: id.publisher.0.to_vec(),
                message_chain_id: id.msg_chain_id.clone(),
            }),
            previous_message_ref: env.prev.map(|p| ProtoMessageRef {
                timestamp: p.timestamp as i64,
                sequence_number: p.seq as i32,
            }),
            signature: env.signature.0.to_vec(),
            signature_type: SIGNATURE_TYPE_EVM,
            body: Some(ProtoBody::ContentMessage(ProtoContentMessage {
                content: env.content.clone(),
                content_type: CONTENT_TYPE_BINARY,
                encryption_type: ENCRYPTION_NONE,
                group_key_id: None,
                new_group_key: None,
            })),
        }
    }
}

impl TryFrom<StreamMessage> for Envelope {
    type Error = StreamrError;

    fn try_from(msg: StreamMessage) -> Result<Envelope, StreamrError> {
        if msg.signature_type != SIGNATURE_TYPE_EVM {
            return Err(StreamrError::SignatureType(msg.signature_type));
        }
        let id = msg.message_id.ok_or(StreamrError::NoMessageId)?;
        let Some(ProtoBody::ContentMessage(body)) = msg.body else {
            return Err(StreamrError::NotContent);
        };
        if body.content_type != CONTENT_TYPE_BINARY
            || body.encryption_type != ENCRYPTION_NONE
            || body.group_key_id.is_some()
            || body.new_group_key.is_some()
        {
            return Err(StreamrError::ContentKind);
        }
        let publisher =
            Address::from_slice(&id.publisher_id).ok_or(EnvelopeError::WrongLength {
                field: "publisher",
                expected: 20,
                actual: id.publisher_id.len(),
            })?;
        let signature = <[u8; 65]>::try_from(msg.signature.as_slice()).map_err(|_| {
            EnvelopeError::WrongLength {
                field: "signature",
                expected: 65,
                actual: msg.signature.len(),
            }
        })?;
        let prev = match msg.previous_message_ref {
            None => None,
            Some(p) => Some(MessageRef {
                timestamp: non_negative(p.timestamp, "previousMessageRef.timestamp")?,
                seq: non_negative(
                    i64::from(p.sequence_number),
                    "previousMessageRef.sequenceNumber",
                )? as u32,
            }),
        };
        let env = Envelope {
            id: MessageId {
                stream_id: id.stream_id,
                partition: non_negative(i64::from(id.stream_partition), "streamPartition")? as u32,
                timestamp: non_negative(id.timestamp, "timestamp")?,
                seq: non_negative(i64::from(id.sequence_number), "sequenceNumber")? as u32,
                publisher,
                msg_chain_id: id.message_chain_id,
            },
            prev,
            content: body.content,
            signature: Signature(signature),
        };
        // Re-run the envelope's own rules (partition range, stream id, chain id, order).
        Envelope::decode(&env.encode())?;
        Ok(env)
    }
}

fn non_negative(v: i64, field: &'static str) -> Result<u64, StreamrError> {
    u64::try_from(v).map_err(|_| StreamrError::Negative(field))
}

impl Envelope {
    /// Streamr protobuf bytes of this envelope (content type BINARY).
    pub fn to_streamr_bytes(&self) -> Vec<u8> {
        StreamMessage::from(self).encode_to_vec()
    }

    /// Reads an envelope from Streamr protobuf bytes.
    pub fn from_streamr_bytes(bytes: &[u8]) -> Result<Envelope, StreamrError> {
        // Protobuf framing adds a few dozen bytes over the CBOR form.
        let msg = StreamMessage::decode_bounded(bytes, crate::limits::MAX_ENVELOPE_BYTES + 256)?;
        Envelope::try_from(msg)
    }
}

/// Streamr's `keyToArrayIndex` for a string key: `|md5(utf8 key) as i32 LE| % n`.
/// `n` of 0 or 1 gives partition 0.
pub fn partition_for_key(partition_count: u32, key: &str) -> u32 {
    if partition_count <= 1 {
        return 0;
    }
    let digest = Md5::digest(key.as_bytes());
    let first = i32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
    first.unsigned_abs() % partition_count
}

/// Streamr's `keyToArrayIndex` for a numeric key: `|k| % n`.
pub fn partition_for_number(partition_count: u32, key: i64) -> u32 {
    if partition_count <= 1 {
        return 0;
    }
    (key.unsigned_abs() % u64::from(partition_count)) as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn published_partition_vectors() {
        // packages/utils/test/keyToArrayIndex.test.ts and streamr.md §4.
        assert_eq!(partition_for_key(100, "foo"), 72);
        assert_eq!(partition_for_number(100, 12345), 45);
        assert_eq!(partition_for_key(10, "foo"), 2);
        assert_eq!(partition_for_key(10, "vehicle-42"), 8);
        assert_eq!(partition_for_key(100, "vehicle-42"), 28);
        assert_eq!(partition_for_key(1, "anything"), 0);
        assert_eq!(partition_for_number(7, -15), 1);
    }
}
