//! Criterion benchmarks of envelope encoding, signing and verification.
//!
//! Envelope costs beside the bare k256 operations they are built on, measured
//! in the same run so the ratio survives a noisy machine.
//!
//! `cargo bench -p vouch-schema --bench envelope`
//!
//! Goals (issue: foundation): encode+sign of a 64-event batch within 1.3× a
//! bare k256 sign; decode+verify within 1.2× a bare verify.

#![allow(missing_docs)] // criterion_group! generates undocumented public items.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use keccak_asm::{Digest, Keccak256};
use std::hint::black_box;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, TelemetryBatch};

/// 64 real go-livepeer events (the 8 fixtures, cycled) and a certificate-sized blob.
fn batch_64() -> TelemetryBatch {
    let text = include_str!("../tests/data/go-livepeer-kafka-samples.json");
    let samples: Vec<serde_json::Value> = serde_json::from_str(text).expect("fixture JSON");
    let events: Vec<Event> = samples
        .iter()
        .cycle()
        .take(64)
        .map(|j| Event::from_kafka_json(j).expect("fixture converts"))
        .collect();
    TelemetryBatch::new(vec![0xab; 190], events)
}

fn id() -> MessageId {
    MessageId {
        stream_id: "0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1/livepeer/telemetry".into(),
        partition: 7,
        timestamp: 1_764_000_000_000,
        seq: 4,
        publisher: Address::ZERO,
        msg_chain_id: "Xb3kq9Zr0PLm4TyW8sDe".into(),
    }
}

fn prev() -> Option<MessageRef> {
    Some(MessageRef { timestamp: 1_764_000_000_000, seq: 3 })
}

fn keccak_eip191(payload: &[u8]) -> Keccak256 {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(payload.len().to_string().as_bytes());
    h.update(payload);
    h
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_slice(&[0x42; 32]).expect("valid scalar");
    let vk = *key.verifying_key();
    let batch = batch_64();
    let content = batch.encode();
    let env = Envelope::sign(id(), prev(), content.clone(), &key).expect("signs");
    let bytes = env.encode();
    let digest = env.signing_hash();
    let payload = env.signature_payload();
    let (sig, recid): (EcdsaSignature, RecoveryId) =
        key.sign_prehash_recoverable(&digest).expect("signs");
    eprintln!(
        "64-event batch: {} bytes of content, {} bytes of envelope",
        content.len(),
        bytes.len()
    );

    let mut g = c.benchmark_group("bare_k256");
    g.bench_function("sign_prehash", |b| {
        b.iter(|| key.sign_prehash_recoverable(black_box(&digest)).expect("signs"))
    });
    g.bench_function("hash_and_sign_payload", |b| {
        b.iter(|| key.sign_digest_recoverable(keccak_eip191(black_box(&payload))).expect("signs"))
    });
    g.bench_function("verify_prehash", |b| {
        b.iter(|| vk.verify_prehash(black_box(&digest), &sig).expect("verifies"))
    });
    g.bench_function("hash_and_verify_payload", |b| {
        b.iter(|| {
            let d: [u8; 32] = keccak_eip191(black_box(&payload)).finalize().into();
            vk.verify_prehash(&d, &sig).expect("verifies")
        })
    });
    g.bench_function("recover_prehash", |b| {
        b.iter(|| {
            VerifyingKey::recover_from_prehash(black_box(&digest), &sig, recid).expect("recovers")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("envelope_64_events");
    g.bench_function("batch_encode", |b| b.iter(|| black_box(&batch).encode()));
    g.bench_function("batch_decode", |b| {
        b.iter(|| TelemetryBatch::decode(black_box(&content)).expect("decodes"))
    });
    g.bench_function("encode", |b| b.iter(|| black_box(&env).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| Envelope::decode(black_box(&bytes)).expect("decodes"))
    });
    g.bench_function("sign", |b| {
        b.iter_batched(
            || content.clone(),
            |content| Envelope::sign(id(), prev(), content, &key).expect("signs"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("sign_and_encode", |b| {
        b.iter_batched(
            || content.clone(),
            |content| Envelope::sign(id(), prev(), content, &key).expect("signs").encode(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_with_known_key", |b| {
        b.iter(|| black_box(&env).verify_with_key(&vk).expect("verifies"))
    });
    g.bench_function("verify_by_recovery", |b| {
        b.iter(|| black_box(&env).verify().expect("verifies"))
    });
    g.bench_function("decode_and_verify_with_known_key", |b| {
        b.iter(|| {
            let e = Envelope::decode(black_box(&bytes)).expect("decodes");
            e.verify_with_key(&vk).expect("verifies")
        })
    });
    g.finish();

    // The signing hashes of eight such envelopes: Keccak over the content
    // one message at a time (keccak-asm), against one message per SIMD lane.
    let lanes = vouch_schema::crypto::batch_lanes();
    let eight: Vec<Envelope> = (0..8u64)
        .map(|n| {
            let mut i = id();
            i.timestamp += n;
            Envelope::sign(i, prev(), content.clone(), &key).expect("signs")
        })
        .collect();
    let headers: Vec<Vec<u8>> = eight.iter().map(|e| e.signature_payload()).collect();
    let parts: Vec<[&[u8]; 1]> = headers.iter().map(|p| [p.as_slice()]).collect();
    let payloads: Vec<&[&[u8]]> = parts.iter().map(|p| p.as_slice()).collect();
    let mut g = c.benchmark_group("keccak_8_envelopes");
    g.bench_function("one_at_a_time", |b| {
        b.iter(|| {
            payloads
                .iter()
                .map(|p| vouch_schema::crypto::eip191_hash_parts(black_box(p)))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function(format!("batch_{lanes}_lanes"), |b| {
        b.iter(|| vouch_schema::crypto::eip191_hashes(black_box(&payloads)))
    });
    g.finish();
}

criterion_group! {
    name = envelope;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(envelope);
