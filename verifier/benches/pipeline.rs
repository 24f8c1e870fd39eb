//! The verifier pipeline end to end (decode → checks → certificate →
//! authority → rate → signature → sequence → log append with group commit →
//! SLA engine state),
//! beside raw signature verification on the same core in the same run.
//!
//! `cargo bench -p vouch-verifier --bench pipeline`
//!
//! Not criterion: the pipeline remembers what it accepted (a second pass
//! would be all duplicates), so each scenario is one timed pass over fresh,
//! pre-signed envelopes, after one untimed pass of other publishers'
//! envelopes through a pipeline of its own (so that the timed pass runs on
//! memory the process has touched before, as a running node's does). Three
//! rounds of every measurement, interleaved; the medians are reported. Goals (verifier issue): pipeline ≥ 80 % of raw
//! verification throughput with single-event envelopes; ≥ 100,000 events/s
//! with 64-event batches.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use vouch_delegation::authority::{AuthorityView, CachedAuthority};
use vouch_delegation::{Eip712Network, Role};
use vouch_schema::topic::telemetry_topic;
use vouch_schema::{Address, Envelope, MessageId, MessageRef, TelemetryBatch};
use vouch_testkit::actor::Actor;
use vouch_testkit::{fixtures, keys};
use vouch_verifier::node::config::{GroupBound, IngestConfig};
use vouch_verifier::scores::{PolicyFiles, Scores};
use vouch_verifier::store::{LogConfig, RecordKind, SegmentLog, Syncing};
use vouch_verifier::validate::{Keep, Pipeline, Unverified, ValidationConfig, Verified};
use vouch_verifier::validate::{RateLimit, RateLimits};

/// The node's allocator (`verifier/src/main.rs`), set up as the node sets it
/// up (transparent huge pages off, in `main`), so that this bench and the
/// node bench (`saturate.rs`) differ by gossip and threads, not by malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW_MS: u64 = 1_764_000_000_000;
const PARTITION: u32 = 5;
const PUBLISHERS: u32 = 20;
/// The node's default bound on a commit group (one fsync): records, and
/// bytes of messages.
fn group() -> GroupBound {
    IngestConfig::default().group_bound()
}

/// A publisher with principal key `p` and delegate key `d` (key numbers).
fn publisher_of(p: u32, d: u32) -> Actor {
    let valid = NOW_MS / 1000 - 3600..NOW_MS / 1000 + 86_400;
    let net = Eip712Network::arbitrum_one();
    Actor::issue(keys::numbered(p), keys::numbered(d), Role::Gateway, "FRA", valid, net)
}

fn publisher(n: u32) -> Actor {
    publisher_of(1000 + n, 5000 + n)
}

/// `per_publisher` envelopes of `events_each` events from every publisher, interleaved.
fn signed(pubs: &[Actor], per_publisher: usize, events_each: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut prev: Vec<Option<MessageRef>> = vec![None; pubs.len()];
    for i in 0..per_publisher {
        for (p, publ) in pubs.iter().enumerate() {
            let ts = NOW_MS - 60_000 + i as u64;
            let batch = TelemetryBatch::new(publ.cert(), fixtures::stamped(events_each, ts));
            let id = MessageId {
                stream_id: publ.stream_id(),
                partition: PARTITION,
                timestamp: ts,
                seq: 0,
                publisher: Address::ZERO,
                msg_chain_id: format!("bench{p}"),
            };
            let env = Envelope::sign(id, prev[p], batch.encode(), &publ.delegate).unwrap();
            prev[p] = Some(env.id.as_ref());
            out.push(env.encode());
        }
    }
    out
}

fn pipeline(pubs: &[Actor]) -> Pipeline {
    let entries = pubs.iter().map(Actor::entry);
    let authority = Arc::new(CachedAuthority::new(AuthorityView::new("bench", entries)));
    // Rate limits out of the way: this measures the work, not the policy.
    let open = RateLimit { rate_per_sec: u32::MAX / 2, burst: u32::MAX / 2 };
    let config = ValidationConfig {
        rate_limits: RateLimits {
            orchestrator: open,
            runner: open,
            gateway: open,
            loadtest: open,
            verifier: open,
        },
        ..ValidationConfig::default()
    };
    Pipeline::new(config, authority)
}

