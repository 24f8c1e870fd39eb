//! The envelope: one signed message (DESIGN.md §3.1).
//!
//! Identity, numbering and signature are Streamr's, so an envelope's
//! signature is a valid Streamr `ECDSA_SECP256K1_EVM` signature and the
//! envelope transcodes to Streamr's `StreamMessage` without re-signing
//! ([`crate::streamr`]).

use ciborium::Value;
use k256::ecdsa::{SigningKey, VerifyingKey};

use crate::Address;
use crate::cbor::{self, CborError, MapError};
use crate::crypto::{self, Signature, SignatureError};
use crate::limits::{MAX_ENVELOPE_BYTES, MAX_MSG_CHAIN_ID, MAX_PARTITIONS};

/// The only envelope version this crate reads and writes.
pub const ENVELOPE_VERSION: u64 = 1;

/// Longest stream id accepted, in bytes (Streamr's registry allows far less in practice).
pub const MAX_STREAM_ID: usize = 255;

/// Integer keys of the envelope map. They never change meaning.
mod key {
    pub(super) const VERSION: u64 = 0;
    pub(super) const STREAM_ID: u64 = 1;
    pub(super) const PARTITION: u64 = 2;
    pub(super) const TIMESTAMP: u64 = 3;
    pub(super) const SEQ: u64 = 4;
    pub(super) const PUBLISHER: u64 = 5;
    pub(super) const MSG_CHAIN_ID: u64 = 6;
    pub(super) const PREV: u64 = 7;
    pub(super) const CONTENT: u64 = 8;
    pub(super) const SIGNATURE: u64 = 9;
    pub(super) const ALL: [u64; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
}

/// A position in a message chain: Streamr's `MessageRef`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageRef {
    /// Publisher clock, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Sequence number within `timestamp`, from 0.
    pub seq: u32,
}

/// Who sent a message, where, and its place in the sender's chain:
/// Streamr's `MessageID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId {
    /// Streamr stream id; for Vouch `0x<principal>/livepeer/telemetry`.
    pub stream_id: String,
    /// Stream partition, `0..100`.
    pub partition: u32,
    /// Publisher clock, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Sequence number: resets to 0 whenever `timestamp` changes.
    pub seq: u32,
    /// The signing (delegate) address.
    pub publisher: Address,
    /// One chain per publisher process and partition.
    pub msg_chain_id: String,
}

impl MessageId {
    /// This message's own position, for the next message's `prev`.
    pub fn as_ref(&self) -> MessageRef {
        MessageRef { timestamp: self.timestamp, seq: self.seq }
    }
}

/// One signed message. Decoding checks structure only; whether the
/// signature is right is a separate, explicit step ([`Envelope::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Identity and numbering.
    pub id: MessageId,
    /// The previous message in this chain, absent for a chain's first.
    pub prev: Option<MessageRef>,
    /// The signed content: a CBOR [`crate::batch::TelemetryBatch`] for Vouch.
    pub content: Vec<u8>,
    /// `r ‖ s ‖ v` over the Streamr signature payload.
    pub signature: Signature,
}

