//! `vouch replay` end to end, real processes: a log written by a real
//! `vouch node` fed by `vouch publish` replays with the right counts; logs
//! written directly with `SegmentLog` (envelopes signed by `vouch envelope
//! sign`) check that a flipped byte anywhere fails at exactly its frame, and
//! that an unauthorized principal, a revoked delegate and a forged envelope
//! with correct chain hashes each fail at their record.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_delegation::Role;
use vouch_delegation::authority::AuthorityView;
use vouch_schema::Address;
use vouch_testkit::authority::{entry, gateway_snapshot};
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::NodeProcess;
use vouch_testkit::now_ms;
use vouch_verifier::store::{LogConfig, LogReader, Position, RecordKind, SegmentLog};

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

fn replay(dir: &Path) -> Output {
    VOUCH.run(&["replay", dir.to_str().unwrap()])
}

/// Runs `vouch replay`, expects exit 1, returns the JSON and the stderr.
fn replay_fails(dir: &Path) -> (Value, String) {
    let out = replay(dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

fn view_of(principals: &[&str]) -> AuthorityView {
    AuthorityView::new(
        "snapshot:test",
        principals.iter().map(|p| entry(p.parse::<Address>().unwrap(), Role::Gateway)),
    )
}

/// An envelope of the identity's delegate, signed by `vouch envelope sign`.
fn signed(id: &Identity, name: &str, timestamp_ms: u64) -> Vec<u8> {
    id.sign_envelope("d.cert", "replay-test", Some(timestamp_ms), name)
}

/// Appends records to a log in `dir` (small segments: several files).
fn write_log(dir: &Path, records: &[(RecordKind, Vec<u8>)]) -> Vec<Position> {
    let (mut log, _) =
        SegmentLog::open(dir, LogConfig { segment_bytes: 16 << 10, ..LogConfig::default() })
            .unwrap();
    let positions =
        records.iter().map(|(kind, payload)| log.append(*kind, payload).unwrap()).collect();
    log.commit().unwrap();
    positions
}

fn segment_path(dir: &Path, p: &Position) -> PathBuf {
    dir.join(vouch_verifier::store::segment_file_name(p.segment))
}

/// Copies a log directory (segments and HEAD; no lock file).
fn copy_log(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "LOCK" {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

#[test]
fn replays_a_real_node_log_with_the_right_counts() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let stranger = Identity::filled(VOUCH, 0x66, 0x77);
    let work = TempDir::new().unwrap();
    let snapshot = gateway_snapshot(work.path(), &[&gateway.principal]);
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn(VOUCH, &data_dir, &snapshot);
    for id in [&gateway, &stranger] {
        ok_json(&id.publish(&node.p2p(), "60s"));
    }
    node.wait_stats("an accepted envelope", |s| s["accepted"].as_u64().unwrap() >= 1);
    node.wait_stats("an unauthorized rejection", |s| s["rejected"].as_u64().unwrap() >= 1);
    let accepted = node.stats()["accepted"].as_u64().unwrap();
    assert!(node.terminate().success());

    let log_dir = data_dir.join("log");
    let records: Vec<_> = LogReader::open(&log_dir, 0).unwrap().map(Result::unwrap).collect();
    let events: u64 = records
        .iter()
        .filter(|r| r.kind == RecordKind::Envelope)
        .map(|r| {
            let env = vouch_schema::Envelope::decode(&r.payload).unwrap();
            vouch_schema::TelemetryBatch::decode(&env.content).unwrap().events.len() as u64
        })
        .sum();
    assert!(events > 0);
    let recorded: AuthorityView = records
        .iter()
        .find(|r| r.kind == RecordKind::AuthorityView)
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .unwrap();

    // The data directory works as well as its log/ directory.
    for dir in [&log_dir, &data_dir] {
        let summary = ok_json(&replay(dir));
        assert_eq!(summary["ok"], json!(true), "{summary}");
        assert_eq!(summary["records"], json!(records.len()), "{summary}");
        assert_eq!(summary["envelopes"], json!(accepted), "{summary}");
        assert_eq!(summary["events"], json!(events), "{summary}");
        assert_eq!(summary["revocations"], json!(0), "{summary}");
        assert_eq!(summary["views"], json!([{"index": 0, "hash": hex::encode(recorded.hash())}]));
        assert_eq!(summary["first_index"], json!(0));
        assert_eq!(summary["last_index"], json!(records.len() - 1));
        let head = records.last().unwrap().position.hash;
        assert_eq!(summary["head_hash"], json!(hex::encode(head)), "{summary}");
        assert!(summary["events_per_sec"].as_f64().unwrap() > 0.0, "{summary}");
    }
}

/// A valid log: a view, then `n` envelopes of the gateway across several segments.
fn valid_log(dir: &Path, gateway: &Identity, n: usize) -> Vec<Position> {
    let start = now_ms();
    let mut records =
        vec![(RecordKind::AuthorityView, view_of(&[&gateway.principal]).canonical_json())];
    for i in 0..n {
        let bytes = signed(gateway, &format!("e{i}.cbor"), start + i as u64 * 1000);
        records.push((RecordKind::Envelope, bytes));
    }
    write_log(dir, &records)
}

#[test]
fn a_flipped_byte_fails_at_exactly_its_frame() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let good = work.path().join("good");
    let positions = valid_log(&good, &gateway, 12);
    assert!(positions.last().unwrap().segment > 0, "the log spans several segments");
    let summary = ok_json(&replay(&good));
    assert_eq!((summary["records"].clone(), summary["envelopes"].clone()), (json!(13), json!(12)));
    assert_eq!(summary["events"], json!(12 * 8));

    // A frame in the second segment and one in the middle of the first.
    let later = *positions.iter().find(|p| p.segment > 0 && p.offset > 48).unwrap();
    let middle = positions[3];
    let payload_len = |p: &Position| {
        let bytes = std::fs::read(segment_path(&good, p)).unwrap();
        let at = p.offset as usize;
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64
    };
    let mut cases = Vec::new();
    for p in [middle, later] {
        let len = payload_len(&p);
        cases.push(("length (high byte)", p, p.offset));
        cases.push(("length (low byte)", p, p.offset + 3));
        cases.push(("kind", p, p.offset + 4));
        cases.push(("payload", p, p.offset + 5 + len / 2));
        cases.push(("payload (signature)", p, p.offset + 5 + len - 10));
        cases.push(("check", p, p.offset + 5 + len + 3));
    }
    for (n, (what, p, at)) in cases.into_iter().enumerate() {
        let dir = work.path().join(format!("case{n}"));
        copy_log(&good, &dir);
        let path = segment_path(&dir, &p);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at as usize] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let (report, stderr) = replay_fails(&dir);
        let segment = vouch_verifier::store::segment_file_name(p.segment);
        assert_eq!(report["segment"], json!(segment), "{what}: {report}");
        assert_eq!(report["offset"], json!(p.offset), "{what}: {report}");
        assert_eq!(report["index"], json!(p.index), "{what}: {report}");
        assert!(stderr.contains(&format!("{segment} offset {}", p.offset)), "{what}: {stderr}");
    }

    // Segment headers: the first segment's, and a later one's anchor.
    for (what, segment, at) in
        [("first header", 0u64, 10usize), ("later anchor", later.segment, 20)]
    {
        let dir = work.path().join(format!("header{segment}"));
        copy_log(&good, &dir);
        let path = dir.join(vouch_verifier::store::segment_file_name(segment));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0x80;
        std::fs::write(&path, bytes).unwrap();
        let (report, stderr) = replay_fails(&dir);
        let name = vouch_verifier::store::segment_file_name(segment);
        assert_eq!(report["segment"], json!(name), "{what}: {report}");
        assert_eq!(report["offset"], json!(0), "{what}: {report}");
        assert_eq!(report["index"], json!(segment), "{what}: {report}");
        assert!(stderr.contains(&format!("{name} offset 0")), "{what}: {stderr}");
    }
}

#[test]
fn a_principal_outside_the_recorded_view_fails_at_its_envelope() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let stranger = Identity::filled(VOUCH, 0x66, 0x77);
    let work = TempDir::new().unwrap();
    let t = now_ms();
    let only_gateway = view_of(&[&gateway.principal]).canonical_json();
    let both = view_of(&[&gateway.principal, &stranger.principal]).canonical_json();

    // Allowed by the view in force at its position: replays.
    let ok = work.path().join("ok");
    write_log(
        &ok,
        &[
            (RecordKind::AuthorityView, only_gateway.clone()),
            (RecordKind::Envelope, signed(&gateway, "g1", t)),
            (RecordKind::AuthorityView, both.clone()),
            (RecordKind::Envelope, signed(&stranger, "s1", t + 1000)),
        ],
    );
    let summary = ok_json(&replay(&ok));
    assert_eq!(summary["envelopes"], json!(2), "{summary}");
    assert_eq!(summary["views"].as_array().unwrap().len(), 2, "{summary}");

    // The stranger's envelope before the view that admits it: fails there.
    let bad = work.path().join("bad");
    let positions = write_log(
        &bad,
        &[
            (RecordKind::AuthorityView, only_gateway),
            (RecordKind::Envelope, signed(&gateway, "g1", t)),
            (RecordKind::Envelope, signed(&stranger, "s1", t + 1000)),
            (RecordKind::AuthorityView, both),
        ],
    );
    let (report, stderr) = replay_fails(&bad);
    assert_eq!(report["index"], json!(2), "{report}");
    assert_eq!(report["offset"], json!(positions[2].offset), "{report}");
    assert!(report["problem"].as_str().unwrap().contains("not allowed as gateway"), "{report}");
    assert!(stderr.contains(&stranger.principal), "{stderr}");

    // No view at all before an envelope: fails too.
    let none = work.path().join("none");
    write_log(&none, &[(RecordKind::Envelope, signed(&gateway, "g2", t))]);
    let (report, _) = replay_fails(&none);
    assert_eq!(report["index"], json!(0), "{report}");
    assert!(report["problem"].as_str().unwrap().contains("no authority view"), "{report}");
}

