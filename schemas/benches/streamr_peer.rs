//! Peer comparison: signing and verifying the same Streamr messages with
//! Vouch's Rust and with Streamr's own `@streamr/utils` (Node), in one run.
//!
//! `cargo bench -p vouch-schema --bench streamr_peer` (needs `node` and
//! `npm ci --prefix interop`).
//!
//! Each message is a Vouch envelope carrying 8 real go-livepeer events, as a
//! Streamr `StreamMessage`. Both sides build Streamr's signature payload and
//! sign it (EIP-191 Keccak + secp256k1, RFC 6979), then build it and verify
//! by recovering the signer and comparing addresses, which is what Streamr's
//! validator does. Node must reproduce every signature byte for byte.
//! Own harness (not criterion) because the peer runs in another process.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use k256::ecdsa::SigningKey;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, TelemetryBatch};

const KEY: [u8; 32] = [0x42; 32];

fn content() -> Vec<u8> {
    let text = include_str!("../tests/data/go-livepeer-kafka-samples.json");
    let samples: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
    let events: Vec<Event> = samples.iter().map(|j| Event::from_kafka_json(j).unwrap()).collect();
    TelemetryBatch::new(vec![0xab; 190], events).encode()
}

fn id(i: u64) -> MessageId {
    MessageId {
        stream_id: "0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1/livepeer/telemetry".into(),
        partition: 7,
        timestamp: 1_764_000_000_000 + i,
        seq: 0,
        publisher: Address::ZERO,
        msg_chain_id: "Xb3kq9Zr0PLm4TyW8sDe".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("streamr_peer_smoke: test");
        }
        return;
    }
    let quick = !args.iter().any(|a| a == "--bench");
    let n: u64 = if quick { 20 } else { 2000 };
    let key = SigningKey::from_slice(&KEY).unwrap();
    let content = content();

    let start = Instant::now();
    let mut envelopes = Vec::with_capacity(n as usize);
    let mut prev: Option<MessageRef> = None;
    for i in 0..n {
        let env = Envelope::sign(id(i), prev, content.clone(), &key).unwrap();
        prev = Some(env.id.as_ref());
        envelopes.push(env);
    }
    let sign = start.elapsed();
    let start = Instant::now();
    for env in &envelopes {
        env.verify().unwrap();
    }
    let verify = start.elapsed();

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let file = std::env::temp_dir().join(format!("vouch-peer-bench-{}.hex", std::process::id()));
    let lines: String =
        envelopes.iter().map(|e| format!("{}\n", hex::encode(e.to_streamr_bytes()))).collect();
    std::fs::write(&file, lines).unwrap();
    let out = Command::new("node")
        .arg(root.join("interop/peer-bench.mjs"))
        .arg(&file)
        .arg(hex::encode(KEY))
        .current_dir(root)
        .output();
    let _ = std::fs::remove_file(&file);
    let out = out.expect("`node` runs (Node.js 20+)");
    assert!(
        out.status.success(),
        "interop/peer-bench.mjs failed (run `npm ci --prefix interop`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(peer["verified"], n, "Streamr verifies every Vouch signature: {peer}");
    assert_eq!(peer["identical_signatures"], n, "Streamr signs byte-identically: {peer}");

    let ours_sign = n as f64 / sign.as_secs_f64();
    let ours_verify = n as f64 / verify.as_secs_f64();
    let (peer_sign, peer_verify) =
        (peer["sign_per_sec"].as_f64().unwrap(), peer["verify_per_sec"].as_f64().unwrap());
    println!(
        "streamr peer, {n} messages of {} content bytes | sign: Vouch Rust {ours_sign:.0}/s, \
         @streamr/utils {peer_sign:.0}/s, ratio {:.2} | verify (recover + compare): Vouch Rust \
         {ours_verify:.0}/s, @streamr/utils {peer_verify:.0}/s, ratio {:.2} | node {}",
        content.len(),
        ours_sign / peer_sign,
        ours_verify / peer_verify,
        peer["node"].as_str().unwrap_or("?"),
    );
}
