//! The envelope codec: round trips, strictness, and one error per malformed case.
#![allow(clippy::unwrap_used)]

use ciborium::Value;
use k256::ecdsa::SigningKey;
use proptest::prelude::*;
use vouch_schema::cbor::{self, CborError, Malformed, MapError};
use vouch_schema::limits::MAX_ENVELOPE_BYTES;
use vouch_schema::{Address, Envelope, EnvelopeError, MessageId, MessageRef};

fn key() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn sample() -> Envelope {
    let id = MessageId {
        stream_id: "0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1/livepeer/telemetry".into(),
        partition: 3,
        timestamp: 1_764_000_000_000,
        seq: 1,
        publisher: Address::ZERO,
        msg_chain_id: "chain-a".into(),
    };
    let prev = Some(MessageRef { timestamp: 1_764_000_000_000, seq: 0 });
    Envelope::sign(id, prev, b"content".to_vec(), &key()).unwrap()
}

/// The sample's CBOR map with one entry replaced (or removed when `value` is None).
fn with_field(k: u64, value: Option<Value>) -> Vec<u8> {
    let Value::Map(mut entries) =
        ciborium::from_reader::<Value, _>(&sample().encode()[..]).unwrap()
    else {
        unreachable!()
    };
    entries.retain(|(key, _)| *key != Value::Integer(k.into()));
    if let Some(v) = value {
        entries.push((Value::Integer(k.into()), v));
    }
    cbor::to_vec(&Value::Map(entries))
}

#[test]
fn encodes_with_keys_in_order_and_decodes_back() {
    let env = sample();
    let bytes = env.encode();
    assert_eq!(bytes[0], 0xaa, "a map of 10 entries");
    assert_eq!(Envelope::decode(&bytes).unwrap(), env);
    env.verify().unwrap();
}

#[test]
fn each_malformed_case_has_its_own_error() {
    use EnvelopeError as E;
    let text = |s: &str| Some(Value::Text(s.into()));
    let uint = |n: u64| Some(Value::Integer(n.into()));
    let cases: Vec<(Vec<u8>, EnvelopeError)> = vec![
        (vec![0; MAX_ENVELOPE_BYTES + 1], E::Oversize(MAX_ENVELOPE_BYTES + 1)),
        (
            vec![0xff],
            E::Cbor(CborError::Malformed(Malformed::At { what: "unexpected break", at: 0 })),
        ),
        ([sample().encode(), vec![0]].concat(), E::Cbor(CborError::TrailingBytes)),
        (vec![0x18, 0x05], E::Cbor(CborError::NonCanonical)),
        (vec![0x01], E::Structure(MapError::NotAMap)),
        (with_field(10, uint(1)), E::Structure(MapError::UnknownKey(10))),
        (
            cbor::to_vec(&Value::Map(vec![(Value::Text("a".into()), Value::Null)])),
            E::Structure(MapError::BadKey),
        ),
        (with_field(1, None), E::Missing("stream_id")),
        (with_field(3, text("now")), E::WrongType("timestamp")),
        (
            with_field(5, Some(Value::Bytes(vec![1; 19]))),
            E::WrongLength { field: "publisher", expected: 20, actual: 19 },
        ),
        (
            with_field(9, Some(Value::Bytes(vec![1; 64]))),
            E::WrongLength { field: "signature", expected: 65, actual: 64 },
        ),
        (with_field(0, uint(2)), E::Version(2)),
        (with_field(2, uint(100)), E::Partition(100)),
        (with_field(4, uint(1 << 31)), E::OutOfRange("seq")),
        (with_field(3, uint(1 << 63)), E::OutOfRange("timestamp")),
        (with_field(1, text("0xABC/livepeer")), E::StreamId("0xABC/livepeer".into())),
        (with_field(6, text("")), E::MsgChainId),
        (with_field(6, text(&"x".repeat(33))), E::MsgChainId),
        (
            with_field(
                7,
                Some(Value::Array(vec![
                    Value::Integer(1_764_000_000_000u64.into()),
                    Value::Integer(1.into()),
                ])),
            ),
            E::PrevNotBefore,
        ),
        (with_field(7, uint(5)), E::WrongType("prev")),
    ];
    for (bytes, expected) in cases {
        let got = Envelope::decode(&bytes).unwrap_err();
        match (&got, &expected) {
            (E::Cbor(CborError::Malformed(_)), E::Cbor(CborError::Malformed(_))) => {}
            _ => assert_eq!(got, expected),
        }
        // Every error has a human-readable message.
        assert!(!got.to_string().is_empty());
    }
}