/// One pass: every envelope through the pipeline and into the log, a group
/// of the node's commit size at a time, each group as the node's ingest
/// worker takes it with one hash thread (`node/ingest.rs`, `node/prepare.rs`):
/// a chunk's messages hashed side by side where the CPU has SIMD lanes, then
/// validated in order while the previous group's commit syncs; once that is
/// durable, the previous group is scored and this one appended and its
/// commit started. The messages are owned before the clock starts, as
/// gossip hands them over.
fn run_pipeline(pubs: &[Actor], envelopes: &[Vec<u8>], with_log: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut p = pipeline(pubs);
    let scores = Scores::open(&PolicyFiles::default(), None).unwrap().0;
    let topic = telemetry_topic(PARTITION);
    let lanes = vouch_schema::crypto::batch_lanes();
    let owned: Vec<Vec<u8>> = envelopes.to_vec();
    let mut messages = owned.into_iter();
    let start = Instant::now();
    let mut in_flight: Option<(Syncing, Vec<Verified>)> = None;
    let mut done = 0;
    while done < envelopes.len() {
        let mut in_group = group().fit(envelopes[done..].iter().map(Vec::len));
        done += in_group;
        let mut checked = Vec::with_capacity(in_group);
        while in_group > 0 {
            let take = lanes.max(4).min(in_group);
            in_group -= take;
            let mut chunk: Vec<Unverified> = messages
                .by_ref()
                .take(take)
                .map(|bytes| Unverified::from_topic(bytes, &topic))
                .collect();
            if lanes > 1 {
                Unverified::prehash_all(&mut chunk, Keep::Envelopes);
            }
            for mut msg in chunk {
                let verified = p.validate(&mut msg, NOW_MS).unwrap();
                if with_log {
                    checked.push((verified, msg.into_hashed()));
                }
            }
        }
        if with_log {
            finish(&mut log, &scores, in_flight.take());
            let mut accepted = Vec::with_capacity(checked.len());
            for (verified, content) in checked {
                log.append_hashed(RecordKind::Envelope, content).unwrap();
                accepted.push(verified);
            }
            in_flight = Some((log.start_commit().unwrap(), accepted));
        }
    }
    finish(&mut log, &scores, in_flight);
    start.elapsed()
}

/// As the node does once a group's commit is durable: feed the SLA engines.
fn finish(log: &mut SegmentLog, scores: &Scores, group: Option<(Syncing, Vec<Verified>)>) {
    if let Some((syncing, accepted)) = group {
        log.finish_commit(syncing).unwrap();
        for v in &accepted {
            scores.ingest_verified(v);
        }
    }
}

/// Raw k256: hash each envelope's signature payload and verify it with the known key.
fn run_raw(pubs: &[Actor], envelopes: &[Vec<u8>]) -> Duration {
    let decoded: Vec<Envelope> = envelopes.iter().map(|b| Envelope::decode(b).unwrap()).collect();
    let keys: Vec<_> = pubs.iter().map(|p| *p.delegate.verifying_key()).collect();
    let start = Instant::now();
    for (i, env) in decoded.iter().enumerate() {
        let digest = env.signing_hash();
        let sig = k256::ecdsa::Signature::from_slice(&env.signature.0[..64]).unwrap();
        keys[i % keys.len()].verify_prehash(&digest, &sig).unwrap();
    }
    start.elapsed()
}

/// Raw libsecp256k1 (the `secp256k1` crate) on the same digests.
fn run_raw_secp(pubs: &[Actor], envelopes: &[Vec<u8>]) -> Duration {
    let secp = secp256k1::Secp256k1::verification_only();
    let decoded: Vec<Envelope> = envelopes.iter().map(|b| Envelope::decode(b).unwrap()).collect();
    let keys: Vec<secp256k1::PublicKey> = pubs
        .iter()
        .map(|p| {
            let point = p.delegate.verifying_key().to_encoded_point(false);
            secp256k1::PublicKey::from_slice(point.as_bytes()).unwrap()
        })
        .collect();
    let start = Instant::now();
    for (i, env) in decoded.iter().enumerate() {
        let digest = env.signing_hash();
        let sig = secp256k1::ecdsa::Signature::from_compact(&env.signature.0[..64]).unwrap();
        let msg = secp256k1::Message::from_digest(digest);
        secp.verify_ecdsa(msg, &sig, &keys[i % keys.len()]).unwrap();
    }
    start.elapsed()
}

