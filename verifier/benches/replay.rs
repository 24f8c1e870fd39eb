//! `vouch replay` throughput: a log of 64-event envelopes from 20 gateways
//! (every envelope signed separately), replayed with every check (hash
//! chain, strict decode, certificate, recorded authority view, envelope
//! signature by libsecp256k1) on all cores and on one worker thread, beside
//! the raw libsecp256k1 hash+verify rate on one core in the same run.
//!
//! `cargo bench -p vouch-verifier --bench replay`
//!
//! Goal (replay issue): ≥ 200,000 events/s with 64-event batches on both
//! cores. Not criterion: each size is one timed pass over a log written for
//! it (a second pass would mostly measure the page cache the same way).
//! Without `--bench` (nextest, `cargo test --benches`) it runs one small
//! log as a smoke test.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use secp256k1::ecdsa::Signature as SecpSignature;
use secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use vouch_delegation::Role;
use vouch_delegation::authority::AuthorityView;
use vouch_schema::{Address, Envelope, MessageId, MessageRef, Signature, TelemetryBatch};
use vouch_testkit::actor::Actor;
use vouch_testkit::authority::entry;
use vouch_testkit::fixtures;
use vouch_verifier::replay::{ReplayOptions, Replayed, replay};
use vouch_verifier::store::{LogConfig, RecordKind, SegmentLog};

const NOW_MS: u64 = 1_764_000_000_000;
const PUBLISHERS: u32 = 20;
const EVENTS_PER_ENVELOPE: usize = 64;
/// Records appended before one commit (fsync) while writing the log.
const COMMIT_EVERY: usize = 1024;

struct Publisher {
    principal: Address,
    delegate: Address,
    secret: SecretKey,
    public: PublicKey,
    content: Vec<u8>,
}

fn publisher(n: u32) -> Publisher {
    let valid = NOW_MS / 1000 - 3600..NOW_MS / 1000 + 86_400;
    let actor = Actor::numbered(n, Role::Gateway, "FRA", valid);
    let secret = SecretKey::from_byte_array(actor.delegate.to_bytes().into()).unwrap();
    let public = PublicKey::from_secret_key(&Secp256k1::signing_only(), &secret);
    Publisher {
        principal: actor.principal_address(),
        delegate: actor.delegate_address(),
        secret,
        public,
        content: TelemetryBatch::new(actor.cert(), fixtures::stamped(EVENTS_PER_ENVELOPE, NOW_MS))
            .encode(),
    }
}

