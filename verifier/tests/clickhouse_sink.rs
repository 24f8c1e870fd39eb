//! The ClickHouse sink against a real ClickHouse 18.16 (a private server per
//! test): `vouch sink clickhouse` follows a segment log that the test keeps
//! committing signed envelopes to; the server is killed in the middle of
//! the stream and restarted; afterwards the table holds every accepted
//! event exactly once (plain `count()`), and a rerun over the same log adds
//! nothing. Aggregate buckets replace by version. Waits are bounded;
//! nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_schema::{Envelope, Event, TelemetryBatch};
use vouch_testkit::actor::ChainSigner;
use vouch_testkit::authority::gateway_snapshot;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::clickhouse::ClickHouse;
use vouch_testkit::node::NodeProcess;
use vouch_verifier::sink::clickhouse::{ClickHouseClient, SlaMinuteRow};
use vouch_verifier::store::{LogConfig, RecordKind, SegmentLog};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const WAIT: Duration = Duration::from_secs(120);
const DB: &str = "vouch_test";

type Publisher = ChainSigner;

/// The chain's next envelope, holding `count` stream_trace events.
fn envelope(p: &mut Publisher, count: usize) -> Envelope {
    p.next(|ts| {
        (0..count)
            .map(|i| {
                let kafka = json!({
                    "id": format!("ev-{}-{i}", ts),
                    "type": "stream_trace",
                    "timestamp": (ts + i as u64).to_string(),
                    "gateway": "gw-1",
                    "data": {
                        "type": "gateway_receive_stream_request",
                        "stream_id": format!("stream-{}", ts % 7),
                        "request_id": format!("req-{}", ts),
                        "pipeline": "streamdiffusion",
                        "timestamp": ts + i as u64,
                        "orchestrator_info": {"address": "0x1111111111111111111111111111111111111111"}
                    }
                });
                Event::from_kafka_json(&kafka).unwrap()
            })
            .collect()
    })
}

/// A writer of the log, counting the events it committed.
struct Stream {
    log: SegmentLog,
    publisher: Publisher,
    events: u64,
    /// (log index, event count) of every envelope committed.
    envelopes: Vec<(u64, u64)>,
}

impl Stream {
    fn open(dir: &Path) -> Stream {
        let (log, _) = SegmentLog::open(dir, LogConfig::default()).unwrap();
        Stream {
            log,
            publisher: ChainSigner::new(1, 3, "ch-test"),
            events: 0,
            envelopes: Vec::new(),
        }
    }

    /// Commits `n` envelopes of 0 to 6 events each, with an authority-view
    /// record now and then, in groups as a node's group commit makes them.
    fn publish(&mut self, n: usize) {
        for i in 0..n {
            let count = (self.envelopes.len() * 5 + 3) % 7;
            let env = envelope(&mut self.publisher, count);
            let position = self.log.append(RecordKind::Envelope, &env.encode()).unwrap();
            self.envelopes.push((position.index, count as u64));
            self.events += count as u64;
            if i % 17 == 0 {
                self.log.append(RecordKind::AuthorityView, b"{}").unwrap();
            }
            if i % 5 == 4 {
                self.log.commit().unwrap();
            }
        }
        self.log.commit().unwrap();
    }
}

fn sink(ch: &ClickHouse, log_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = VOUCH.command(&["sink", "clickhouse", "--log", log_dir.to_str().unwrap()]);
    cmd.args(["--url", &ch.url()])
        .args(["--database", DB, "--batch-rows", "40", "--flush-interval", "50ms"])
        .args(["--poll-interval", "20ms"])
        .args(extra);
    cmd
}

/// A sink process, killed on drop unless it exited.
struct SinkProcess(Child);