/// This process's resident memory now and at its peak, KiB (from /proc).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Memory while tracking `principals` × `delegates` live delegates, each
/// with its own chain of envelopes, through the pipeline and the log.
fn memory(principals: u32, delegates: u32) {
    let (rss_before, _) = rss_kib();
    let pubs: Vec<Actor> = (0..principals)
        .flat_map(|p| (0..delegates).map(move |d| publisher_of(100_000 + p, 200_000 + p * 16 + d)))
        .collect();
    let envelopes = signed(&pubs, 2, 8);
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut p = pipeline(&pubs);
    let topic = telemetry_topic(PARTITION);
    for bytes in &envelopes {
        p.validate(&mut Unverified::from_topic(bytes.clone(), &topic), NOW_MS).unwrap();
        log.append(RecordKind::Envelope, bytes).unwrap();
    }
    log.commit().unwrap();
    let sizes = p.guard_sizes();
    drop(envelopes);
    let (rss, peak) = rss_kib();
    println!(
        "memory: {principals} principals × {delegates} delegates tracked ({} principals, {} chains, \
         {} cached certificates, {} delegate keys) | process RSS {:.1} MiB (peak {:.1} MiB, \
         {:.1} MiB before) | goal ≤ 256 MiB",
        sizes.principals,
        sizes.chains,
        sizes.certificates,
        sizes.delegate_keys,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
    );
}

/// Timed rounds of each measurement; the median is reported.
const ROUNDS: usize = 3;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort_unstable();
    runs[runs.len() / 2]
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    // Under a test runner, one quick smoke test (see `full_size`).
    let Some(full) = vouch_testkit::bench::full_size("pipeline") else { return };
    vouch_verifier::node::memory::disable_transparent_huge_pages();
    let quick = !full;
    let pubs: Vec<Actor> = (0..PUBLISHERS).map(publisher).collect();
    println!(
        "verifier pipeline, {PUBLISHERS} publishers, group commit (fsync) every {} envelopes or {} bytes, as the node",
        group().records,
        group().bytes,
    );
    for (label, per_publisher, events_each) in [
        ("1-event envelopes", if quick { 5 } else { 400 }, 1),
        ("64-event envelopes", if quick { 1 } else { 40 }, 64),
    ] {
        // An untimed pass over other publishers' envelopes first, so that
        // the timed ones run on memory the process has touched, as in a
        // running node: a fresh process's first pass pays the kernel's
        // first-touch faults (and, on a VM, the host's) on every page.
        let others: Vec<Actor> =
            (0..PUBLISHERS).map(|n| publisher_of(3000 + n, 7000 + n)).collect();
        run_pipeline(&others, &signed(&others, per_publisher, events_each), true);
        let envelopes = signed(&pubs, per_publisher, events_each);
        let n = envelopes.len();
        let events = n * events_each;
        // Rounds of all four, interleaved, and the median of each: one pass
        // lasts a fraction of a second, so a moment of another process on
        // the core would otherwise decide a figure (every pass has a fresh
        // pipeline, so the same envelopes are new to each).
        let mut rounds: [Vec<Duration>; 4] = Default::default();
        for _ in 0..if quick { 1 } else { ROUNDS } {
            rounds[0].push(run_pipeline(&pubs, &envelopes, true));
            rounds[1].push(run_pipeline(&pubs, &envelopes, false));
            rounds[2].push(run_raw(&pubs, &envelopes));
            rounds[3].push(run_raw_secp(&pubs, &envelopes));
        }
        let [pipe, checks, raw, secp] = rounds.map(median);
        println!(
            "{label}: {n} envelopes, {events} events | pipeline with log + state {:.0} envelopes/s = {:.0} events/s | \
             checks only (no log) {:.0} envelopes/s | raw k256 hash+verify {:.0}/s | \
             raw libsecp256k1 hash+verify {:.0}/s | pipeline / raw k256 = {:.2}",
            per_sec(n, pipe),
            per_sec(events, pipe),
            per_sec(n, checks),
            per_sec(n, raw),
            per_sec(n, secp),
            raw.as_secs_f64() / pipe.as_secs_f64(),
        );
    }
    memory(if quick { 20 } else { 1000 }, 4);
}