/// Writes a log of `envelopes` envelopes (round robin over the publishers,
/// each with its own chain and signature) after one authority view; returns
/// the envelopes' signing hashes and signatures for the raw-verify reference
/// (a sample, at most `sample`).
fn write_log(
    dir: &Path,
    pubs: &[Publisher],
    envelopes: usize,
    sample: usize,
) -> Vec<(usize, [u8; 32], SecpSignature)> {
    let secp = Secp256k1::signing_only();
    let view = AuthorityView::new(
        "snapshot:bench",
        pubs.iter().map(|p| entry(p.principal, Role::Gateway)),
    );
    // The page-cache window off: replay reads the log it was just given from
    // memory, so that the figure is the replay's own, not this disk's.
    let config = LogConfig { cached_tail_bytes: u64::MAX, ..LogConfig::default() };
    let (mut log, _) = SegmentLog::open(dir, config).unwrap();
    log.append(RecordKind::AuthorityView, &view.canonical_json()).unwrap();
    let mut prev: Vec<Option<MessageRef>> = vec![None; pubs.len()];
    let mut out = Vec::new();
    for i in 0..envelopes {
        let p = i % pubs.len();
        let publ = &pubs[p];
        let id = MessageId {
            stream_id: format!("{}/livepeer/telemetry", publ.principal),
            partition: 5,
            timestamp: NOW_MS - 3_000_000 + (i / pubs.len()) as u64,
            seq: 0,
            publisher: publ.delegate,
            msg_chain_id: format!("bench{p}"),
        };
        let mut env = Envelope {
            id,
            prev: prev[p],
            content: publ.content.clone(),
            signature: Signature([0; 65]),
        };
        let hash = env.signing_hash();
        let sig = secp.sign_ecdsa_recoverable(Message::from_digest(hash), &publ.secret);
        let (recid, compact) = sig.serialize_compact();
        env.signature.0[..64].copy_from_slice(&compact);
        env.signature.0[64] = 27 + i32::from(recid) as u8;
        prev[p] = Some(env.id.as_ref());
        if out.len() < sample {
            out.push((p, hash, SecpSignature::from_compact(&compact).unwrap()));
        }
        log.append(RecordKind::Envelope, &env.encode()).unwrap();
        if i % COMMIT_EVERY == COMMIT_EVERY - 1 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    out
}

/// Raw libsecp256k1: keccak of the signing payload is already done; this is
/// verify alone, one core (the replay also hashes, decodes and recovers).
fn raw_verify_rate(pubs: &[Publisher], sample: &[(usize, [u8; 32], SecpSignature)]) -> f64 {
    let secp = Secp256k1::verification_only();
    let started = Instant::now();
    let mut rounds = 0usize;
    while started.elapsed() < Duration::from_millis(500) || rounds == 0 {
        for (p, hash, sig) in sample {
            secp.verify_ecdsa(Message::from_digest(*hash), sig, &pubs[*p].public).unwrap();
        }
        rounds += 1;
    }
    (rounds * sample.len()) as f64 / started.elapsed().as_secs_f64()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn main() {
    // Under a test runner, one quick smoke test (see `full_size`).
    let Some(full) = vouch_testkit::bench::full_size("replay") else { return };
    let quick = !full;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pubs: Vec<Publisher> = (0..PUBLISHERS).map(publisher).collect();
    // `VOUCH_REPLAY_BENCH_MAX_EVENTS` caps the sizes (a machine short of disk or time).
    let max: u64 = std::env::var("VOUCH_REPLAY_BENCH_MAX_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let sizes: Vec<u64> = if quick { vec![1_280] } else { vec![100_000, 1_000_000, 10_000_000] };
    let sizes: Vec<u64> = sizes.into_iter().filter(|&n| n <= max || quick).collect();
    println!(
        "vouch replay, {EVENTS_PER_ENVELOPE}-event envelopes from {PUBLISHERS} gateways, \
         every check; {cores} cores"
    );
    let mut raw = None;
    for &events in &sizes {
        let envelopes = (events as usize).div_ceil(EVENTS_PER_ENVELOPE);
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path().join("log");
        let written = Instant::now();
        let sample = write_log(&dir, &pubs, envelopes, 2_000);
        let write_secs = written.elapsed().as_secs_f64();
        raw.get_or_insert_with(|| raw_verify_rate(&pubs, &sample));
        let mut line = format!(
            "{events} events = {envelopes} envelopes, {:.0} MB (written in {write_secs:.1} s)",
            dir_bytes(&dir) as f64 / 1e6
        );
        let mut rates = Vec::new();
        for threads in [cores, 1] {
            let options = ReplayOptions { threads, ..ReplayOptions::default() };
            let mut seen = 0u64;
            let started = Instant::now();
            let summary = replay(&dir, &options, |r| {
                if let Replayed::Batch(b) = r {
                    seen += b.batch.len() as u64;
                }
            })
            .unwrap();
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(summary.envelopes, envelopes as u64);
            assert_eq!(summary.events, (envelopes * EVENTS_PER_ENVELOPE) as u64);
            assert_eq!(seen, summary.events);
            let rate = summary.events as f64 / secs;
            rates.push(rate);
            line += &format!(
                " | {threads} worker{}: {rate:.0} events/s ({:.0} envelopes/s, {secs:.2} s)",
                if threads == 1 { "" } else { "s" },
                summary.envelopes as f64 / secs,
            );
        }
        line += &format!(" | speed-up {:.2}x", rates[0] / rates[1]);
        println!("{line}");
    }
    let raw_rate = raw.unwrap_or_default();
    println!(
        "raw libsecp256k1 verify (prehashed), 1 core: {raw_rate:.0} signatures/s \
         = {:.0} events/s at {EVENTS_PER_ENVELOPE} events per signature",
        raw_rate * EVENTS_PER_ENVELOPE as f64
    );
}