#[test]
fn signing_refuses_what_decoding_would_refuse() {
    let mut id = sample().id;
    id.partition = 100;
    assert_eq!(Envelope::sign(id, None, vec![], &key()), Err(EnvelopeError::Partition(100)));
    let id = sample().id;
    let huge = vec![0u8; MAX_ENVELOPE_BYTES];
    assert!(matches!(Envelope::sign(id, None, huge, &key()), Err(EnvelopeError::Oversize(_))));
}

#[test]
fn signature_is_bound_to_every_field() {
    let env = sample();
    type Mutation = Box<dyn Fn(&mut Envelope)>;
    let mutations: Vec<Mutation> = vec![
        Box::new(|e| e.id.stream_id.push('x')),
        Box::new(|e| e.id.partition += 1),
        Box::new(|e| e.id.timestamp += 1),
        Box::new(|e| e.id.seq += 1),
        Box::new(|e| e.id.msg_chain_id.push('x')),
        Box::new(|e| e.prev = None),
        Box::new(|e| e.content.push(0)),
        Box::new(|e| e.id.publisher = Address([9; 20])),
    ];
    for m in mutations {
        let mut e = env.clone();
        m(&mut e);
        assert!(e.verify().is_err());
        assert!(e.verify_with_key(key().verifying_key()).is_err());
    }
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        "[a-z0-9]{1,20}\\.eth/[a-zA-Z0-9_./-]{1,40}",
        0u32..100,
        0u64..=(i64::MAX as u64),
        0u32..=(i32::MAX as u32),
        "[0-9a-zA-Z]{1,32}",
        proptest::option::of((0u64..=(i64::MAX as u64), 0u32..=(i32::MAX as u32))),
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<[u8; 32]>(),
    )
        .prop_filter_map(
            "prev must precede",
            |(stream_id, partition, ts, seq, chain, prev, content, sk)| {
                let key = SigningKey::from_slice(&sk).ok()?;
                let prev = prev.map(|(t, s)| MessageRef { timestamp: t, seq: s });
                if prev.is_some_and(|p| p >= MessageRef { timestamp: ts, seq }) {
                    return None;
                }
                let id = MessageId {
                    stream_id,
                    partition,
                    timestamp: ts,
                    seq,
                    publisher: Address::ZERO,
                    msg_chain_id: chain,
                };
                Envelope::sign(id, prev, content, &key).ok()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trips_through_cbor_and_streamr(env in arb_envelope()) {
        let bytes = env.encode();
        let back = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &env);
        prop_assert!(back.verify().is_ok());
        let via_streamr = Envelope::from_streamr_bytes(&env.to_streamr_bytes()).unwrap();
        prop_assert_eq!(via_streamr, env);
    }

    /// Signing several at once (their payloads hashed side by side) gives
    /// each exactly what signing it alone gives, refusals included; the
    /// contents vary in length, as hashing groups them by it.
    #[test]
    fn signing_several_at_once_is_signing_each(
        envs in proptest::collection::vec(arb_envelope(), 0..12),
        refuse in proptest::collection::vec(0u8..3, 12),
    ) {
        let key = key();
        let unsigned: Vec<_> = envs
            .into_iter()
            .zip(refuse)
            .map(|(e, r)| {
                let mut id = e.id;
                let mut content = e.content;
                match r {
                    1 => id.partition = 100,
                    2 if content.len() % 2 == 0 => content = vec![1; MAX_ENVELOPE_BYTES],
                    _ => content.extend_from_slice(&[5; 3000]),
                }
                (id, e.prev, content)
            })
            .collect();
        let each: Vec<_> = unsigned
            .iter()
            .map(|(id, prev, content)| Envelope::sign(id.clone(), *prev, content.clone(), &key))
            .collect();
        prop_assert_eq!(Envelope::sign_all(unsigned, &key), each);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::decode(&bytes);
        let _ = Envelope::from_streamr_bytes(&bytes);
        let _ = cbor::from_slice(&bytes);
    }

    #[test]
    fn flipped_bytes_are_rejected_or_fail_verification(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let env = sample();
        let mut bytes = env.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(decoded) = Envelope::decode(&bytes) {
            prop_assert!(decoded.verify().is_err());
        }
    }
}
