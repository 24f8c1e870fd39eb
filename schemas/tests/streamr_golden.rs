//! Streamr's published golden vector must reproduce byte for byte:
//! signature payload, EIP-191 hash, signature, and protobuf encoding.
#![allow(clippy::unwrap_used)]

use k256::ecdsa::SigningKey;
use prost::Message;
use serde_json::Value;
use vouch_schema::streamr::{ProtoBody, StreamMessage};
use vouch_schema::{Address, Envelope, MessageId, MessageRef, crypto};

fn vector() -> Value {
    let text = include_str!("../vectors/streamr-signature.json");
    serde_json::from_str(text).unwrap()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap().to_owned()
}

fn golden_envelope(v: &Value) -> Envelope {
    Envelope {
        id: MessageId {
            stream_id: s(v, "stream_id"),
            partition: v["partition"].as_u64().unwrap() as u32,
            timestamp: v["timestamp"].as_u64().unwrap(),
            seq: v["seq"].as_u64().unwrap() as u32,
            publisher: s(v, "publisher").parse().unwrap(),
            msg_chain_id: s(v, "msg_chain_id"),
        },
        prev: Some(MessageRef {
            timestamp: v["prev"][0].as_u64().unwrap(),
            seq: v["prev"][1].as_u64().unwrap() as u32,
        }),
        content: s(v, "content_utf8").into_bytes(),
        signature: vouch_schema::Signature(
            hex::decode(s(v, "signature")).unwrap().try_into().unwrap(),
        ),
    }
}

fn key(v: &Value) -> SigningKey {
    let bytes = hex::decode(s(v, "private_key").trim_start_matches("0x")).unwrap();
    SigningKey::from_slice(&bytes).unwrap()
}

#[test]
fn payload_hash_and_signature_match_streamr() {
    let v = vector();
    let env = golden_envelope(&v);
    assert_eq!(env.signature_payload(), s(&v, "payload_utf8").into_bytes());
    assert_eq!(hex::encode(env.signing_hash()), s(&v, "eip191_hash"));
    env.verify().unwrap();

    // RFC 6979 makes signing deterministic: re-signing gives Streamr's bytes.
    let resigned = Envelope::sign(env.id.clone(), env.prev, env.content.clone(), &key(&v)).unwrap();
    assert_eq!(hex::encode(resigned.signature.0), s(&v, "signature"));
    assert_eq!(resigned, env);
}

#[test]
fn tampering_breaks_the_golden_signature() {
    let v = vector();
    let mut env = golden_envelope(&v);
    env.content[2] ^= 1;
    assert!(env.verify().is_err());
    let mut env = golden_envelope(&v);
    env.id.seq = 1;
    assert!(env.verify().is_err());
    let mut env = golden_envelope(&v);
    env.prev = None;
    assert!(env.verify().is_err());
}

#[test]
fn golden_protobuf_round_trips_byte_for_byte() {
    let v = vector();
    let bytes = hex::decode(s(&v, "stream_message_hex")).unwrap();
    let msg = StreamMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.encode_to_vec(), bytes);

    let id = msg.message_id.as_ref().unwrap();
    assert_eq!(id.stream_id, s(&v, "stream_id"));
    assert_eq!(id.timestamp as u64, v["timestamp"].as_u64().unwrap());
    assert_eq!(Address::from_slice(&id.publisher_id).unwrap().to_string(), s(&v, "publisher"));
    assert_eq!(hex::encode(&msg.signature), s(&v, "signature"));
    let Some(ProtoBody::ContentMessage(body)) = &msg.body else { panic!("not content") };
    assert_eq!(body.content, s(&v, "content_utf8").into_bytes());
    // The golden message carries JSON content, which a Vouch envelope never does.
    assert!(Envelope::from_streamr_bytes(&bytes).is_err());
}

#[test]
fn envelope_transcodes_to_streamr_and_back_keeping_the_signature() {
    let v = vector();
    let key = key(&v);
    let id = MessageId {
        stream_id: format!("{}/livepeer/telemetry", crypto::address_of(key.verifying_key())),
        partition: 7,
        timestamp: 1_764_000_000_123,
        seq: 3,
        publisher: Address::ZERO,
        msg_chain_id: "a1b2c3d4e5f6g7h8i9j0".into(),
    };
    let prev = Some(MessageRef { timestamp: 1_764_000_000_123, seq: 2 });
    let env = Envelope::sign(id, prev, vec![0xa0, 1, 2, 3], &key).unwrap();
    let proto = env.to_streamr_bytes();
    let back = Envelope::from_streamr_bytes(&proto).unwrap();
    assert_eq!(back, env);
    back.verify().unwrap();
    assert_eq!(back.to_streamr_bytes(), proto);
    assert_eq!(Envelope::decode(&back.encode()).unwrap(), env);
}
