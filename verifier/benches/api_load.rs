//! `/v1/sla/orchestrators` latency under a steady 200 requests/s, served by
//! the real HTTP API over a real, large SLA engine state, measured with `wrk`.
//!
//! `cargo bench -p vouch-verifier --bench api_load` (needs `wrk`:
//! `apt-get install wrk`; `scripts/bench.sh` installs it).
//!
//! The state is built in process the way `sla/benches/aggregate.rs` builds
//! it: one 8-event session per (orchestrator, model, region) per hour, sealed
//! hour by hour, as a gateway observed it. It is wrapped in
//! `vouch_verifier::scores::Scores` (which caches serialized answers until
//! the next seal, as in a running node) and served by
//! `vouch_verifier::api::Api` with the rate limit off, on 127.0.0.1. Each
//! path gets one uncached request first (timed on its own), then `wrk`
//! offers ~200 requests/s for the run: 4 connections, each waiting 20 ms
//! before every request (wrk's `delay()` hook; Debian has no wrk2, so
//! latency is measured from send and coordinated omission is not corrected).
//!
//! Full size: 1,000 orchestrators × 10 models × 5 regions × 24 h, as the
//! SLA bench (about a minute to build on a 2-core machine;
//! `VOUCH_API_BENCH_HOURS` changes the hours), 20 s per path
//! (`VOUCH_API_BENCH_SECS`). Without `--bench` (test
//! runners) a tiny state for 2 s per path. Prints human lines and one
//! `vouch-bench-json:` line for `scripts/bench.sh`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_testkit::traffic::big_engine;
use vouch_verifier::api::{Api, ApiConfig, RateLimitConfig};
use vouch_verifier::scores::Scores;

const RATE: u32 = 200;
const CONNECTIONS: u32 = 4;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1048576.0
}

/// One GET over a fresh connection: (status, body bytes, elapsed).
fn get(addr: SocketAddr, path: &str) -> (u16, usize, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.find("\r\n\r\n").map_or(0, |i| buf.len() - i - 4);
    (status, body, elapsed)
}

/// `wrk` at about `RATE` requests/s on one path; its JSON summary.
fn wrk(addr: SocketAddr, path: &str, secs: u64) -> Value {
    let lua = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    let delay_ms = CONNECTIONS * 1000 / RATE;
    let script = format!(
        r#"
request = function() return wrk.format("GET", "{path}") end
delay = function() return {delay_ms} end
done = function(summary, latency, requests)
  local e = summary.errors
  local ms = function(us) return string.format("%.3f", us / 1000) end
  io.write(string.format(
    '{{"requests":%d,"duration_s":%.2f,"rate":%.1f,"non_2xx":%d,"socket_errors":%d,'
    .. '"latency_ms":{{"p50":%s,"p90":%s,"p99":%s,"p99_9":%s,"max":%s}}}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.status, e.connect + e.read + e.write + e.timeout,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency.max)))
end
"#
    );
    std::fs::write(lua.path(), script).unwrap();
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{secs}s"), "--timeout", "10s"])
        .arg("-s")
        .arg(lua.path())
        .arg(format!("http://{addr}"))
        .output()
        .unwrap_or_else(|e| panic!("`wrk` must be installed (apt-get install wrk): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("{}");
    serde_json::from_str(last).unwrap()
}

fn main() {
    // Under a test runner, one quick smoke test (see `full_size`).
    let Some(full) = vouch_testkit::bench::full_size("api_load") else { return };
    let quick = !full;
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (o, m, r, h) =
        if quick { (10, 2, 2, 2) } else { (1_000, 10, 5, env_u64("VOUCH_API_BENCH_HOURS", 24)) };
    let secs = if quick { 2 } else { env_u64("VOUCH_API_BENCH_SECS", 20) };

    let rss0 = rss_mib();
    let started = Instant::now();
    let (engine, events) = big_engine(o, m, r, h);
    let built = started.elapsed().as_secs_f64();
    let keys = engine.stats().series_keys;
    let approx = engine.stats().approx_state_bytes as f64 / 1048576.0;
    let rss1 = rss_mib();
    println!(
        "api load: state {o} orchestrators × {m} models × {r} regions × {h} h = {keys} keys, \
         {events} events, built in {built:.1} s; approx state {approx:.1} MiB; process RSS \
         {rss1:.1} MiB ({rss0:.1} MiB before)"
    );

    let config = ApiConfig {
        rate_limit: RateLimitConfig { per_second: 0.0, ..RateLimitConfig::default() },
        ..ApiConfig::default()
    };
    let api = Api::new(Arc::new(Scores::new(vec![engine])), &config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        axum::serve(listener, api.router().into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });

    let mut paths = Vec::new();
    for window in ["1h", "24h"] {
        let path = format!("/v1/sla/orchestrators?window={window}");
        let (status, bytes, first) = get(addr, &path);
        assert_eq!(status, 200, "{path} answered {status}");
        let w = wrk(addr, &path, secs);
        println!(
            "{path}: first (uncached) request {:.1} ms, {bytes} bytes | wrk ~{RATE}/s for {secs} s: \
             {} requests at {} /s, p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms, \
             non-2xx {}, socket errors {} | goal p99 ≤ 20 ms",
            first.as_secs_f64() * 1e3,
            w["requests"],
            w["rate"],
            w["latency_ms"]["p50"],
            w["latency_ms"]["p90"],
            w["latency_ms"]["p99"],
            w["latency_ms"]["p99_9"],
            w["latency_ms"]["max"],
            w["non_2xx"],
            w["socket_errors"],
        );
        paths.push(json!({
            "path": path,
            "window": window,
            "first_request_ms": (first.as_secs_f64() * 1e4).round() / 10.0,
            "body_bytes": bytes,
            "wrk": w,
        }));
    }
    let rss2 = rss_mib();
    let out = json!({
        "bench": "api_load",
        "quick": quick,
        "scale": {"orchestrators": o, "models": m, "regions": r, "hours": h},
        "series_keys": keys,
        "events": events,
        "build_seconds": (built * 10.0).round() / 10.0,
        "approx_state_mib": (approx * 10.0).round() / 10.0,
        "rss_mib_before": (rss0 * 10.0).round() / 10.0,
        "rss_mib_state": (rss1 * 10.0).round() / 10.0,
        "rss_mib_after_load": (rss2 * 10.0).round() / 10.0,
        "target_rate": RATE,
        "connections": CONNECTIONS,
        "seconds": secs,
        "paths": paths,
    });
    println!("vouch-bench-json: {out}");
    runtime.shutdown_timeout(Duration::from_secs(1));
}
