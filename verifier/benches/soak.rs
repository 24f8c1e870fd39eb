//! Reliability under flood: 3 real `vouch node` processes bootstrapped to
//! each other on loopback, 20 honest gateway publishers, then one flooding
//! gateway and 2,000 idle HTTP connections, in one run on the same nodes.
//!
//! `cargo bench -p vouch-verifier --bench soak` (`scripts/soak.sh` runs it
//! for 15 minutes; `scripts/bench.sh` for two).
//!
//! Phases, after a warm-up while the gossip meshes form:
//! - **baseline**: 20 honest gateways (distinct principals, certificates in
//!   FRA, NYC and SIN; in-process SDK publishers, each with its own gossip
//!   transport, one event per envelope) each start a healthy go-livepeer
//!   session every 2 s on orchestrators listed in the authority view (the
//!   simulated sessions of `vouch demo`: ~10 events over ~11 s), each event
//!   published when it happens;
//! - **flood**: the same, plus one gateway principal, within its rate limit,
//!   sending the costly patterns of the hostile pass in turn, one full
//!   envelope each: many one-event sessions, status-heavy envelopes
//!   (hundreds of `ai_stream_status` samples of a few attempts) and sessions
//!   naming random unlisted orchestrators; every 30 s a burst of one-event
//!   envelopes beyond its rate limit; and 2,000 TCP connections to node 0's
//!   HTTP port that send an incomplete request header and then nothing,
//!   topped up when the node closes them (a slowloris client).
//!
//! Every few seconds, per node: RSS and open descriptors (`/proc`), whether
//! it is alive, `/healthz`, `/v1/ingest/stats` and the `/metrics` gauges
//! and counters it has (read by name; a metric the node does not export is
//! reported as missing, so the bench runs against older and newer nodes),
//! and the sizes of `state.redb`, `sla.snapshot`, the segment log and the
//! node's own stderr log. Followers read each node's committed log to count
//! the honest envelopes (by the time of their event, so by phase) and the
//! flooder's.
//!
//! Nodes run with production defaults (rate limits, `[sla.limits]`) and the
//! demo SLA policy (`schemas/policy/sla-policy-demo.toml`) so that minutes
//! seal during the run. They start with a soft `RLIMIT_NOFILE` of 1,024 (a
//! common service default; the hard limit is left alone, so a node may raise
//! it), `VOUCH_SOAK_NODE_NOFILE` changes it (0: inherit).
//!
//! Not criterion: one timed run of real processes. `VOUCH_SOAK_SECS`
//! (baseline + flood, default 120; a third is baseline),
//! `VOUCH_SOAK_FLOOD_RATE` (flood envelopes/s, default 20),
//! `VOUCH_SOAK_IDLE_CONNECTIONS` (default 2,000), `VOUCH_SOAK_MAX_DISK_MB`
//! (stop flooding when the nodes' data grows past this, default 6,144).
//! Without `--bench` (test runners) a few seconds with 3 publishers and 50
//! idle connections, as a smoke test that fails if a node exits. Prints
//! human lines and `vouch-bench-json:` lines (groups `run`, `phase`,
//! `idle_http`, `timeline`, `metrics`) for `scripts/bench_report.py`.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "support/cluster.rs"]
mod cluster;

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cluster::{
    LogFollower, Node, NodeOptions, address, bench_mode, gateway, gossip_publisher, latency_stats,
    now_ms, one_event_publishers, percentile, proc_status_kib, write_authority,
};
use serde_json::{Value, json};
use vouch_delegation::Role;
use vouch_schema::{Address, Event, Origin, TelemetryBatch};
use vouch_sdk::{Publisher, PublisherSettings, Signer, Stats};
use vouch_verifier::sim::{Profile, SessionPlan, SplitMix64, Timeline};
use vouch_verifier::store::{SNAPSHOT_FILE, STATE_FILE};

const VERIFIERS: usize = 3;
const REGIONS: [&str; 3] = ["FRA", "NYC", "SIN"];
/// Orchestrators listed in the authority view (the honest sessions' and the
/// flooder's listed targets).
const ORCHESTRATORS: u32 = 10;
/// Gateway index of the flooding principal (keys as [`gateway`]).
const FLOODER: u32 = 999;
/// Attempts the status-heavy envelopes pile their samples onto, per minute.
const STATUS_ATTEMPTS: u64 = 4;
/// Idle connections opened per check once the first batch is open (a slow,
/// steady reconnect: the loopback port range must last the run).
const IDLE_TOP_UP: usize = 400;
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// The longest the bench waits for the last envelopes to reach every log.
const DRAIN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
struct Params {
    quick: bool,
    warm_up: Duration,
    baseline: Duration,
    flood: Duration,
    publishers: u32,
    session_interval_ms: u64,
    flood_rate: f64,
    flood_events: usize,
    burst: usize,
    burst_every: Duration,
    idle: usize,
    sample_every: Duration,
    node_nofile: Option<u64>,
    max_disk_bytes: u64,
}

impl Params {
    fn from_env(quick: bool) -> Params {
        let num = |name: &str, default: f64| {
            std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(default)
        };
        let secs = if quick { 8.0 } else { num("VOUCH_SOAK_SECS", 120.0).max(6.0) };
        let nofile = num("VOUCH_SOAK_NODE_NOFILE", 1024.0) as u64;
        Params {
            quick,
            warm_up: Duration::from_secs(if quick { 3 } else { 5 }),
            baseline: Duration::from_secs_f64(secs / 3.0),
            flood: Duration::from_secs_f64(secs - secs / 3.0),
            publishers: if quick { 3 } else { 20 },
            session_interval_ms: 2_000,
            flood_rate: if quick { 5.0 } else { num("VOUCH_SOAK_FLOOD_RATE", 20.0).max(0.1) },
            flood_events: 150,
            burst: if quick { 100 } else { 1_000 },
            burst_every: Duration::from_secs(if quick { 3 } else { 30 }),
            idle: if quick { 50 } else { num("VOUCH_SOAK_IDLE_CONNECTIONS", 2000.0) as usize },
            sample_every: Duration::from_secs(if quick { 1 } else { 5 }),
            node_nofile: (nofile > 0).then_some(nofile),
            max_disk_bytes: num("VOUCH_SOAK_MAX_DISK_MB", 6144.0) as u64 * 1024 * 1024,
        }
    }
}

