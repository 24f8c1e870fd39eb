//! Certificate verification beside the bare k256 operation it is built on,
//! measured in the same run.
//!
//! `cargo bench -p vouch-delegation --bench certificate`

#![allow(missing_docs)] // criterion_group! generates undocumented public items.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::{SigningKey, VerifyingKey};
use vouch_delegation::{DelegationTerms, Eip712Network, Policy, Role, SignedDelegation};
use vouch_schema::Address;

fn benches(c: &mut Criterion) {
    let principal = SigningKey::from_slice(&[0x11; 32]).expect("valid scalar");
    let terms = DelegationTerms {
        delegate: Address([0x22; 20]),
        role: Role::Gateway,
        region: "FRA".into(),
        not_before: 1_764_000_000,
        not_after: 1_764_000_000 + 30 * 86_400,
        nonce: 1,
    };
    let network = Eip712Network::arbitrum_one();
    let cert = SignedDelegation::issue(&principal, network, terms).expect("issues");
    let bytes = cert.encode();
    let now = 1_764_000_100;
    let digest = cert.signing_hash();
    let sig = k256::ecdsa::Signature::from_slice(&cert.signature.0[..64]).expect("signature");
    let recid = k256::ecdsa::RecoveryId::from_byte(cert.signature.0[64] - 27).expect("v");

    let mut g = c.benchmark_group("certificate");
    g.bench_function("bare_k256_recover_prehash", |b| {
        b.iter(|| {
            VerifyingKey::recover_from_prehash(black_box(&digest), &sig, recid).expect("recovers")
        })
    });
    g.bench_function("eip712_signing_hash", |b| b.iter(|| black_box(&cert).signing_hash()));
    g.bench_function("decode", |b| {
        b.iter(|| SignedDelegation::decode(black_box(&bytes)).expect("decodes"))
    });
    g.bench_function("verify", |b| {
        b.iter(|| black_box(&cert).verify(&network, now, &Policy::default()).expect("verifies"))
    });
    g.bench_function("decode_and_verify", |b| {
        b.iter(|| {
            SignedDelegation::decode(black_box(&bytes))
                .expect("decodes")
                .verify(&network, now, &Policy::default())
                .expect("verifies")
        })
    });
    g.bench_function("cache_key_blake3", |b| b.iter(|| black_box(&cert).hash()));
    g.finish();
}

criterion_group! {
    name = certificate;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(certificate);