/// Why bytes are not a well-formed envelope. Each malformed case has its own
/// variant so verifiers can count rejections by reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Larger than [`MAX_ENVELOPE_BYTES`] (checked before any decoding).
    #[error("envelope is {0} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit")]
    Oversize(usize),
    /// Not deterministic CBOR.
    #[error("envelope CBOR: {0}")]
    Cbor(#[from] CborError),
    /// Not a map with known integer keys.
    #[error("envelope structure: {0}")]
    Structure(#[from] MapError),
    /// A required field is absent.
    #[error("envelope field {0} is missing")]
    Missing(&'static str),
    /// A field has the wrong CBOR type.
    #[error("envelope field {0} has the wrong type")]
    WrongType(&'static str),
    /// A fixed-size byte field has the wrong length.
    #[error("envelope field {field} must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// Its required length.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A number outside what Streamr's protobuf can carry.
    #[error("envelope field {0} is out of range")]
    OutOfRange(&'static str),
    /// A version other than [`ENVELOPE_VERSION`].
    #[error("unsupported envelope version {0}")]
    Version(u64),
    /// Partition not in `0..100`.
    #[error("partition {0} is not in 0..{MAX_PARTITIONS}")]
    Partition(u64),
    /// Not a Streamr stream id.
    #[error("invalid stream id {0:?}")]
    StreamId(String),
    /// Message chain id empty or longer than [`MAX_MSG_CHAIN_ID`].
    #[error("message chain id must be 1 to {MAX_MSG_CHAIN_ID} characters")]
    MsgChainId,
    /// `prev` is not strictly before this message (Streamr's `validateSequence`).
    #[error("previous message ref is not before this message")]
    PrevNotBefore,
}

impl Envelope {
    /// Signs `content` as message `id` with `key`. The publisher field is
    /// set from the key, so an envelope can only be signed as oneself.
    pub fn sign(
        mut id: MessageId,
        prev: Option<MessageRef>,
        content: Vec<u8>,
        key: &SigningKey,
    ) -> Result<Envelope, EnvelopeError> {
        id.publisher = crypto::address_of(key.verifying_key());
        let mut env = Envelope { id, prev, content, signature: Signature([0; 65]) };
        env.check_fields()?;
        env.signature = Signature::sign_prehash(key, &env.signing_hash());
        let len = env.encoded_len();
        if len > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::Oversize(len));
        }
        Ok(env)
    }

    /// [`Envelope::sign`] for several messages of one key, their signature
    /// payloads hashed side by side ([`Envelope::signing_hashes`]): a
    /// publisher that seals several batches at once pays Keccak over their
    /// contents at the SIMD lanes' rate rather than one stream at a time.
    /// `out[i]` is exactly what `sign` returns for `unsigned[i]`.
    pub fn sign_all(
        unsigned: Vec<(MessageId, Option<MessageRef>, Vec<u8>)>,
        key: &SigningKey,
    ) -> Vec<Result<Envelope, EnvelopeError>> {
        let publisher = crypto::address_of(key.verifying_key());
        let mut out: Vec<Result<Envelope, EnvelopeError>> = unsigned
            .into_iter()
            .map(|(mut id, prev, content)| {
                id.publisher = publisher;
                let env = Envelope { id, prev, content, signature: Signature([0; 65]) };
                env.check_fields().map(|()| env)
            })
            .collect();
        let hashes = Envelope::signing_hashes(&out.iter().flatten().collect::<Vec<_>>());
        for (env, hash) in out.iter_mut().flatten().zip(hashes) {
            env.signature = Signature::sign_prehash(key, &hash);
        }
        for slot in &mut out {
            if let Ok(env) = slot {
                let len = env.encoded_len();
                if len > MAX_ENVELOPE_BYTES {
                    *slot = Err(EnvelopeError::Oversize(len));
                }
            }
        }
        out
    }

    /// Streamr's `createSignaturePayload` for a MESSAGE:
    /// `stream_id ‖ partition ‖ timestamp ‖ seq ‖ 0x<publisher> ‖ msg_chain_id
    /// ‖ [prev.timestamp ‖ prev.seq]` as UTF-8 (unpadded decimals, no
    /// separators), then the raw content bytes.
    pub fn signature_payload(&self) -> Vec<u8> {
        let mut out = self.signature_header();
        out.reserve_exact(self.content.len());
        out.extend_from_slice(&self.content);
        out
    }

    /// The part of the signature payload before the content.
    fn signature_header(&self) -> Vec<u8> {
        use std::io::Write;
        let id = &self.id;
        let mut out = Vec::with_capacity(120);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{}{}{}{}{}{}",
            id.stream_id, id.partition, id.timestamp, id.seq, id.publisher, id.msg_chain_id
        );
        if let Some(prev) = self.prev {
            let _ = write!(out, "{}{}", prev.timestamp, prev.seq);
        }
        out
    }

    /// The EIP-191 digest that is signed: the header and the content are
    /// hashed in turn, without copying the content (a batch's tens of KB)
    /// into one payload first.
    pub fn signing_hash(&self) -> [u8; 32] {
        crypto::eip191_hash_parts(&[&self.signature_header(), &self.content])
    }

    /// [`Envelope::signing_hash`] of each envelope, hashed several at a time
    /// ([`crypto::keccak256_batch`]): what a verifier computes for a group of
    /// received envelopes. The digests are those `signing_hash` gives.
    pub fn signing_hashes(envelopes: &[&Envelope]) -> Vec<[u8; 32]> {
        let headers: Vec<Vec<u8>> = envelopes.iter().map(|e| e.signature_header()).collect();
        let parts: Vec<[&[u8]; 2]> =
            envelopes.iter().zip(&headers).map(|(e, h)| [h.as_slice(), &e.content]).collect();
        let payloads: Vec<&[&[u8]]> = parts.iter().map(|p| p.as_slice()).collect();
        crypto::eip191_hashes(&payloads)
    }

    /// Checks that the publisher signed this envelope, by key recovery.
    pub fn verify(&self) -> Result<(), SignatureError> {
        self.signature.verify_address(self.id.publisher, &self.signing_hash())
    }

    /// Checks the signature against the publisher's known public key:
    /// cheaper than recovery, for verifiers that cache delegate keys.
    pub fn verify_with_key(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        let expected = crypto::address_of(key);
        if expected != self.id.publisher {
            return Err(SignatureError::WrongSigner {
                expected: self.id.publisher,
                actual: expected,
            });
        }
        self.signature.verify_with_key(key, &self.signing_hash())
    }

    /// The deterministic CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let id = &self.id;
        let mut entries = vec![
            (int(key::VERSION), int(ENVELOPE_VERSION)),
            (int(key::STREAM_ID), Value::Text(id.stream_id.clone())),
            (int(key::PARTITION), int(u64::from(id.partition))),
            (int(key::TIMESTAMP), int(id.timestamp)),
            (int(key::SEQ), int(u64::from(id.seq))),
            (int(key::PUBLISHER), Value::Bytes(id.publisher.0.to_vec())),
            (int(key::MSG_CHAIN_ID), Value::Text(id.msg_chain_id.clone())),
        ];
        if let Some(prev) = self.prev {
            entries.push((
                int(key::PREV),
                Value::Array(vec![int(prev.timestamp), int(u64::from(prev.seq))]),
            ));
        }
        entries.push((int(key::CONTENT), Value::Bytes(self.content.clone())));
        entries.push((int(key::SIGNATURE), Value::Bytes(self.signature.0.to_vec())));
        cbor::to_vec(&Value::Map(entries))
    }

    /// Length of [`Self::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.encode().len()
    }

    /// Strictly decodes an envelope: size limit first, then deterministic
    /// CBOR, known keys, types, lengths and ranges. Does not check the signature.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::Oversize(bytes.len()));
        }
        let value = cbor::from_slice(bytes)?;
        let mut fields = Fields::default();
        for (k, v) in cbor::int_keyed_map(value, &key::ALL)? {
            fields.0[k as usize] = Some(v);
        }
        let version = fields.uint(key::VERSION, "version")?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(version));
        }
        let partition = fields.uint(key::PARTITION, "partition")?;
        if partition >= u64::from(MAX_PARTITIONS) {
            return Err(EnvelopeError::Partition(partition));
        }
        let id = MessageId {
            stream_id: fields.text(key::STREAM_ID, "stream_id")?,
            partition: partition as u32,
            timestamp: timestamp(fields.uint(key::TIMESTAMP, "timestamp")?, "timestamp")?,
            seq: seq(fields.uint(key::SEQ, "seq")?, "seq")?,
            publisher: Address(fields.fixed::<20>(key::PUBLISHER, "publisher")?),
            msg_chain_id: fields.text(key::MSG_CHAIN_ID, "msg_chain_id")?,
        };
        let prev = match fields.0[key::PREV as usize].take() {
            None => None,
            Some(Value::Array(pair)) => match <[Value; 2]>::try_from(pair) {
                Ok([Value::Integer(t), Value::Integer(s)]) => Some(MessageRef {
                    timestamp: timestamp(
                        u64::try_from(t).map_err(|_| EnvelopeError::OutOfRange("prev"))?,
                        "prev",
                    )?,
                    seq: seq(
                        u64::try_from(s).map_err(|_| EnvelopeError::OutOfRange("prev"))?,
                        "prev",
                    )?,
                }),
                _ => return Err(EnvelopeError::WrongType("prev")),
            },
            Some(_) => return Err(EnvelopeError::WrongType("prev")),
        };
        let content = fields.bytes(key::CONTENT, "content")?;
        let signature = Signature(fields.fixed::<65>(key::SIGNATURE, "signature")?);
        let env = Envelope { id, prev, content, signature };
        env.check_fields()?;
        Ok(env)
    }

    /// Field rules shared by signing and decoding.
    fn check_fields(&self) -> Result<(), EnvelopeError> {
        let id = &self.id;
        check_stream_id(&id.stream_id)?;
        if id.partition >= MAX_PARTITIONS {
            return Err(EnvelopeError::Partition(u64::from(id.partition)));
        }
        timestamp(id.timestamp, "timestamp")?;
        seq(u64::from(id.seq), "seq")?;
        let chain_len = id.msg_chain_id.chars().count();
        if chain_len == 0 || chain_len > MAX_MSG_CHAIN_ID {
            return Err(EnvelopeError::MsgChainId);
        }
        if let Some(prev) = self.prev {
            timestamp(prev.timestamp, "prev")?;
            seq(u64::from(prev.seq), "prev")?;
            if prev >= id.as_ref() {
                return Err(EnvelopeError::PrevNotBefore);
            }
        }
        Ok(())
    }
}

