//! `vouch export ndjson` as a real process over a real segment log holding
//! the 8 go-livepeer fixture events, signed into envelopes: every line is
//! the original Kafka JSON plus provenance; `--from` resumes exactly;
//! `--follow` picks up later commits; a closed pipe ends quietly; a
//! malformed record is an error naming its index.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_schema::{Envelope, Event};
use vouch_testkit::actor::ChainSigner;
use vouch_testkit::cli::Vouch;
use vouch_testkit::fixtures::kafka_samples;
use vouch_testkit::process::stdout_lines;
use vouch_verifier::store::{LogConfig, RecordKind, SegmentLog};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const WAIT: Duration = Duration::from_secs(60);
const CHAIN: &str = "export-test";

type Publisher = ChainSigner;

fn publisher() -> Publisher {
    ChainSigner::new(1, 7, CHAIN)
}

/// The chain's next envelope, holding `events` (Kafka JSON).
fn envelope(p: &mut Publisher, events: &[Value]) -> Envelope {
    p.next(|_| events.iter().map(|e| Event::from_kafka_json(e).unwrap()).collect())
}

/// A log as a node leaves it: an authority-view record, then three
/// envelopes holding the 8 fixtures (3 + 3 + 2), at indexes 1, 2 and 3.
fn fixture_log(dir: &Path, publisher: &mut Publisher) -> (SegmentLog, Vec<Envelope>) {
    let (mut log, _) = SegmentLog::open(dir, LogConfig::default()).unwrap();
    log.append(RecordKind::AuthorityView, b"{\"view\":1}").unwrap();
    let all = kafka_samples();
    let mut envelopes = Vec::new();
    for chunk in all.chunks(3) {
        let env = envelope(publisher, chunk);
        log.append(RecordKind::Envelope, &env.encode()).unwrap();
        envelopes.push(env);
    }
    log.commit().unwrap();
    (log, envelopes)
}

fn export(args: &[&str]) -> Output {
    VOUCH.command(&["export", "ndjson"]).args(args).output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn resume_hint(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    serde_json::from_str(stderr.lines().last().unwrap()).unwrap()
}

/// Checks `line` is fixture `fixture` plus the provenance of event
/// `event_index` of `env`, stored at `log_index`.
fn check_line(
    line: &Value,
    fixture: &Value,
    env: &Envelope,
    log_index: u64,
    event_index: u64,
    p: &Publisher,
) {
    let mut line = line.as_object().unwrap().clone();
    let vouch = line.remove("vouch").unwrap();
    assert_eq!(Value::Object(line), *fixture, "the original Kafka JSON");
    assert_eq!(
        vouch,
        json!({
            "log_index": log_index,
            "event_index": event_index,
            "envelope_hash": blake3::hash(&env.encode()).to_hex().to_string(),
            "principal": p.principal().to_hex(),
            "delegate": p.delegate_address().to_hex(),
            "role": "gateway",
            "region": "FRA",
            "stream_id": env.id.stream_id,
            "partition": 7,
            "timestamp": env.id.timestamp,
            "seq": 0,
            "msg_chain_id": CHAIN,
        })
    );
}

#[test]
fn every_event_comes_out_as_the_original_kafka_json_plus_provenance() {
    let dir = TempDir::new().unwrap();
    let mut publisher = publisher();
    let (_log, envelopes) = fixture_log(dir.path(), &mut publisher);
    let log_dir = dir.path().to_str().unwrap();

    let out = export(&[log_dir]);
    let got = lines(&out);
    let all = kafka_samples();
    assert_eq!(got.len(), all.len());
    for (i, line) in got.iter().enumerate() {
        check_line(
            line,
            &all[i],
            &envelopes[i / 3],
            1 + (i / 3) as u64,
            (i % 3) as u64,
            &publisher,
        );
    }
    // The Kafka members come first, in go-livepeer's order, then `vouch`.
    let first = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(first.starts_with("{\"id\":"), "{first}");
    assert_eq!(resume_hint(&out), json!({"next_log_index": 4}));

    // --from resumes exactly at a record: envelopes 2 and 3, fixtures 3..8.
    let out = export(&[log_dir, "--from", "2"]);
    let got = lines(&out);
    assert_eq!(got.len(), 5);
    for (j, line) in got.iter().enumerate() {
        let i = j + 3;
        check_line(
            line,
            &all[i],
            &envelopes[i / 3],
            1 + (i / 3) as u64,
            (i % 3) as u64,
            &publisher,
        );
    }
    assert_eq!(resume_hint(&out), json!({"next_log_index": 4}));
    // At the end: nothing, and the same hint.
    let out = export(&[log_dir, "--from", "4"]);
    assert!(lines(&out).is_empty());
    assert_eq!(resume_hint(&out), json!({"next_log_index": 4}));
}

#[test]
fn follow_picks_up_records_committed_later_and_stops_on_sigterm() {
    let dir = TempDir::new().unwrap();
    let mut publisher = publisher();
    let (mut log, _) = fixture_log(dir.path(), &mut publisher);
    let mut child = VOUCH
        .command(&["export", "ndjson", dir.path().to_str().unwrap(), "--follow", "--from", "2"])
        .args(["--poll-interval", "20ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut child);
    let all = kafka_samples();
    for fixture in &all[3..8] {
        let line: Value = serde_json::from_str(&rx.recv_timeout(WAIT).unwrap()).unwrap();
        assert_eq!(line["id"], fixture["id"]);
    }

    // Appended but not committed: never exported.
    let pending = envelope(&mut publisher, &all[..1]);
    log.append(RecordKind::Envelope, &pending.encode()).unwrap();
    log.append(RecordKind::Revocation, b"revocation").unwrap();
    let later = envelope(&mut publisher, &all[6..8]);
    log.append(RecordKind::Envelope, &later.encode()).unwrap();
    log.commit().unwrap();
    let got: Vec<Value> =
        (0..3).map(|_| serde_json::from_str(&rx.recv_timeout(WAIT).unwrap()).unwrap()).collect();
    check_line(&got[0], &all[0], &pending, 4, 0, &publisher);
    check_line(&got[1], &all[6], &later, 6, 0, &publisher);
    check_line(&got[2], &all[7], &later, 6, 1, &publisher);

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(resume_hint(&out), json!({"next_log_index": 7}));
    assert!(rx.recv_timeout(WAIT).is_err(), "no more lines");
}

#[test]
fn a_closed_pipe_ends_the_export_quietly() {
    let dir = TempDir::new().unwrap();
    let mut publisher = publisher();
    let (mut log, _) = fixture_log(dir.path(), &mut publisher);
    // Enough output to overflow any pipe buffer.
    let all = kafka_samples();
    for _ in 0..200 {
        log.append(RecordKind::Envelope, &envelope(&mut publisher, &all).encode()).unwrap();
    }
    log.commit().unwrap();
    let mut child = VOUCH
        .command(&["export", "ndjson", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `| head -n 1` does.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"id\":"), "{first}");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    let hint: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert!(hint["next_log_index"].as_u64().unwrap() < 204, "{hint}");
}

#[test]
fn a_malformed_record_is_an_error_naming_it_after_the_lines_before_it() {
    let dir = TempDir::new().unwrap();
    let mut publisher = publisher();
    let (mut log, _) = fixture_log(dir.path(), &mut publisher);
    log.append(RecordKind::Envelope, b"not an envelope").unwrap();
    log.commit().unwrap();
    let out = export(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 8);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log record 4 (segment 0, byte "), "{stderr}");
    assert!(stderr.contains("{\"next_log_index\":4}"), "{stderr}");
    // Not a log directory: a usage error.
    let out = export(&[dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
