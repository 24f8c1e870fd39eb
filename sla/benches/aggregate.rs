//! SLA engine costs: aggregation per event against decoding the same event,
//! and `orchestrators()` over 1,000 orchestrators × 10 models × 5 regions ×
//! 24 h of buckets, with the memory that state takes.
//!
//! `cargo bench -p vouch-sla --bench aggregate` runs the full size; without
//! `--bench` (test runners) it runs a small one once as a smoke test.
#![allow(clippy::unwrap_used, missing_docs)]
// The counting allocator below is the only unsafe code: it forwards every
// call to mimalloc unchanged.
#![allow(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use vouch_schema::Event;
use vouch_sla::{Engine, Query, Window};
use vouch_testkit::traffic::*;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The node's allocator (`verifier/src/main.rs`), so that the resident
/// memory measured here is what a node holding this state would show,
/// counting the bytes live on the heap: the state's true size, where the
/// engine's `approx_state_bytes` is an estimate.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes ever live at once: what the allocator had to map.
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to mimalloc with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract is mimalloc's.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// `hours` hours of one session per (orchestrator, model, region) per hour.
fn main() {
    // Under a test runner, one quick smoke test (see `full_size`).
    let Some(full) = vouch_testkit::bench::full_size("aggregate") else { return };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if full { 5 } else { 1 }))
        .sample_size(10)
        .configure_from_args();

    // Per-event aggregation against decoding the same events.
    let sessions = if full { 2_000 } else { 50 };
    let mut batches: Vec<(u64, &str, Vec<Event>)> = Vec::new();
    for s in 0..sessions {
        let t = BASE + (s as u64 % 600) * 1_000;
        let region = REGIONS[s % 5];
        let batch = session(&format!("{s:08x}"), orch(s % 100), MODELS[s % 3], region, t, s as u64);
        batches.push((t + 46_000, region, batch));
    }
    let n_events: usize = batches.iter().map(|(_, _, b)| b.len()).sum();
    let encoded: Vec<Vec<u8>> =
        batches.iter().flat_map(|(_, _, b)| b.iter().map(Event::encode)).collect();
    let end = BASE + 3_600_000;
    let gateways: Vec<_> = REGIONS.iter().map(|r| gateway(r)).collect();
    let ingest = |e: &mut Engine| {
        let mut accepted = 0;
        for (envelope_ts, region, batch) in &batches {
            let gw = gateways.iter().find(|g| g.region == *region).unwrap();
            accepted += e.ingest(gw, *envelope_ts, batch).accepted;
        }
        accepted
    };
    let fresh = || listed_engine(100);
    // Every event is taken (none rejected as late or out of lag).
    assert_eq!(ingest(&mut fresh()), n_events as u64);
    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(n_events as u64));
    g.bench_function("baseline_decode_cbor", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(Event::decode(bytes).unwrap());
            }
        })
    });
    g.bench_function("ingest", |b| {
        b.iter_batched(
            fresh,
            |mut e| {
                ingest(&mut e);
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("ingest_and_seal", |b| {
        b.iter_batched(
            fresh,
            |mut e| {
                ingest(&mut e);
                e.seal(end + 3_600_000);
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // Query latency over a day of buckets.
    // VOUCH_SLA_BENCH_HOURS shortens the day (for profiling).
    let hours =
        std::env::var("VOUCH_SLA_BENCH_HOURS").ok().and_then(|h| h.parse().ok()).unwrap_or(24);
    let (o, m, r, h) = if full { (1_000, 10, 5, hours) } else { (10, 2, 2, 2) };
    let (rss0, live0) = (rss_bytes(), live_bytes());
    let started = Instant::now();
    let (engine, n_events) = big_engine(o, m, r, h);
    let built = started.elapsed();
    let (rss1, live1) = (rss_bytes(), live_bytes());
    // Before the checkpoint below: the build's own peak.
    let peak = PEAK.load(Ordering::Relaxed);
    let stats = engine.stats();
    let checkpoint = engine.snapshot().len();
    println!(
        "state: {o} orchestrators x {m} models x {r} regions x {h} h = {} keys, {n_events} events ingested in {:.1} s \
         ({:.2} us/event incl. seals); {} hour + {} minute buckets; approx state {:.1} MiB; \
         RSS growth {:.1} MiB; checkpoint {:.1} MiB; process RSS {:.1} MiB; live heap {:.1} MiB; \
         peak live heap {:.1} MiB",
        stats.series_keys,
        built.as_secs_f64(),
        built.as_secs_f64() * 1e6 / n_events as f64,
        stats.hour_buckets,
        stats.minute_buckets,
        stats.approx_state_bytes as f64 / 1048576.0,
        rss1.saturating_sub(rss0) as f64 / 1048576.0,
        checkpoint as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        live1.saturating_sub(live0) as f64 / 1048576.0,
        peak as f64 / 1048576.0,
    );
    let q24 = Query { window: Window::H24, ..Query::default() };
    let q1 = Query::default();
    let listed = engine.orchestrators(&q24).orchestrators.len();
    println!("24h list: {listed} orchestrators");
    let mut g = c.benchmark_group("orchestrators_query");
    g.bench_function("24h_uncached", |b| {
        b.iter(|| {
            engine.invalidate_cache();
            black_box(engine.orchestrators(&q24))
        })
    });
    g.bench_function("1h_uncached", |b| {
        b.iter(|| {
            engine.invalidate_cache();
            black_box(engine.orchestrators(&q1))
        })
    });
    g.bench_function("24h_cached", |b| b.iter(|| black_box(engine.orchestrators(&q24))));
    g.finish();
    // Right after the build, RSS still holds pages the build's last hour
    // freed: mimalloc returns them after a delay, as the thread goes on
    // allocating. Serving queries is what a node holding this state does.
    println!(
        "after the queries: process RSS {:.1} MiB; live heap {:.1} MiB",
        rss_bytes() as f64 / 1048576.0,
        live_bytes().saturating_sub(live0) as f64 / 1048576.0,
    );
    // A node keeps a week of hours (the policies' `hour_retention`, 169 h),
    // not the one day above: the same leaderboard over four days held.
    if full && h == 24 {
        drop(engine);
        let (engine, _) = big_engine(o, m, r, HELD_HOURS);
        let mut g = c.benchmark_group(format!("held_{HELD_HOURS}h"));
        g.bench_function("24h_uncached", |b| {
            b.iter(|| {
                engine.invalidate_cache();
                black_box(engine.orchestrators(&q24))
            })
        });
        g.finish();
    }
    c.final_summary();
}

/// Hours of buckets held for the second leaderboard bench (the report,
/// `scripts/bench_report.py`, reads its group as `held_96h`).
const HELD_HOURS: u64 = 96;