/// Wall-clock boundaries of the run, ms since the Unix epoch.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: u64,
    baseline: u64,
    flood: u64,
    end: u64,
}

/// The two measured phases, as array indexes.
const BASELINE: usize = 0;
const FLOOD: usize = 1;
const PHASES: [&str; 2] = ["baseline", "flood"];

impl Clock {
    fn new(p: &Params) -> Clock {
        let start = now_ms();
        let baseline = start + p.warm_up.as_millis() as u64;
        let flood = baseline + p.baseline.as_millis() as u64;
        Clock { start, baseline, flood, end: flood + p.flood.as_millis() as u64 }
    }

    /// The measured phase a time falls in (warm-up and drain: none).
    fn phase(&self, ts: u64) -> Option<usize> {
        if ts < self.baseline || ts >= self.end {
            None
        } else if ts < self.flood {
            Some(BASELINE)
        } else {
            Some(FLOOD)
        }
    }

    fn secs(&self, ts: u64) -> f64 {
        ts.saturating_sub(self.start) as f64 / 1000.0
    }
}

fn sleep_until(ms: u64) {
    let now = now_ms();
    if ms > now {
        std::thread::sleep(Duration::from_millis(ms - now));
    }
}

// ------------------------------------------------------------ node probes

/// What the traffic threads are doing now, for the sampler's timeline.
#[derive(Debug, Default)]
struct Live {
    /// Idle HTTP connections held open.
    idle_open: AtomicU64,
    /// Envelopes the flooder's publishers signed and handed to gossip.
    flood_sent: AtomicU64,
    /// Set once the look at the flood's start is taken: the attack starts then.
    flood_go: AtomicBool,
}

impl Live {
    /// Waits for the flood phase and for the look at its start.
    fn wait_for_flood(&self, clock: &Clock) {
        sleep_until(clock.flood);
        while !self.flood_go.load(Ordering::Relaxed) && now_ms() < clock.end {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What the sampler needs of a node (it never owns the process).
#[derive(Debug, Clone)]
struct Probe {
    pid: u32,
    http: String,
    data_dir: PathBuf,
    stderr: PathBuf,
}

/// One look at one node.
#[derive(Debug, Clone, Default)]
struct Sample {
    t_ms: u64,
    alive: bool,
    rss_kib: Option<u64>,
    fds: Option<u64>,
    nofile: Option<u64>,
    healthz_ms: Option<u64>,
    metrics: Option<BTreeMap<String, f64>>,
    stats: Option<Value>,
    redb_bytes: u64,
    snapshot_file_bytes: u64,
    log_bytes: u64,
    stderr_bytes: u64,
    idle_open: u64,
    flood_sent: u64,
}

impl Sample {
    fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.as_ref()?.get(key).copied()
    }

    fn stat(&self, key: &str) -> Option<u64> {
        self.stats.as_ref()?.get(key)?.as_u64()
    }

    fn disk_bytes(&self) -> u64 {
        self.redb_bytes + self.snapshot_file_bytes + self.log_bytes
    }
}

/// A minimal HTTP/1.1 GET with short timeouts: (status, body), or `None`
/// when the node did not answer (refused, timed out, closed).
fn http_get(host_port: &str, path: &str) -> Option<(u16, String)> {
    let addr: SocketAddr = host_port.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    // Chunked bodies carry size lines; the JSON and Prometheus parsers below
    // skip what they do not understand, and axum sends these with a length.
    Some((status, body.to_owned()))
}

/// Prometheus text: `name{labels}` → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Alive unless gone or a zombie (exited, not yet reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// The soft `Max open files` of a process.
fn nofile(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

fn sample(probe: &Probe, clock: &Clock, live: &Live) -> Sample {
    let pid = probe.pid;
    let up = alive(pid);
    let healthz = {
        let t = Instant::now();
        http_get(&probe.http, "/healthz")
            .filter(|(status, _)| *status == 200)
            .map(|_| t.elapsed().as_millis() as u64)
    };
    let metrics = http_get(&probe.http, "/metrics")
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| parse_metrics(&body));
    let stats = http_get(&probe.http, "/v1/ingest/stats")
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_str(&body).ok());
    Sample {
        t_ms: now_ms().saturating_sub(clock.start),
        alive: up,
        rss_kib: if up { proc_status_kib(pid, "VmRSS:") } else { None },
        fds: if up {
            std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count() as u64)
        } else {
            None
        },
        nofile: if up { nofile(pid) } else { None },
        healthz_ms: healthz,
        metrics,
        stats,
        redb_bytes: file_len(&probe.data_dir.join(STATE_FILE)),
        snapshot_file_bytes: file_len(&probe.data_dir.join(SNAPSHOT_FILE)),
        log_bytes: dir_bytes(&probe.data_dir.join("log")),
        stderr_bytes: file_len(&probe.stderr),
        idle_open: live.idle_open.load(Ordering::Relaxed),
        flood_sent: live.flood_sent.load(Ordering::Relaxed),
    }
}

