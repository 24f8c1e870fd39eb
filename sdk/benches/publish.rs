//! Publisher benchmarks (record results in BENCHMARKS.md):
//!
//! - `publish/caller`: the caller-side cost of one `publish` (the event is
//!   built beforehand; the worker runs concurrently with a discarding
//!   transport). Also prints latency percentiles of single calls.
//! - `worker/batch64`: events per second through redaction, encoding,
//!   batching (64-event batches) and signing on the one worker thread.
//! - `k256/sign_prehash`: one bare secp256k1 signature, for scale.
//!
//! Run with `cargo bench -p vouch-sdk --bench publish`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value as Json;
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation, keys};
use vouch_schema::{Address, Event};
use vouch_sdk::transport::{Outgoing, Transport, TransportError};
use vouch_sdk::{Publisher, PublisherSettings, Signer};

const FIXTURES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../schemas/tests/data/go-livepeer-kafka-samples.json"
));

/// Throws envelopes away.
struct Discard;

impl Transport for Discard {
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        black_box(envelope);
        Ok(())
    }
    fn flush(&mut self, _: Instant) -> Result<(), TransportError> {
        Ok(())
    }
    fn close(&mut self, _: Instant) -> Result<(), TransportError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "discard"
    }
}

fn signer() -> Signer {
    let principal = keys::generate();
    let delegate = keys::generate();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let terms = DelegationTerms {
        delegate: keys::address(&delegate),
        role: Role::Gateway,
        region: "FRA".into(),
        not_before: now - 60,
        not_after: now + 86_400,
        nonce: 1,
    };
    let net = Eip712Network { chain_id: 1337, verifying_contract: Address([0xab; 20]) };
    Signer::new(delegate, SignedDelegation::issue(&principal, net, terms).unwrap())
}

/// The real go-livepeer events, cycled.
fn events(n: usize) -> Vec<Event> {
    let fixtures: Vec<Json> = serde_json::from_str(FIXTURES).unwrap();
    let parsed: Vec<Event> = fixtures.iter().map(|f| Event::from_kafka_json(f).unwrap()).collect();
    parsed.iter().cycle().take(n).cloned().collect()
}

fn publisher(capacity: usize) -> Publisher {
    let settings = PublisherSettings {
        max_events: 64,
        linger: Duration::from_secs(1),
        queue_capacity: capacity,
        ..PublisherSettings::default()
    };
    Publisher::with_transport(signer(), settings, Box::new(Discard)).unwrap()
}

/// Publishes `iters` events in chunks that fit the queue; `timed` says what
/// is timed: only the `publish` calls, or everything until the worker has
/// signed and sent them all.
fn run(p: &Publisher, template: &[Event], iters: u64, callers_only: bool) -> Duration {
    const CHUNK: usize = 4096;
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(CHUNK);
        let chunk: Vec<Event> = template.iter().cycle().take(n).cloned().collect();
        let start = Instant::now();
        for e in chunk {
            // A full queue would measure the refusal path; chunks fit the queue.
            p.publish(e).unwrap();
        }
        if callers_only {
            total += start.elapsed();
            p.flush(Duration::from_secs(60)).unwrap();
        } else {
            p.flush(Duration::from_secs(60)).unwrap();
            total += start.elapsed();
        }
        left -= n;
    }
    total
}

fn caller(c: &mut Criterion) {
    let template = events(64);
    let p = publisher(8192);
    // Single-call latency percentiles (each call timed on its own).
    let mut lat = Vec::with_capacity(200_000);
    for _ in 0..50 {
        let chunk: Vec<Event> = template.iter().cycle().take(4000).cloned().collect();
        for e in chunk {
            let t = Instant::now();
            p.publish(e).unwrap();
            lat.push(t.elapsed());
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }
    lat.sort();
    let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f) as usize];
    eprintln!(
        "publish latency over {} calls: p50 {:?} p90 {:?} p99 {:?} p99.9 {:?} max {:?}",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        lat[lat.len() - 1]
    );
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    g.bench_function("caller", |b| b.iter_custom(|iters| run(&p, &template, iters, true)));
    g.finish();
    eprintln!("stats: {:?}", p.stats());
}

fn worker(c: &mut Criterion) {
    let template = events(64);
    let p = publisher(8192);
    let mut g = c.benchmark_group("worker");
    g.throughput(Throughput::Elements(1));
    g.bench_function("batch64", |b| b.iter_custom(|iters| run(&p, &template, iters, false)));
    g.finish();
    let stats = p.close(Duration::from_secs(10)).unwrap();
    eprintln!(
        "worker: {} events in {} envelopes ({:.1} per envelope)",
        stats.sent_events,
        stats.sent_envelopes,
        stats.sent_events as f64 / stats.sent_envelopes.max(1) as f64
    );
}

fn sign(c: &mut Criterion) {
    let key = keys::generate();
    let digest = [7u8; 32];
    c.bench_function("k256/sign_prehash", |b| {
        b.iter(|| key.sign_prehash_recoverable(black_box(&digest)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = caller, worker, sign
}
criterion_main!(benches);