/// Checks a Streamr stream id: `<domain><path>` where the domain is a
/// lowercase `0x` address or ENS name and the path starts with `/` and uses
/// only `- . / 0-9 A-Z a-z _` (Streamr's StreamRegistry rule).
pub fn check_stream_id(s: &str) -> Result<(), EnvelopeError> {
    let bad = || EnvelopeError::StreamId(s.chars().take(80).collect());
    if s.is_empty() || s.len() > MAX_STREAM_ID {
        return Err(bad());
    }
    let (domain, path) = s.split_at(s.find('/').ok_or_else(bad)?);
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        && (domain.contains('.') || (domain.len() == 42 && domain.starts_with("0x")));
    let path_ok =
        path.len() > 1 && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-./_".contains(&b));
    if domain_ok && path_ok { Ok(()) } else { Err(bad()) }
}

/// Streamr's protobuf carries timestamps as int64.
fn timestamp(v: u64, field: &'static str) -> Result<u64, EnvelopeError> {
    if v > i64::MAX as u64 { Err(EnvelopeError::OutOfRange(field)) } else { Ok(v) }
}

/// Streamr's protobuf carries sequence numbers as int32.
fn seq(v: u64, field: &'static str) -> Result<u32, EnvelopeError> {
    u32::try_from(v).ok().filter(|s| *s <= i32::MAX as u32).ok_or(EnvelopeError::OutOfRange(field))
}