/// Samples every node every `every` until `stop`; raises `disk_full` once
/// the nodes' data together pass `max_disk`.
fn sampler(
    probes: Vec<Probe>,
    clock: Clock,
    every: Duration,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    disk_full: Arc<AtomicBool>,
    max_disk: u64,
) -> Vec<Vec<Sample>> {
    let mut out: Vec<Vec<Sample>> = vec![Vec::new(); probes.len()];
    let mut next = now_ms();
    while !stop.load(Ordering::Relaxed) {
        for (n, probe) in probes.iter().enumerate() {
            out[n].push(sample(probe, &clock, &live));
        }
        let disk: u64 = out.iter().filter_map(|s| s.last()).map(Sample::disk_bytes).sum();
        if disk > max_disk {
            disk_full.store(true, Ordering::Relaxed);
        }
        next += every.as_millis() as u64;
        while now_ms() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    out
}

// ------------------------------------------------------------ log followers

/// What one node's committed log held, by phase.
#[derive(Debug, Default)]
struct Seen {
    honest: [u64; 2],
    honest_latency: [Vec<u64>; 2],
    flood_envelopes: u64,
    flood_bytes: u64,
}

/// Follows a node's log until `stop` (a last pass after it), counting the
/// honest envelopes by the phase of their event and the flooder's.
fn follow(
    data_dir: PathBuf,
    honest: Arc<HashSet<Address>>,
    flooder_delegate: Address,
    clock: Clock,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut follower = LogFollower::new(&data_dir);
    let mut seen = Seen::default();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        follower.poll(|env, bytes, visible| {
            if env.id.publisher == flooder_delegate {
                seen.flood_envelopes += 1;
                seen.flood_bytes += bytes as u64;
            } else if honest.contains(&env.id.publisher) {
                progress.fetch_add(1, Ordering::Relaxed);
                let event_ts = TelemetryBatch::decode(&env.content)
                    .ok()
                    .and_then(|b| b.events.first().and_then(|e| e.ts));
                if let Some(ph) = event_ts.and_then(|ts| clock.phase(ts)) {
                    seen.honest[ph] += 1;
                    seen.honest_latency[ph].push(visible.saturating_sub(env.id.timestamp));
                }
            }
        });
        if stopping {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------ the flooder

#[derive(Debug, Default)]
struct FloodReport {
    batches: [u64; 3],
    events: u64,
    bursts: u64,
    burst_events: u64,
    sdk_refused: u64,
    bulk: Option<Stats>,
    burst: Option<Stats>,
    stopped_early_at_s: Option<f64>,
}

impl FloodReport {
    fn envelopes_sent(&self) -> u64 {
        self.bulk.as_ref().map_or(0, |s| s.sent_envelopes)
            + self.burst.as_ref().map_or(0, |s| s.sent_envelopes)
    }
}

/// A go-livepeer event of the flooder (region FRA, its certificate's).
fn flood_event(family: &str, subtype: &str, rid: &str, orch: Address, ts: u64) -> Event {
    let mut data = json!({
        "type": subtype, "timestamp": ts, "request_id": rid, "stream_id": format!("s-{rid}"),
        "pipeline": "streamdiffusion", "gateway_region": "FRA",
        "orchestrator_info": {"address": orch.to_hex(), "url": ""},
    });
    if family == "ai_stream_status" {
        data["state"] = json!("ONLINE");
        data["inference_status"] = json!({"fps": 30.0, "last_output_time": ts});
        data["input_status"] = json!({"fps": 30.0});
    }
    Event::from_type_and_data(family, data, ts).unwrap()
}

fn random_address(rng: &mut SplitMix64) -> Address {
    let mut a = [0u8; 20];
    for chunk in a.chunks_mut(8) {
        let bytes = rng.next_u64().to_be_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    Address(a)
}

/// Floods from the flood phase's start until its end (or `stop`): one
/// envelope's worth of one costly pattern per tick, in turn, and a burst of
/// one-event envelopes beyond the rate limit every `burst_every`.
fn flood(
    p: Params,
    clock: Clock,
    bootstrap: Vec<String>,
    listed: Vec<Address>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
) -> FloodReport {
    let mut report = FloodReport::default();
    let bulk = gossip_publisher(
        gateway(FLOODER, "FRA").1,
        PublisherSettings {
            max_events: p.flood_events,
            linger: Duration::from_millis(50),
            ..PublisherSettings::default()
        },
        &bootstrap,
    );
    let burst = gossip_publisher(
        gateway(FLOODER, "FRA").1,
        PublisherSettings { max_events: 1, linger: Duration::ZERO, ..PublisherSettings::default() },
        &bootstrap,
    );
    let mut rng = SplitMix64::new(0x0066_6c6f_6f64);
    let mut seq = 0u64;
    let mut next_rid = || {
        seq += 1;
        format!("fl-{seq}")
    };
    live.wait_for_flood(&clock);
    let tick_ms = 1000.0 / p.flood_rate;
    let mut next_burst = clock.flood + p.burst_every.as_millis() as u64 / 2;
    let mut tick = 0u64;
    while now_ms() < clock.end {
        if stop.load(Ordering::Relaxed) {
            report.stopped_early_at_s = Some(clock.secs(now_ms()));
            break;
        }
        let now = now_ms();
        let pattern = (tick % 3) as usize;
        let minute = now / 60_000;
        for j in 0..p.flood_events {
            let event = match pattern {
                // Many one-event sessions on listed orchestrators.
                0 => flood_event(
                    "stream_trace",
                    "gateway_send_first_ingest_segment",
                    &next_rid(),
                    listed[j % listed.len()],
                    now,
                ),
                // Hundreds of status samples onto a few attempts.
                1 => {
                    let a = (tick / 3 + j as u64) % STATUS_ATTEMPTS;
                    let ts = now - (p.flood_events - j) as u64;
                    flood_event(
                        "ai_stream_status",
                        "status",
                        &format!("fs-{minute}-{a}"),
                        listed[a as usize % listed.len()],
                        ts,
                    )
                }
                // Sessions naming orchestrators nobody listed.
                _ => flood_event(
                    "stream_trace",
                    "gateway_send_first_ingest_segment",
                    &next_rid(),
                    random_address(&mut rng),
                    now,
                ),
            };
            match bulk.publish(event) {
                Ok(()) => report.events += 1,
                Err(_) => report.sdk_refused += 1,
            }
        }
        report.batches[pattern] += 1;
        if now >= next_burst {
            for j in 0..p.burst {
                let e = flood_event(
                    "stream_trace",
                    "gateway_send_first_ingest_segment",
                    &next_rid(),
                    listed[j % listed.len()],
                    now_ms(),
                );
                match burst.publish(e) {
                    Ok(()) => report.burst_events += 1,
                    Err(_) => report.sdk_refused += 1,
                }
            }
            report.bursts += 1;
            next_burst += p.burst_every.as_millis() as u64;
        }
        live.flood_sent
            .store(bulk.stats().sent_envelopes + burst.stats().sent_envelopes, Ordering::Relaxed);
        tick += 1;
        sleep_until(clock.flood + (tick as f64 * tick_ms) as u64);
    }
    // Counters after a flush, before closing: a close that times out (a
    // transport that stopped taking envelopes) returns none.
    for (publisher, slot) in [(bulk, &mut report.bulk), (burst, &mut report.burst)] {
        let _ = publisher.flush(Duration::from_secs(10));
        *slot = Some(publisher.stats());
        let _ = publisher.close(Duration::from_secs(5));
    }
    live.flood_sent.store(report.envelopes_sent(), Ordering::Relaxed);
    report
}

// ------------------------------------------------------------ idle HTTP connections

#[derive(Debug, Default)]
struct IdleReport {
    target: usize,
    connected: u64,
    connect_failed: u64,
    closed_by_node: u64,
    answered: u64,
    first_answer: Option<String>,
    max_open: u64,
    open_at_end: u64,
    lifetimes_ms: Vec<u64>,
}

struct IdleConn {
    stream: TcpStream,
    opened: u64,
    answered: bool,
}

/// Holds `target` connections to `addr` open from the flood phase's start
/// until its end, each having sent an incomplete request header; checks
/// them every [`IDLE_CHECK`] and reopens the ones the node closed.
fn hold_idle(addr: String, target: usize, clock: Clock, live: Arc<Live>) -> IdleReport {
    let mut report = IdleReport { target, ..IdleReport::default() };
    let Ok(sock) = addr.parse::<SocketAddr>() else { return report };
    live.wait_for_flood(&clock);
    let mut conns: Vec<IdleConn> = Vec::with_capacity(target);
    let mut first_round = true;
    while now_ms() < clock.end {
        let mut buf = [0u8; 256];
        conns.retain_mut(|c| match c.stream.read(&mut buf) {
            Ok(0) => {
                report.closed_by_node += 1;
                report.lifetimes_ms.push(now_ms() - c.opened);
                false
            }
            Ok(n) => {
                if !c.answered {
                    c.answered = true;
                    report.answered += 1;
                    if report.first_answer.is_none() {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        report.first_answer = text.lines().next().map(str::to_owned);
                    }
                }
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Err(_) => {
                report.closed_by_node += 1;
                report.lifetimes_ms.push(now_ms() - c.opened);
                false
            }
        });
        let budget = if first_round { target } else { IDLE_TOP_UP };
        first_round = false;
        let (mut tried, mut failed_in_row) = (0, 0);
        while conns.len() < target && tried < budget && failed_in_row < 10 && now_ms() < clock.end {
            tried += 1;
            match TcpStream::connect_timeout(&sock, Duration::from_secs(1)) {
                Ok(mut stream) => {
                    failed_in_row = 0;
                    report.connected += 1;
                    let _ = write!(stream, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n");
                    let _ = stream.set_nonblocking(true);
                    conns.push(IdleConn { stream, opened: now_ms(), answered: false });
                }
                Err(_) => {
                    failed_in_row += 1;
                    report.connect_failed += 1;
                }
            }
        }
        live.idle_open.store(conns.len() as u64, Ordering::Relaxed);
        report.max_open = report.max_open.max(conns.len() as u64);
        sleep_until((now_ms() + IDLE_CHECK.as_millis() as u64).min(clock.end));
    }
    report.open_at_end = conns.len() as u64;
    live.idle_open.store(0, Ordering::Relaxed);
    report
}

// ------------------------------------------------------------ honest traffic

/// The honest gateways' sessions, planned ahead and published when due.
struct Honest {
    publishers: Vec<Publisher>,
    regions: Vec<&'static str>,
    timeline: Timeline,
    next_session: Vec<u64>,
    sessions: u64,
    rng: SplitMix64,
    sent: [u64; 2],
    refused: [u64; 2],
    sent_total: u64,
}

impl Honest {
    fn plan_and_publish(&mut self, p: &Params, clock: &Clock, listed: &[Address]) {
        let now = now_ms();
        for g in 0..self.publishers.len() {
            while self.next_session[g] <= now && self.next_session[g] < clock.end {
                let k = self.sessions as usize;
                let plan = SessionPlan {
                    request_id: format!("g{g}-{k}"),
                    orchestrator: listed[k % listed.len()],
                    profile: Profile::Healthy,
                    backup: listed[(k + 1) % listed.len()],
                    region: self.regions[g].to_owned(),
                    origin: Origin::Production,
                    start_ms: self.next_session[g],
                    nth: 0,
                };
                for e in plan.events(&mut self.rng) {
                    self.timeline.push(e.at_ms, g, e.event);
                }
                self.sessions += 1;
                self.next_session[g] += p.session_interval_ms;
            }
        }
        for (g, event) in self.timeline.due(now.min(clock.end.saturating_sub(1))) {
            let phase = event.ts.and_then(|ts| clock.phase(ts));
            let ok = self.publishers[g].publish(event).is_ok();
            if ok {
                self.sent_total += 1;
            }
            if let Some(ph) = phase {
                if ok {
                    self.sent[ph] += 1;
                } else {
                    self.refused[ph] += 1;
                }
            }
        }
    }
}

// ------------------------------------------------------------ figures

/// A line without ANSI colour sequences (`ESC [ … m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A tracing line's level, target and message, without its timestamp and
/// field values, so that repeats of one warning count together.
fn message_of(line: &str) -> String {
    let body = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
    let head = match body.split_once('=') {
        Some((before, _)) => before.rsplit_once(' ').map_or(before, |(h, _)| h),
        None => body,
    };
    head.chars().take(120).collect()
}

/// A node's stderr (its warnings and errors) in brief: how many lines,
/// the first and last two, and the commonest messages.
fn stderr_summary(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text.lines().map(plain).collect();
    let clip = |l: &String| l.chars().take(240).collect::<String>();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        *counts.entry(message_of(l)).or_default() += 1;
    }
    let mut common: Vec<(String, u64)> = counts.into_iter().collect();
    common.sort_by_key(|c| std::cmp::Reverse(c.1));
    common.truncate(3);
    json!({
        "lines": lines.len(),
        "bytes": text.len(),
        "first": lines.iter().take(2).map(clip).collect::<Vec<_>>(),
        "last": lines.iter().rev().take(2).rev().map(clip).collect::<Vec<_>>(),
        "commonest": common.into_iter().map(|(m, n)| json!({"count": n, "message": m})).collect::<Vec<_>>(),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// min, median, max and final of some values.
fn spread(values: &[f64]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    json!({
        "min": round2(sorted[0]),
        "median": round2(sorted[sorted.len() / 2]),
        "max": round2(sorted[sorted.len() - 1]),
        "final": round2(values[values.len() - 1]),
    })
}

fn mib(bytes: f64) -> f64 {
    bytes / 1_048_576.0
}

/// `new - old` of every counter present at the end, by key.
fn delta(
    old: Option<&BTreeMap<String, f64>>,
    new: Option<&BTreeMap<String, f64>>,
    prefix: &str,
) -> BTreeMap<String, f64> {
    let Some(new) = new else { return BTreeMap::new() };
    new.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v - old.and_then(|o| o.get(k)).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// Non-accepted outcomes between two `/v1/ingest/stats`, as `outcome/reason`.
fn refusals(old: Option<&Value>, new: Option<&Value>) -> BTreeMap<String, u64> {
    let rows = |v: Option<&Value>| -> BTreeMap<String, u64> {
        v.and_then(|v| v["by_reason"].as_array())
            .into_iter()
            .flatten()
            .filter(|r| r["outcome"] != json!("accept"))
            .map(|r| {
                (
                    format!(
                        "{}/{}",
                        r["outcome"].as_str().unwrap_or("?"),
                        r["reason"].as_str().unwrap_or("?")
                    ),
                    r["count"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let (old, new) = (rows(old), rows(new));
    new.into_iter()
        .map(|(k, v)| {
            let d = v.saturating_sub(old.get(&k).copied().unwrap_or(0));
            (k, d)
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// A label-less counter of `vouch_sla_events_total`.
fn sla_counter(s: &Sample, name: &str) -> Option<f64> {
    s.metric(&format!("vouch_sla_events_total{{counter=\"{name}\"}}"))
}

/// Figures of one node over one phase: samples in `[from, to)` ms and the
/// boundary looks `first` and `last`.
#[allow(clippy::too_many_arguments)]
fn node_phase(
    n: usize,
    samples: &[Sample],
    from: u64,
    to: u64,
    first: &Sample,
    last: &Sample,
    flooder_principal: Address,
) -> Value {
    let within: Vec<&Sample> =
        samples.iter().filter(|s| s.t_ms >= from && s.t_ms < to).chain([last]).collect();
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
        within.iter().filter_map(|s| f(s)).collect()
    };
    let rss = series(&|s| s.rss_kib.map(|k| k as f64 / 1024.0));
    let state = series(&|s| s.metric("vouch_sla_state_bytes").map(mib));
    let fds = series(&|s| s.fds.map(|f| f as f64));
    let flooder_key = format!("{{principal=\"{}\"}}", flooder_principal.to_hex());
    let flooder_bytes =
        series(&|s| s.metric(&format!("vouch_sla_principal_state_bytes{flooder_key}")).map(mib));
    let flooder_sessions =
        series(&|s| s.metric(&format!("vouch_sla_principal_sessions{flooder_key}")));
    let healthz_failed = within.iter().filter(|s| s.alive && s.healthz_ms.is_none()).count();
    let accepted_events = sla_counter(last, "events_accepted");
    let state_bytes = last.metric("vouch_sla_state_bytes");
    let per_event = match (state_bytes, accepted_events) {
        (Some(b), Some(e)) if e > 0.0 => Some((b / e).round()),
        _ => None,
    };
    let ingest = |key: &str| match (first.stat(key), last.stat(key)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    json!({
        "node": n,
        "alive_at_end": last.alive,
        "samples": within.len(),
        "rss_mib": spread(&rss),
        "fds_max": fds.iter().copied().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
        "nofile_soft": last.nofile.or(first.nofile),
        "sla_state_mib": spread(&state),
        "sla_snapshot_bytes": last.metric("vouch_sla_snapshot_bytes"),
        "state_file_bytes_metric": last.metric("vouch_state_file_bytes"),
        "redb_bytes": last.redb_bytes,
        "sla_snapshot_file_bytes": last.snapshot_file_bytes,
        "log_bytes": last.log_bytes,
        "stderr_bytes": last.stderr_bytes,
        "healthz_failed": healthz_failed,
        "healthz_ms_max": within.iter().filter_map(|s| s.healthz_ms).max(),
        "ingest": {
            "accepted": ingest("accepted"),
            "rejected": ingest("rejected"),
            "ignored": ingest("ignored"),
            "shed": ingest("shed"),
            "refused_by_reason": refusals(first.stats.as_ref(), last.stats.as_ref()),
        },
        "sla_events": delta(first.metrics.as_ref(), last.metrics.as_ref(), "vouch_sla_events_total")
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("vouch_sla_events_total{counter=\"").trim_end_matches("\"}").to_owned(), v))
            .collect::<BTreeMap<_, _>>(),
        "sla_events_accepted_total": accepted_events,
        "sla_state_bytes_final": state_bytes,
        "state_bytes_per_accepted_event": per_event,
        "flooder_state_mib": spread(&flooder_bytes),
        "flooder_sessions": spread(&flooder_sessions),
    })
}

/// Final values of metric families other work may add (HTTP connection
/// limits, gossip send drops): whatever the node exports under these names.
fn extra_metrics(s: &Sample) -> BTreeMap<String, f64> {
    s.metrics
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.starts_with("vouch_http_")
                || k.starts_with("vouch_gossip_")
                || k.starts_with("vouch_p2p_")
                || k.starts_with("vouch_ingest_shed")
                || k.contains("drop")
                || k.contains("slow")
                || k.starts_with("vouch_guard_evictions")
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn main() {
    let Some(quick) = bench_mode("soak_smoke") else { return };
    let mut p = Params::from_env(quick);
    // The idle connections are this process's descriptors: leave room for
    // the publishers' sockets and the log followers.
    if let Some(own) = nofile(std::process::id())
        && own < p.idle as u64 + 512
    {
        let fit = own.saturating_sub(512) as usize;
        eprintln!(
            "soak: our descriptor limit is {own}; holding {fit} idle connections, not {} \
             (raise it with `ulimit -n`)",
            p.idle
        );
        p.idle = fit;
    }
    let work = tempfile::Builder::new().prefix("vouch-soak-").tempdir().unwrap();

    // Principals: 20 honest gateways over three regions, the flooder, and
    // the listed orchestrators.
    let honest_ids: Vec<(Address, Signer)> =
        (0..p.publishers).map(|n| gateway(n, REGIONS[n as usize % REGIONS.len()])).collect();
    let (flooder_principal, flooder_signer) = gateway(FLOODER, "FRA");
    // The log names the delegate that signed; the SLA metrics the principal.
    let flooder_delegate = flooder_signer.address();
    drop(flooder_signer);
    let listed: Vec<Address> = (0..ORCHESTRATORS).map(|i| address(5000 + i)).collect();
    let mut principals: Vec<(Address, Role)> =
        honest_ids.iter().map(|(a, _)| (*a, Role::Gateway)).collect();
    principals.push((flooder_principal, Role::Gateway));
    principals.extend(listed.iter().map(|a| (*a, Role::Orchestrator)));
    let snapshot = work.path().join("authority.json");
    write_authority(&snapshot, &principals);
    let policy = work.path().join("sla-policy-demo.toml");
    std::fs::write(&policy, include_str!("../../schemas/policy/sla-policy-demo.toml")).unwrap();
    let config = work.path().join("verifier.toml");
    std::fs::write(&config, "[sla]\npolicy = \"sla-policy-demo.toml\"\n").unwrap();

    let mut nodes = Node::spawn_mesh(
        work.path(),
        VERIFIERS,
        &snapshot,
        &NodeOptions { config: Some(config), soft_nofile: p.node_nofile },
    );
    let bootstrap: Vec<String> = nodes.iter().map(Node::p2p).collect();
    let probes: Vec<Probe> = nodes
        .iter()
        .map(|n| Probe {
            pid: n.pid(),
            http: n.http(),
            data_dir: n.data_dir.clone(),
            stderr: n.stderr.clone(),
        })
        .collect();
    let honest_delegates: Arc<HashSet<Address>> =
        Arc::new(honest_ids.iter().map(|(_, s)| s.address()).collect());
    let regions: Vec<&'static str> =
        (0..p.publishers as usize).map(|n| REGIONS[n % REGIONS.len()]).collect();
    let publishers = one_event_publishers(honest_ids.into_iter().map(|(_, s)| s), &bootstrap);

    let clock = Clock::new(&p);
    let stop_followers = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<AtomicU64>> =
        (0..VERIFIERS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let followers: Vec<_> = nodes
        .iter()
        .zip(&progress)
        .map(|(node, progress)| {
            let (dir, honest, progress, stop) = (
                node.data_dir.clone(),
                Arc::clone(&honest_delegates),
                Arc::clone(progress),
                Arc::clone(&stop_followers),
            );
            std::thread::spawn(move || follow(dir, honest, flooder_delegate, clock, progress, stop))
        })
        .collect();
    let live = Arc::new(Live::default());
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let disk_full = Arc::new(AtomicBool::new(false));
    let sampler_thread = {
        let (probes, live, stop, disk_full) =
            (probes.clone(), Arc::clone(&live), Arc::clone(&stop_sampler), Arc::clone(&disk_full));
        let (every, max_disk) = (p.sample_every, p.max_disk_bytes);
        std::thread::spawn(move || sampler(probes, clock, every, live, stop, disk_full, max_disk))
    };
    let flood_thread = {
        let (p, bootstrap, listed, stop, live) = (
            p.clone(),
            bootstrap.clone(),
            listed.clone(),
            Arc::clone(&disk_full),
            Arc::clone(&live),
        );
        std::thread::spawn(move || flood(p, clock, bootstrap, listed, stop, live))
    };
    let idle_thread = {
        let (addr, target, open) = (probes[0].http.clone(), p.idle, Arc::clone(&live));
        std::thread::spawn(move || hold_idle(addr, target, clock, open))
    };
    let looks = |probes: &[Probe]| -> Vec<Sample> {
        probes.iter().map(|pr| sample(pr, &clock, &live)).collect()
    };

    eprintln!(
        "soak: {VERIFIERS} nodes, {} honest publishers; warm-up {:?}, baseline {:?}, flood {:?} (data in {})",
        p.publishers,
        p.warm_up,
        p.baseline,
        p.flood,
        work.path().display()
    );
    let mut honest = Honest {
        publishers,
        regions,
        timeline: Timeline::new(1 << 20),
        next_session: (0..p.publishers as u64)
            .map(|g| clock.start + g * p.session_interval_ms / u64::from(p.publishers))
            .collect(),
        sessions: 0,
        rng: SplitMix64::new(0x736f_616b),
        sent: [0; 2],
        refused: [0; 2],
        sent_total: 0,
    };
    let mut boundary: Vec<Vec<Sample>> = Vec::new();
    let mut last_status = Instant::now();
    while now_ms() < clock.end {
        honest.plan_and_publish(&p, &clock, &listed);
        let now = now_ms();
        if (boundary.is_empty() && now >= clock.baseline)
            || (boundary.len() == 1 && now >= clock.flood)
        {
            boundary.push(looks(&probes));
            live.flood_go.store(boundary.len() == 2, Ordering::Relaxed);
        }
        if last_status.elapsed() >= Duration::from_secs(30) {
            last_status = Instant::now();
            eprintln!(
                "  [{:>5.0} s] honest published {} | idle connections open {}",
                clock.secs(now),
                honest.sent_total,
                live.idle_open.load(Ordering::Relaxed)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    while boundary.len() < 2 {
        boundary.push(looks(&probes));
    }
    live.flood_go.store(true, Ordering::Relaxed);

    // Drain: the flood and the idle connections stop, the honest publishers
    // flush, and the logs catch up (bounded), then the last look.
    let flood_report = flood_thread.join().unwrap();
    let idle_report = idle_thread.join().unwrap();
    for pb in &honest.publishers {
        let _ = pb.flush(Duration::from_secs(10));
    }
    let drained = Instant::now();
    let mut last_progress = (Instant::now(), 0u64);
    while drained.elapsed() < DRAIN {
        let seen: Vec<u64> = progress.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        if seen.iter().all(|s| *s >= honest.sent_total) {
            break;
        }
        let sum: u64 = seen.iter().sum();
        if sum != last_progress.1 {
            last_progress = (Instant::now(), sum);
        } else if last_progress.0.elapsed() > Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    boundary.push(looks(&probes));
    stop_sampler.store(true, Ordering::Relaxed);
    stop_followers.store(true, Ordering::Relaxed);
    let samples = sampler_thread.join().unwrap();
    let seen: Vec<Seen> = followers.into_iter().map(|h| h.join().unwrap()).collect();
    let exits: Vec<Option<String>> = nodes
        .iter_mut()
        .map(|n| n.child.try_wait().ok().flatten().map(|status| status.to_string()))
        .collect();
    let logs: Vec<Value> = nodes.iter().map(|n| stderr_summary(&n.stderr)).collect();
    let honest_stats: Vec<Stats> = honest
        .publishers
        .drain(..)
        .filter_map(|pb| pb.close(Duration::from_secs(5)).ok())
        .collect();
    drop(nodes);

    report(
        &p,
        &clock,
        &honest,
        &honest_stats,
        &flood_report,
        &idle_report,
        &seen,
        &samples,
        &boundary,
        &exits,
        &logs,
        flooder_principal,
    );
    if p.quick {
        assert!(exits.iter().all(Option::is_none), "a node exited during the smoke run: {exits:?}");
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    p: &Params,
    clock: &Clock,
    honest: &Honest,
    honest_stats: &[Stats],
    flood: &FloodReport,
    idle: &IdleReport,
    seen: &[Seen],
    samples: &[Vec<Sample>],
    boundary: &[Vec<Sample>],
    exits: &[Option<String>],
    logs: &[Value],
    flooder_principal: Address,
) {
    let node_exits = exits.iter().filter(|e| e.is_some()).count();
    let max_rss = samples
        .iter()
        .flatten()
        .chain(boundary.iter().flatten())
        .filter_map(|s| s.rss_kib)
        .max()
        .map(|k| round1(k as f64 / 1024.0));
    let flood_publishers: Vec<Value> = [("bulk", &flood.bulk), ("burst", &flood.burst)]
        .iter()
        .map(|(name, st)| {
            st.as_ref().map_or(json!({"publisher": name}), |st| {
                json!({
                    "publisher": name,
                    "sent_envelopes": st.sent_envelopes,
                    "sent_events": st.sent_events,
                    "queued": st.queued,
                    "dropped_queue_full": st.dropped_queue_full,
                    "dropped_transport": st.dropped_transport,
                    "transport_pending": st.transport_pending,
                    "transport_dropped": st.transport_dropped,
                    "last_error": st.last_error,
                })
            })
        })
        .collect::<Vec<_>>();
    let run = json!({
        "bench": "soak",
        "group": "run",
        "quick": p.quick,
        "verifiers": VERIFIERS,
        "honest_publishers": p.publishers,
        "regions": REGIONS,
        "listed_orchestrators": ORCHESTRATORS,
        "session_interval_ms": p.session_interval_ms,
        "warm_up_s": p.warm_up.as_secs_f64(),
        "baseline_s": round1(p.baseline.as_secs_f64()),
        "flood_s": round1(p.flood.as_secs_f64()),
        "sample_every_s": p.sample_every.as_secs_f64(),
        "policy": "sla-policy-demo",
        "limits": "defaults",
        "node_soft_nofile": p.node_nofile,
        "flood": {
            "rate_per_s": p.flood_rate,
            "events_per_envelope": p.flood_events,
            "burst_envelopes": p.burst,
            "burst_every_s": p.burst_every.as_secs(),
            "batches_by_pattern": {
                "one_event_sessions": flood.batches[0],
                "status_heavy": flood.batches[1],
                "unlisted_orchestrators": flood.batches[2],
            },
            "events": flood.events,
            "bursts": flood.bursts,
            "burst_events": flood.burst_events,
            "sdk_refused": flood.sdk_refused,
            "envelopes_sent": flood.envelopes_sent(),
            "publishers": flood_publishers,
            "stopped_early_at_s": flood.stopped_early_at_s,
        },
        "honest_sdk": {
            "sent_envelopes": honest_stats.iter().map(|s| s.sent_envelopes).sum::<u64>(),
            "dropped_queue_full": honest_stats.iter().map(|s| s.dropped_queue_full).sum::<u64>(),
            "dropped_transport": honest_stats.iter().map(|s| s.dropped_transport).sum::<u64>(),
        },
        "node_exits": node_exits,
        "exit_status": exits,
        "node_logs": logs,
        "max_rss_mib": max_rss,
        "seconds": round1(clock.secs(now_ms())),
    });
    println!(
        "soak: {VERIFIERS} nodes, {} honest gateways (a healthy session every {} ms each, 1 event \
         per envelope), warm-up {} s, baseline {:.0} s, flood {:.0} s; node exits: {node_exits}; \
         max RSS {} MiB",
        p.publishers,
        p.session_interval_ms,
        p.warm_up.as_secs(),
        p.baseline.as_secs_f64(),
        p.flood.as_secs_f64(),
        max_rss.map_or("n/a".to_owned(), |m| m.to_string()),
    );
    for (n, l) in logs.iter().enumerate() {
        if l["lines"].as_u64().unwrap_or(0) > 0 {
            println!("node {n} stderr: {l}");
        }
    }
    println!("vouch-bench-json: {run}");

    let bounds = [(clock.baseline, clock.flood), (clock.flood, u64::MAX)];
    for ph in [BASELINE, FLOOD] {
        let (from, to) = (bounds[ph].0 - clock.start, bounds[ph].1.saturating_sub(clock.start));
        let sent = honest.sent[ph];
        let per_node: Vec<Value> = seen
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let rate = if sent > 0 { s.honest[ph] as f64 / sent as f64 } else { f64::NAN };
                json!({
                    "node": n,
                    "accepted": s.honest[ph],
                    "rate": (rate * 10_000.0).round() / 10_000.0,
                    "latency": latency_stats(s.honest_latency[ph].clone()),
                })
            })
            .collect();
        let min_rate = per_node.iter().filter_map(|v| v["rate"].as_f64()).fold(f64::NAN, f64::min);
        let nodes: Vec<Value> = (0..samples.len())
            .map(|n| {
                node_phase(
                    n,
                    &samples[n],
                    from,
                    to,
                    &boundary[ph][n],
                    &boundary[ph + 1][n],
                    flooder_principal,
                )
            })
            .collect();
        let flood_part = (ph == FLOOD).then(|| {
            let sent = flood.envelopes_sent();
            let per: Vec<Value> = seen
                .iter()
                .zip(&nodes)
                .map(|(s, v)| {
                    let refused: u64 = v["ingest"]["refused_by_reason"]
                        .as_object()
                        .map(|m| m.values().filter_map(Value::as_u64).sum())
                        .unwrap_or(0);
                    let shed = v["ingest"]["shed"].as_u64().unwrap_or(0);
                    json!({
                        "node": v["node"],
                        "accepted_envelopes": s.flood_envelopes,
                        "accepted_mib": round1(mib(s.flood_bytes as f64)),
                        "refused_all_principals": refused,
                        "unaccounted": sent as i64 - s.flood_envelopes as i64 - refused as i64 - shed as i64,
                    })
                })
                .collect();
            json!({"envelopes_sent": sent, "per_node": per})
        });
        let out = json!({
            "bench": "soak",
            "group": "phase",
            "phase": PHASES[ph],
            "seconds": round1((to.min(clock.end - clock.start) - from) as f64 / 1000.0),
            "honest": {
                "sent": sent,
                "sdk_refused": honest.refused[ph],
                "min_rate": if min_rate.is_nan() { Value::Null } else { json!(min_rate) },
                "per_node": per_node,
            },
            "flood": flood_part,
            "nodes": nodes,
        });
        println!("{}: honest sent {sent}, refused by the SDK {}", PHASES[ph], honest.refused[ph]);
        for (v, h) in out["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(out["honest"]["per_node"].as_array().unwrap())
        {
            let f = |x: &Value| if x.is_null() { "n/a".to_owned() } else { x.to_string() };
            println!(
                "  node {}: honest accepted {} ({}), p50 {} ms, p99 {} ms | RSS MiB {} | fds max {} | \
                 SLA state MiB {} | {} B/event | redb {} B, sla.snapshot {} B, log {} B | refused {} | \
                 healthz failures {}",
                v["node"],
                h["accepted"],
                h["rate"],
                f(&h["latency"]["p50_ms"]),
                f(&h["latency"]["p99_ms"]),
                f(&v["rss_mib"]),
                f(&v["fds_max"]),
                f(&v["sla_state_mib"]),
                f(&v["state_bytes_per_accepted_event"]),
                v["redb_bytes"],
                v["sla_snapshot_file_bytes"],
                v["log_bytes"],
                v["ingest"]["refused_by_reason"],
                v["healthz_failed"],
            );
        }
        if let Some(fl) = out["flood"].as_object() {
            println!("  flood: {}", Value::Object(fl.clone()));
        }
        println!("vouch-bench-json: {out}");
    }

    let mut lifetimes = idle.lifetimes_ms.clone();
    lifetimes.sort_unstable();
    let idle_json = json!({
        "bench": "soak",
        "group": "idle_http",
        "node": 0,
        "target": idle.target,
        "connected": idle.connected,
        "connect_failed": idle.connect_failed,
        "closed_by_node": idle.closed_by_node,
        "answered": idle.answered,
        "first_answer": idle.first_answer,
        "max_open": idle.max_open,
        "open_at_end": idle.open_at_end,
        "lifetime_ms_p50": percentile(&lifetimes, 0.5),
        "lifetime_ms_max": lifetimes.last(),
    });
    println!(
        "idle HTTP connections to node 0: target {}, connected {}, connect failures {}, closed by \
         the node {}, answered {} ({}), at most {} open at once, {} open at the end",
        idle.target,
        idle.connected,
        idle.connect_failed,
        idle.closed_by_node,
        idle.answered,
        idle.first_answer.as_deref().unwrap_or("-"),
        idle.max_open,
        idle.open_at_end
    );
    println!("vouch-bench-json: {idle_json}");

    let timeline: Vec<Value> = samples
        .iter()
        .enumerate()
        .map(|(n, s)| {
            json!({
                "node": n,
                "t_s": s.iter().map(|x| round1(x.t_ms as f64 / 1000.0)).collect::<Vec<_>>(),
                "alive": s.iter().map(|x| x.alive).collect::<Vec<_>>(),
                "rss_mib": s.iter().map(|x| x.rss_kib.map(|k| round1(k as f64 / 1024.0))).collect::<Vec<_>>(),
                "fds": s.iter().map(|x| x.fds).collect::<Vec<_>>(),
                "sla_state_mib": s.iter().map(|x| x.metric("vouch_sla_state_bytes").map(|b| round2(mib(b)))).collect::<Vec<_>>(),
                "redb_mib": s.iter().map(|x| round1(mib(x.redb_bytes as f64))).collect::<Vec<_>>(),
                "idle_open": s.iter().map(|x| x.idle_open).collect::<Vec<_>>(),
                "flood_sent": s.iter().map(|x| x.flood_sent).collect::<Vec<_>>(),
                "ingest_accepted": s.iter().map(|x| x.stat("accepted")).collect::<Vec<_>>(),
            })
        })
        .collect();
    println!(
        "vouch-bench-json: {}",
        json!({"bench": "soak", "group": "timeline", "baseline_at_s": clock.secs(clock.baseline),
               "flood_at_s": clock.secs(clock.flood), "end_at_s": clock.secs(clock.end), "nodes": timeline})
    );
    let extra: Vec<Value> = boundary[2]
        .iter()
        .enumerate()
        .map(|(n, s)| json!({"node": n, "metrics": extra_metrics(s)}))
        .collect();
    for e in &extra {
        println!("node {} connection and drop metrics at the end: {}", e["node"], e["metrics"]);
    }
    println!("vouch-bench-json: {}", json!({"bench": "soak", "group": "metrics", "nodes": extra}));
}