impl Drop for SinkProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `count()` until it equals `want`; panics with the last count.
fn wait_count(ch: &ClickHouse, want: u64, sink: &mut Child) {
    let deadline = Instant::now() + WAIT;
    loop {
        // Until the sink has created the table, there are no rows.
        let got = ch
            .try_query(&format!("SELECT count() FROM {DB}.vouch_events"))
            .map_or(0, |n| n.parse().unwrap());
        if got == want {
            return;
        }
        assert!(got < want, "more rows ({got}) than accepted events ({want})");
        assert!(sink.try_wait().unwrap().is_none(), "the sink exited");
        assert!(Instant::now() < deadline, "{got} of {want} rows arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(mut sink: SinkProcess) -> Value {
    let child = &mut sink.0;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn every_accepted_event_lands_exactly_once_across_a_clickhouse_restart() {
    let mut ch = ClickHouse::start();
    let dir = TempDir::new().unwrap();
    let mut stream = Stream::open(dir.path());
    stream.publish(60);
    let log = std::fs::File::create(dir.path().join("sink.stderr")).unwrap();
    let child = sink(&ch, dir.path(), &[])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = SinkProcess(child);
    wait_count(&ch, stream.events, &mut child.0);

    // ClickHouse dies mid-stream (SIGKILL, perhaps mid-insert), three
    // times; the log keeps growing meanwhile, and the sink keeps retrying.
    for _ in 0..3 {
        stream.publish(40);
        ch.kill();
        stream.publish(80);
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.0.try_wait().unwrap().is_none(), "the sink survives the outage");
        ch.restart();
    }
    stream.publish(50);
    wait_count(&ch, stream.events, &mut child.0);

    // Exactly once, row by row: every (log index, event index) once.
    let keys = ch.query(&format!(
        "SELECT log_index, count(), uniqExact(event_index), max(event_index) \
         FROM {DB}.vouch_events GROUP BY log_index ORDER BY log_index"
    ));
    let got: Vec<(u64, u64)> = keys
        .lines()
        .map(|l| {
            let n: Vec<u64> = l.split('\t').map(|x| x.parse().unwrap()).collect();
            assert_eq!(n[1], n[2], "no duplicate event in record {}", n[0]);
            assert_eq!(n[3] + 1, n[1], "events 0..n of record {}", n[0]);
            (n[0], n[1])
        })
        .collect();
    let want: Vec<(u64, u64)> = stream.envelopes.iter().copied().filter(|e| e.1 > 0).collect();
    assert_eq!(got, want);

    // The rows carry the event and its provenance.
    let row: Value = serde_json::from_str(&ch.query(&format!(
        "SELECT principal, delegate, role, family, subtype, model_id, orchestrator, \
         msg_chain_id, toUInt32(ts) AS ts, kafka_json FROM {DB}.vouch_events \
         ORDER BY log_index, event_index LIMIT 1 FORMAT JSONEachRow"
    )))
    .unwrap();
    assert_eq!(row["principal"], json!(stream.publisher.principal().to_hex()));
    assert_eq!(row["delegate"], json!(stream.publisher.delegate_address().to_hex()));
    assert_eq!(row["role"], "gateway");
    assert_eq!(row["family"], "stream_trace");
    assert_eq!(row["subtype"], "gateway_receive_stream_request");
    assert_eq!(row["model_id"], "streamdiffusion");
    assert_eq!(row["orchestrator"], "0x1111111111111111111111111111111111111111");
    assert_eq!(row["msg_chain_id"], "ch-test");
    assert_eq!(row["ts"], json!(1_764_158_401));
    let kafka: Value = serde_json::from_str(row["kafka_json"].as_str().unwrap()).unwrap();
    assert_eq!(kafka["gateway"], "gw-1");

    let summary = terminate(child);
    let total = stream.events;
    let stderr = std::fs::read_to_string(dir.path().join("sink.stderr")).unwrap();
    assert!(stderr.contains("ClickHouse unreachable"), "the outage was seen: {stderr}");
    // An insert that landed just as the server died is not in the summary
    // (its answer was lost) but is in the table, once.
    assert!(summary["rows"].as_u64().unwrap() <= total, "{summary}");

    // A rerun over the same log range adds nothing, even asked to start at 0.
    let out = sink(&ch, dir.path(), &["--once", "--from", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"], json!(0), "{summary}");
    assert_eq!(ch.number(&format!("SELECT count() FROM {DB}.vouch_events")), total);

    // New commits after a restart of the sink are picked up from where it was.
    stream.publish(7);
    let out = sink(&ch, dir.path(), &["--once"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"].as_u64().unwrap(), stream.events - total, "{summary}");
    assert_eq!(ch.number(&format!("SELECT count() FROM {DB}.vouch_events")), stream.events);
}

#[test]
fn a_sink_started_while_clickhouse_is_down_waits_for_it() {
    let mut ch = ClickHouse::start();
    ch.kill();
    let dir = TempDir::new().unwrap();
    let mut stream = Stream::open(dir.path());
    stream.publish(20);
    let mut child = SinkProcess(sink(&ch, dir.path(), &[]).stdout(Stdio::piped()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.0.try_wait().unwrap().is_none(), "the sink keeps retrying");
    ch.restart();
    wait_count(&ch, stream.events, &mut child.0);
    terminate(child);
}

#[test]
fn aggregate_buckets_replace_by_version() {
    let ch = ClickHouse::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = ClickHouseClient::new(&ch.url(), DB, Duration::from_secs(30)).unwrap();
        client.create_schema().await.unwrap();
        let bucket = SlaMinuteRow {
            orchestrator: "0x1111111111111111111111111111111111111111".to_owned(),
            model_id: "streamdiffusion".to_owned(),
            region: "FRA".to_owned(),
            origin: "production".to_owned(),
            minute_start: 1_764_158_400,
            attempts: 10,
            startup_successes: 9,
            swaps: 1,
            failures: 1,
            excused: 0,
            inference_minutes: 7.5,
            ptff_p50_ms: Some(800.0),
            ptff_p95_ms: Some(1500.0),
            ptff_p99_ms: None,
            version: 1,
        };
        let newer = SlaMinuteRow { attempts: 11, version: 2, ..bucket.clone() };
        client.insert_aggregates(&[bucket]).await.unwrap();
        client.insert_aggregates(&[newer]).await.unwrap();
        // The untyped path, for a producer with its own row type.
        let other = json!({
            "orchestrator": "0x2222222222222222222222222222222222222222", "model_id": "m",
            "region": "FRA", "origin": "synthetic", "minute_start": 1_764_158_460,
            "attempts": 3, "startup_successes": 3, "swaps": 0, "failures": 0, "excused": 0,
            "inference_minutes": 1.0, "ptff_p50_ms": null, "ptff_p95_ms": null,
            "ptff_p99_ms": null, "version": 1
        });
        client.insert_aggregates_json(&[other]).await.unwrap();
        let bad = json!({"orchestrator": 5});
        assert!(client.insert_aggregates_json(&[bad]).await.is_err());
    });
    assert_eq!(ch.number(&format!("SELECT count() FROM {DB}.vouch_sla_minutes FINAL")), 2);
    assert_eq!(
        ch.query(&format!(
            "SELECT attempts, ptff_p95_ms, ptff_p99_ms, toUInt32(minute_start) FROM {DB}.vouch_sla_minutes FINAL \
             WHERE orchestrator = '0x1111111111111111111111111111111111111111'"
        )),
        "11\t1500\t\\N\t1764158400"
    );
}

/// The node itself runs the sink when `[sinks.clickhouse]` is configured:
/// real `vouch node` and `vouch publish` processes on loopback.
#[test]
fn a_node_with_a_clickhouse_sink_inserts_what_it_accepts() {
    use vouch_verifier::store::LogReader;

    let ch = ClickHouse::start();
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let config = work.path().join("verifier.toml");
    std::fs::write(
        &config,
        format!(
            "[sinks.clickhouse]\nurl = \"{}\"\ndatabase = \"node_sink\"\n\
             flush_interval_ms = 50\npoll_interval_ms = 20\n",
            ch.url()
        ),
    )
    .unwrap();
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn_with(
        VOUCH,
        &data_dir,
        &snapshot,
        &[
            "--config",
            config.to_str().unwrap(),
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    ok_json(&gateway.publish(&node.p2p(), "60s"));
    node.wait_stats("an accepted envelope", |s| s["accepted"].as_u64().unwrap() >= 1);

    // What the log holds is what ClickHouse gets.
    let deadline = Instant::now() + WAIT;
    let want = loop {
        let accepted: u64 = LogReader::open(data_dir.join("log"), 0)
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|r| r.kind == RecordKind::Envelope)
            .map(|r| {
                let env = Envelope::decode(&r.payload).unwrap();
                TelemetryBatch::decode(&env.content).unwrap().events.len() as u64
            })
            .sum();
        let got = ch
            .try_query("SELECT count() FROM node_sink.vouch_events")
            .map_or(0, |n| n.parse::<u64>().unwrap());
        if accepted >= 8 && got == accepted {
            break accepted;
        }
        assert!(Instant::now() < deadline, "{got} rows of {accepted} accepted events");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ch.number("SELECT uniqExact(principal, role) FROM node_sink.vouch_events"), 1);
    assert_eq!(
        ch.query("SELECT any(principal) FROM node_sink.vouch_events"),
        gateway.principal.to_lowercase()
    );
    // The node's /metrics carries the sink's counters.
    let line = format!("vouch_sink_clickhouse_rows_total {want}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = node.get("/metrics");
        assert_eq!(status, 200);
        if body.lines().any(|l| l == line) {
            assert!(body.contains("vouch_sink_clickhouse_lag_records "), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no {line:?} in\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(node.terminate().success());
    assert_eq!(ch.number("SELECT count() FROM node_sink.vouch_events"), want);
}

/// Rows per second into ClickHouse: `vouch sink clickhouse --once` over a
/// log of 200 000 events, against the same rows posted as raw
/// `INSERT … FORMAT JSONEachRow` bodies by curl (same batch size, same
/// server). Prints the figures; asserts only that every row arrived.
/// `VOUCH_BENCH_BIN=target/release/vouch` times a release binary.
#[test]
#[ignore = "benchmark: cargo nextest run -p vouch-verifier --test clickhouse_sink --run-ignored only --no-capture"]
fn bench_rows_per_second() {
    use vouch_verifier::sink::clickhouse::client::json_each_row;
    use vouch_verifier::sink::clickhouse::{EventRow, rows::EVENTS_DDL};
    use vouch_verifier::sink::{FollowConfig, Follower};

    const ENVELOPES: usize = 4000;
    const PER_ENVELOPE: usize = 50;
    const BATCH: usize = 10_000;
    let ch = ClickHouse::start();
    let dir = TempDir::new().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut publisher = ChainSigner::new(2, 3, "ch-test");
    for i in 0..ENVELOPES {
        log.append(RecordKind::Envelope, &envelope(&mut publisher, PER_ENVELOPE).encode()).unwrap();
        if i % 100 == 99 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    let total = (ENVELOPES * PER_ENVELOPE) as u64;
    let log_bytes: u64 =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();

    // The sink, a real process, from an empty table to caught up.
    let bin =
        std::env::var("VOUCH_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vouch").to_owned());
    let started = Instant::now();
    let out = Command::new(&bin)
        .args(["sink", "clickhouse", "--log", dir.path().to_str().unwrap(), "--url", &ch.url()])
        .args(["--database", DB, "--batch-rows", &BATCH.to_string(), "--once"])
        .output()
        .unwrap();
    let sink_secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ch.number(&format!("SELECT count() FROM {DB}.vouch_events")), total);

    // The reference: the same rows, pre-encoded, posted by curl.
    let mut follower = Follower::new(
        dir.path(),
        0,
        FollowConfig { max_records: usize::MAX, max_events: usize::MAX, ..FollowConfig::default() },
    );
    let batch = follower.read_available().unwrap();
    let rows: Vec<EventRow> = batch
        .envelopes
        .iter()
        .flat_map(|e| e.events.iter().enumerate().map(move |(i, ev)| EventRow::new(e, i, ev)))
        .collect();
    assert_eq!(rows.len() as u64, total);
    ch.query("CREATE DATABASE ref");
    ch.query(&format!(
        "CREATE TABLE ref.{}",
        EVENTS_DDL.trim_start_matches("CREATE TABLE IF NOT EXISTS ")
    ));
    let files: Vec<_> = rows
        .chunks(BATCH)
        .enumerate()
        .map(|(i, chunk)| {
            let path = dir.path().join(format!("rows-{i}.ndjson"));
            std::fs::write(&path, json_each_row(chunk).unwrap()).unwrap();
            path
        })
        .collect();
    let body_bytes: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let url = format!(
        "{}/?database=ref&query=INSERT%20INTO%20vouch_events%20FORMAT%20JSONEachRow",
        ch.url()
    );
    let started = Instant::now();
    for file in &files {
        let status = Command::new("curl")
            .args(["-sS", "--fail", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(&url)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let curl_secs = started.elapsed().as_secs_f64();
    assert_eq!(ch.number("SELECT count() FROM ref.vouch_events"), total);

    println!(
        "clickhouse sink bench: {total} events in {ENVELOPES} envelopes, log {:.1} MiB, \
         JSONEachRow {:.1} MiB, batches of {BATCH} rows",
        log_bytes as f64 / 1048576.0,
        body_bytes as f64 / 1048576.0
    );
    println!(
        "  vouch sink clickhouse --once ({bin}): {sink_secs:.2} s, {:.0} rows/s (process start, schema, log read + decode, encode, insert)",
        total as f64 / sink_secs
    );
    println!(
        "  reference, curl INSERT FORMAT JSONEachRow of the same rows: {curl_secs:.2} s, {:.0} rows/s",
        total as f64 / curl_secs
    );
}
