//! Publisher benchmarks (record results in BENCHMARKS.md):
//!
//! - `publish/caller`: the caller-side cost of one `publish` (the event is
//!   built beforehand; the worker runs concurrently with a discarding
//!   transport). Also prints latency percentiles of single calls.
//! - `worker/batch64`: events per second through redaction, encoding,
//!   batching (64-event batches) and signing on the one worker thread.
//! - `k256/sign_prehash`: one bare secp256k1 signature, for scale.
//! - `abi/rust` vs `abi/c`: one go-livepeer `(type, JSON)` event through
//!   `Publisher::publish_go_livepeer` and through the C ABI's `vouch_publish`
//!   on the same kind of publisher: the difference is the C ABI's overhead.
//! - queue memory: resident memory of a publisher whose queue is full
//!   (worker stalled), printed once.
//!
//! Run with `cargo bench -p vouch-sdk --bench publish`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vouch_delegation::{Eip712Network, Role, keys};
use vouch_schema::Event;
use vouch_sdk::{Publisher, PublisherSettings, Signer};
use vouch_testkit::actor::{Actor, local_chain};
use vouch_testkit::publisher::{Discard, Stall, TestTransport};
use vouch_testkit::{fixtures, now_secs};

/// A gateway's signer on the local chain, valid for a day.
fn signer() -> Signer {
    let now = now_secs();
    Actor::generated(Role::Gateway, "FRA", now - 60..now + 86_400, local_chain()).signer()
}

/// The real go-livepeer events, cycled.
fn events(n: usize) -> Vec<Event> {
    fixtures::events().into_iter().cycle().take(n).collect()
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

/// A publisher writing to a file (as go-livepeer's would be configured),
/// from TOML, for the Rust-vs-C comparison.
fn file_config(dir: &std::path::Path) -> String {
    let now = now_secs();
    Actor::generated(Role::Gateway, "FRA", now - 60..now + 86_400, Eip712Network::arbitrum_one())
        .write_files(dir, "d.key", "d.cert");
    format!(
        "key_file = {:?}\ncertificate = {:?}\n[transport]\nkind = \"file\"\npath = {:?}\n",
        dir.join("d.key"),
        dir.join("d.cert"),
        dir.join("out.vouch")
    )
}

#[allow(unsafe_code)] // Calls the C ABI exactly as a C or Go caller would.
fn abi(c: &mut Criterion) {
    use std::ffi::CString;
    use vouch_sdk::ffi;
    let fixtures = fixtures::kafka_samples();
    let status = fixtures.iter().find(|f| f["type"] == "ai_stream_status").unwrap();
    let data = serde_json::to_vec(&status["data"]).unwrap();
    let family = CString::new("ai_stream_status").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = CString::new(file_config(dir.path())).unwrap();
    let rust = Publisher::new(
        &vouch_sdk::PublisherConfig::from_toml_str(config.to_str().unwrap()).unwrap(),
    )
    .unwrap();
    let mut handle = std::ptr::null_mut();
    // SAFETY: a NUL-terminated config and a writable out pointer.
    assert_eq!(unsafe { ffi::vouch_publisher_new(config.as_ptr(), &mut handle) }, ffi::VOUCH_OK);
    let mut g = c.benchmark_group("abi");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rust", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(4096) {
                let start = Instant::now();
                for _ in 0..4096 {
                    let _ = rust.publish_go_livepeer("ai_stream_status", black_box(&data));
                }
                total += start.elapsed();
                rust.flush(Duration::from_secs(60)).unwrap();
            }
            total * (iters as u32) / (iters.div_ceil(4096) as u32 * 4096)
        })
    });
    g.bench_function("c", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(4096) {
                let start = Instant::now();
                for _ in 0..4096 {
                    // SAFETY: a live handle, a NUL-terminated family, `data` valid for its length.
                    let _ = unsafe {
                        ffi::vouch_publish(
                            handle,
                            family.as_ptr(),
                            black_box(data.as_ptr()),
                            data.len(),
                        )
                    };
                }
                total += start.elapsed();
                // SAFETY: a live handle.
                unsafe { ffi::vouch_flush(handle, 60_000) };
            }
            total * (iters as u32) / (iters.div_ceil(4096) as u32 * 4096)
        })
    });
    g.finish();
    // SAFETY: a live handle, not used afterwards.
    unsafe { ffi::vouch_publisher_close(handle, 10_000) };
    drop(rust.close(Duration::from_secs(10)));
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn queue_memory(_: &mut Criterion) {
    let capacity = 8192;
    let template = events(64);
    // Holds the worker inside `send` until released, so the queue fills.
    let gate = TestTransport::new(Stall::Block);
    let before = resident_bytes();
    let settings = PublisherSettings { queue_capacity: capacity, ..PublisherSettings::default() };
    let p = Publisher::with_transport(signer(), settings, Box::new(gate.clone())).unwrap();
    let (mut refused, mut offered) = (0, 0);
    // Twice the bound: the first batch goes to the stalled worker, the rest must be refused.
    for e in template.iter().cycle().take(2 * capacity + 128).cloned() {
        offered += 1;
        if p.publish(e).is_err() {
            refused += 1;
        }
    }
    let full = resident_bytes();
    let stats = p.stats();
    eprintln!(
        "queue memory: capacity {capacity}, offered {offered}, refused {refused}, queued {}; \
         resident {:.1} MiB before, {:.1} MiB at the bound (+{:.1} MiB, {:.0} bytes per queued event)",
        stats.queued,
        before as f64 / 1048576.0,
        full as f64 / 1048576.0,
        (full.saturating_sub(before)) as f64 / 1048576.0,
        full.saturating_sub(before) as f64 / stats.queued.max(1) as f64,
    );
    gate.set_stall(Stall::Open);
    drop(p.close(Duration::from_secs(30)));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = queue_memory, caller, worker, abi, sign
}
criterion_main!(benches);