fn int(v: u64) -> Value {
    Value::Integer(v.into())
}

/// Decoded map values indexed by key.
#[derive(Default)]
struct Fields([Option<Value>; 10]);

impl Fields {
    fn take(&mut self, k: u64, name: &'static str) -> Result<Value, EnvelopeError> {
        self.0[k as usize].take().ok_or(EnvelopeError::Missing(name))
    }

    fn uint(&mut self, k: u64, name: &'static str) -> Result<u64, EnvelopeError> {
        match self.take(k, name)? {
            Value::Integer(i) => u64::try_from(i).map_err(|_| EnvelopeError::OutOfRange(name)),
            _ => Err(EnvelopeError::WrongType(name)),
        }
    }

    fn text(&mut self, k: u64, name: &'static str) -> Result<String, EnvelopeError> {
        match self.take(k, name)? {
            Value::Text(t) => Ok(t),
            _ => Err(EnvelopeError::WrongType(name)),
        }
    }

    fn bytes(&mut self, k: u64, name: &'static str) -> Result<Vec<u8>, EnvelopeError> {
        match self.take(k, name)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(EnvelopeError::WrongType(name)),
        }
    }

    fn fixed<const N: usize>(
        &mut self,
        k: u64,
        name: &'static str,
    ) -> Result<[u8; N], EnvelopeError> {
        let b = self.bytes(k, name)?;
        let actual = b.len();
        <[u8; N]>::try_from(b).map_err(|_| EnvelopeError::WrongLength {
            field: name,
            expected: N,
            actual,
        })
    }
}