#[test]
fn a_recorded_revocation_applies_from_its_position() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let t = now_ms();
    let revoked_at = t / 1000 + 10;
    let revocation =
        gateway.revoke(&gateway.delegate_address(), Some(revoked_at), "revocation.cbor");
    let view = view_of(&[&gateway.principal]).canonical_json();
    let dir = work.path().join("log");
    write_log(
        &dir,
        &[
            (RecordKind::AuthorityView, view),
            (RecordKind::Envelope, signed(&gateway, "before", t)),
            (RecordKind::Revocation, revocation),
            // Stamped before revokedAt: still valid.
            (RecordKind::Envelope, signed(&gateway, "still", t + 1000)),
            // Stamped after it: refused.
            (RecordKind::Envelope, signed(&gateway, "after", (revoked_at + 5) * 1000)),
        ],
    );
    let (report, _) = replay_fails(&dir);
    assert_eq!(report["index"], json!(4), "{report}");
    assert!(report["problem"].as_str().unwrap().contains("was revoked"), "{report}");
}

/// Issue 18, item 2: only principals of the authority view may revoke. A
/// log holding a revocation signed by anyone else was not written by a
/// correct node: the replay names its frame.
#[test]
fn a_recorded_revocation_by_a_non_principal_fails_at_its_frame() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let stranger = Identity::filled(VOUCH, 0x66, 0x77);
    let work = TempDir::new().unwrap();
    let t = now_ms();
    let delegate = gateway.delegate_address();
    let revoke = |by: &Identity, name: &str| by.revoke(&delegate, Some(t / 1000 + 3600), name);
    let dir = work.path().join("log");
    let view = view_of(&[&gateway.principal]);
    let positions = write_log(
        &dir,
        &[
            (RecordKind::AuthorityView, view.canonical_json()),
            (RecordKind::Revocation, revoke(&gateway, "own.cbor")),
            (RecordKind::Envelope, signed(&gateway, "before", t)),
            (RecordKind::Revocation, revoke(&stranger, "foreign.cbor")),
        ],
    );
    let (report, stderr) = replay_fails(&dir);
    assert_eq!(report["index"], json!(3), "{report}");
    assert_eq!(report["offset"], json!(positions[3].offset), "{report}");
    let problem = report["problem"].as_str().unwrap();
    assert!(problem.contains("is not a principal of the recorded authority view"), "{report}");
    assert!(stderr.contains(&stranger.principal), "{stderr}");
    assert!(stderr.contains(&hex::encode(view.hash())), "{stderr}");
}

#[test]
fn a_forged_envelope_with_correct_chain_hashes_fails_with_a_signature_error() {
    let gateway = Identity::filled(VOUCH, 0x44, 0x55);
    let work = TempDir::new().unwrap();
    let dir = work.path().join("log");
    valid_log(&dir, &gateway, 3);
    let mut forged = signed(&gateway, "forged.cbor", now_ms() + 10_000);
    let n = forged.len();
    forged[n - 10] ^= 0x01; // inside the signature's s
    // Appended through SegmentLog: the chain hashes are correct.
    let (mut log, _) =
        SegmentLog::open(&dir, LogConfig { segment_bytes: 16 << 10, ..LogConfig::default() })
            .unwrap();
    let position = log.append(RecordKind::Envelope, &forged).unwrap();
    let honest = signed(&gateway, "after.cbor", now_ms() + 20_000);
    log.append(RecordKind::Envelope, &honest).unwrap();
    log.commit().unwrap();
    drop(log);
    vouch_verifier::store::verify(&dir).unwrap();

    let (report, stderr) = replay_fails(&dir);
    assert_eq!(report["index"], json!(position.index), "{report}");
    assert_eq!(report["offset"], json!(position.offset), "{report}");
    let segment = vouch_verifier::store::segment_file_name(position.segment);
    assert_eq!(report["segment"], json!(segment), "{report}");
    assert!(
        stderr.contains(&format!(
            "record {}: {segment} offset {}: envelope signature does not match its delegate",
            position.index, position.offset
        )),
        "{stderr}"
    );

    // A flipped byte further on: the forged envelope, earlier in the log, is still the one named.
    let last = LogReader::open(&dir, 0).unwrap().map(Result::unwrap).last().unwrap().position;
    let path = segment_path(&dir, &last);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[last.offset as usize + 40] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (report, _) = replay_fails(&dir);
    assert_eq!(report["index"], json!(position.index), "{report}");
    assert!(report["problem"].as_str().unwrap().contains("signature"), "{report}");
}
