//! The segment log (`vouch_verifier::store::log`): round trips, torn tails,
//! byte flips, rolls and pruning, random sequences, and SIGKILL crashes.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use vouch_verifier::store::log::{
    FRAME_OVERHEAD_BYTES, HEAD_FILE, HEADER_BYTES, Hashed, MAX_PAYLOAD_BYTES,
};
use vouch_verifier::store::{
    LogConfig, LogError, LogReader, Position, Problem, PruneBefore, RecordKind, SegmentLog,
    segment_file_name, verify,
};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, ..LogConfig::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i};").repeat((i % 7 + 1) as usize).into_bytes()
}

fn kind(i: u64) -> RecordKind {
    RecordKind::from_byte((i % 4) as u8).unwrap()
}

/// Appends records `from..to` (payload and kind from the index), committing
/// every `batch`, and returns their positions.
fn fill(log: &mut SegmentLog, from: u64, to: u64, batch: u64) -> Vec<Position> {
    let mut out = Vec::new();
    for i in from..to {
        let pos = log.append(kind(i), &payload(i)).unwrap();
        assert_eq!(pos.index, i);
        out.push(pos);
        if (i + 1) % batch == 0 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    out
}

/// A closed log of records `0..n` in 200-byte segments (a few records
/// each), committed every `batch`: their positions and its segments.
fn small_segments(dir: &Path, n: u64, batch: u64) -> (Vec<Position>, Vec<u64>) {
    let (mut log, _) = SegmentLog::open(dir, config(200)).unwrap();
    let positions = fill(&mut log, 0, n, batch);
    (positions, log.segments().to_vec())
}

fn read_all(dir: &Path, from: u64) -> Vec<(Position, RecordKind, Vec<u8>)> {
    LogReader::open(dir, from)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.position, r.kind, r.payload)
        })
        .collect()
}

fn check_records(dir: &Path, from: u64, to: u64) {
    let records = read_all(dir, from);
    assert_eq!(records.len() as u64, to - from);
    for (n, (pos, k, p)) in records.iter().enumerate() {
        let i = from + n as u64;
        assert_eq!(pos.index, i);
        assert_eq!(*k, kind(i));
        assert_eq!(*p, payload(i));
    }
}

#[test]
fn append_commit_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, rec) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((rec.records, rec.truncated_bytes), (0, 0));
    let positions = fill(&mut log, 0, 10, 3);
    assert_eq!(log.committed_records(), 10);
    // Appended but never committed: gone after reopen.
    log.append(RecordKind::Envelope, b"never committed").unwrap();
    let hash = log.committed_hash();
    let second = SegmentLog::open(dir.path(), LogConfig::default());
    assert!(matches!(second, Err(LogError::Locked { .. })), "one writer at a time");
    drop(log);

    let (mut log, rec) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(rec.records, 10);
    assert_eq!(rec.last_hash, hash);
    assert_eq!(rec.last_hash, positions[9].hash);
    assert_eq!(rec.truncated_bytes, 0, "an uncommitted append was only buffered");
    let records = read_all(dir.path(), 0);
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), positions);
    check_records(dir.path(), 4, 10);
    assert!(read_all(dir.path(), 10).is_empty());

    fill(&mut log, 10, 12, 1);
    let summary = verify(dir.path()).unwrap();
    assert_eq!((summary.records, summary.first_index, summary.segments), (12, 0, 1));
    assert_eq!(summary.head_index, Some(11));
    assert_eq!(summary.uncommitted, 0);

    // Bounds: the frame limit is a typed error; exactly the limit is fine.
    let err = log.append(RecordKind::Envelope, &vec![0; MAX_PAYLOAD_BYTES + 1]).unwrap_err();
    assert!(matches!(err, LogError::PayloadTooLarge { .. }));
    log.append(RecordKind::Scores, &vec![7; MAX_PAYLOAD_BYTES]).unwrap();
    log.append(RecordKind::Envelope, b"").unwrap();
    let info = log.commit().unwrap();
    assert_eq!(info.records, 2);
    assert_eq!(info.last.unwrap().index, 13);
    assert_eq!(verify(dir.path()).unwrap().records, 14);
}

/// A commit split in two (`start_commit`, then `finish_commit`, as the node
/// overlaps a group's sync with validating the next): its records count as
/// committed only once finished, appends made meanwhile wait for the next
/// commit (across a new segment, too), and one commit is under way at a time.
#[test]
fn a_commit_under_way_counts_once_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), config(600)).unwrap();
    for i in 0..3 {
        log.append(kind(i), &payload(i)).unwrap();
    }
    let syncing = log.start_commit().unwrap();
    assert_eq!(syncing.records(), 3);
    assert_eq!(log.committed_records(), 0, "not committed before it is durable");
    // Appends go on meanwhile, past the segment's end.
    for i in 3..12 {
        log.append(kind(i), &payload(i)).unwrap();
    }
    assert!(matches!(log.start_commit(), Err(LogError::CommitUnderWay)));
    assert!(matches!(log.commit(), Err(LogError::CommitUnderWay)));
    let info = log.finish_commit(syncing).unwrap();
    assert_eq!((info.records, info.last.unwrap().index), (3, 2));
    assert_eq!((log.committed_records(), log.pending_records()), (3, 9));
    let syncing = log.start_commit().unwrap();
    assert_eq!(syncing.records(), 9);
    assert_eq!(log.finish_commit(syncing).unwrap().records, 9);
    assert_eq!(log.committed_records(), 12);
    // Nothing pending: a commit with nothing to sync.
    let idle = log.start_commit().unwrap();
    assert_eq!(log.finish_commit(idle).unwrap().records, 0);
    let hash = log.committed_hash();
    drop(log);
    let (_, rec) = SegmentLog::open(dir.path(), config(600)).unwrap();
    assert_eq!((rec.records, rec.last_hash, rec.truncated_bytes), (12, hash, 0));
    check_records(dir.path(), 0, 12);
    let summary = verify(dir.path()).unwrap();
    assert!(summary.segments > 1, "the appends made while syncing started a segment");
    assert_eq!((summary.records, summary.uncommitted), (12, 0));
}

/// One commit of more frames than one vectored write takes (Linux's
/// `IOV_MAX` is 1,024) writes them all, in order, and verifies.
#[test]
fn one_commit_of_more_frames_than_one_write_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let positions = fill(&mut log, 0, 2_500, 2_500);
    assert_eq!(log.committed_records(), 2_500);
    drop(log);
    check_records(dir.path(), 0, 2_500);
    assert_eq!(read_all(dir.path(), 2_499)[0].0, positions[2_499]);
    let summary = verify(dir.path()).unwrap();
    assert_eq!((summary.records, summary.uncommitted), (2_500, 0));
}

/// Bytes of `path` resident in the page cache, by util-linux's `fincore`.
fn resident_bytes(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "fincore: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Appends 4 KiB records, committing every 16, until `records`; returns
/// the bytes each commit reported dropped from the page cache.
fn fill_pages(log: &mut SegmentLog, records: u64) -> u64 {
    let mut uncached = 0;
    for i in 0..records {
        log.append(RecordKind::Envelope, &[i as u8; 4096]).unwrap();
        if (i + 1) % 16 == 0 {
            uncached += log.commit().unwrap().uncached_bytes;
        }
    }
    uncached + log.commit().unwrap().uncached_bytes
}

/// Committed frames further back than `cached_tail_bytes` leave the page
/// cache (finished segments wholly); nothing is lost, and without the
/// window the same log stays cached. Measured with `fincore`, on the target
/// directory's file system (a tmpfs `/tmp` would keep its pages in memory).
/// The kernel drops only whole folios, and a large folio may straddle the
/// window's edge, hence the slack.
#[test]
fn committed_frames_beyond_the_tail_leave_the_page_cache() {
    let (page, tail, slack) = (4096, 64 << 10, 256 << 10);
    let config = |cached_tail_bytes| LogConfig { segment_bytes: 1 << 20, cached_tail_bytes };
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let windowed = tempfile::tempdir_in(root).unwrap();
    let (mut log, _) = SegmentLog::open(windowed.path(), config(tail)).unwrap();
    // 1,000 frames of ~4 KiB: three full 1 MiB segments and most of a fourth.
    let uncached = fill_pages(&mut log, 1_000);
    let files: Vec<_> =
        log.segments().iter().map(|s| windowed.path().join(segment_file_name(*s))).collect();
    assert_eq!(files.len(), 4, "{files:?}");
    let lens: Vec<u64> = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect();
    let (active, active_len) = (&files[3], lens[3]);
    // What the commits report: the finished segments, and the active one
    // up to the page its tail starts in.
    let active_dropped = (active_len - tail) / page * page;
    assert_eq!(uncached, lens[..3].iter().sum::<u64>() + active_dropped);
    for finished in &files[..3] {
        assert!(resident_bytes(finished) <= page, "{} still cached", finished.display());
    }
    let resident = resident_bytes(active);
    assert!(resident <= tail + slack, "{resident} of {active_len} cached");
    drop(log);
    let summary = verify(windowed.path()).unwrap();
    assert_eq!((summary.records, summary.uncommitted), (1_000, 0));
    let records = read_all(windowed.path(), 0);
    assert_eq!(records.len(), 1_000);
    assert!(records.iter().enumerate().all(|(i, (_, _, p))| *p == [i as u8; 4096]));

    // The control: without a window the kernel keeps what was written.
    let kept = tempfile::tempdir_in(root).unwrap();
    let (mut log, _) = SegmentLog::open(kept.path(), config(u64::MAX)).unwrap();
    assert_eq!(fill_pages(&mut log, 1_000), 0);
    let active = kept.path().join(segment_file_name(log.segments()[3]));
    let len = std::fs::metadata(&active).unwrap().len();
    assert!(resident_bytes(&active) + page >= len, "an unwindowed log was dropped");
}

/// Segment files by name, with their bytes.
type Files = Vec<(String, Vec<u8>)>;

/// Commits `n` records and returns the segment bytes and HEAD after each commit.
fn snapshots(dir: &Path, n: u64, segment_bytes: u64) -> Vec<(Files, Vec<u8>)> {
    let (mut log, _) = SegmentLog::open(dir, config(segment_bytes)).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        log.append(kind(i), &payload(i)).unwrap();
        log.commit().unwrap();
        let segs = log
            .segments()
            .iter()
            .map(|&s| {
                let name = segment_file_name(s);
                let bytes = std::fs::read(dir.join(&name)).unwrap();
                (name, bytes)
            })
            .collect();
        out.push((segs, std::fs::read(dir.join(HEAD_FILE)).unwrap()));
    }
    out
}

fn restore(dir: &Path, segs: &[(String, Vec<u8>)], head: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (name, bytes) in segs {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join(HEAD_FILE), head).unwrap();
}

#[test]
fn on_disk_format() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let pos = log.append(RecordKind::Revocation, b"abc").unwrap();
    log.commit().unwrap();
    assert_eq!((pos.segment, pos.offset), (0, HEADER_BYTES));
    let name = segment_file_name(0);
    assert_eq!(name, "seg-00000000000000000000.vlog");
    let raw = std::fs::read(dir.path().join(&name)).unwrap();
    assert_eq!(&raw[..5], b"VLOG\x02");
    assert_eq!(&raw[8..16], &0u64.to_be_bytes());
    assert_eq!(&raw[16..48], &[0u8; 32], "h_-1 is zero");
    let frame = &raw[HEADER_BYTES as usize..];
    assert_eq!(&frame[..8], &[0, 0, 0, 3, 1, b'a', b'b', b'c']);
    // h_0 = blake3(h_-1 ‖ kind ‖ blake3(payload)); the frame ends with its first 8 bytes.
    let h0 = chain_v2(&[0; 32], 1, b"abc");
    assert_eq!(pos.hash, h0);
    assert_eq!(&frame[8..], &h0[..8]);
}

/// `h_i` of format version 2, computed here from its definition.
fn chain_v2(prev: &[u8; 32], kind: u8, payload: &[u8]) -> [u8; 32] {
    let mut outer = blake3::Hasher::new();
    outer.update(prev);
    outer.update(&[kind]);
    outer.update(blake3::hash(payload).as_bytes());
    *outer.finalize().as_bytes()
}

/// `h_i` of format version 1: `blake3(h_{i-1} ‖ blake3(kind ‖ payload))`.
fn chain_v1(prev: &[u8; 32], kind: u8, payload: &[u8]) -> [u8; 32] {
    let mut inner = blake3::Hasher::new();
    inner.update(&[kind]);
    inner.update(payload);
    let mut outer = blake3::Hasher::new();
    outer.update(prev);
    outer.update(inner.finalize().as_bytes());
    *outer.finalize().as_bytes()
}

/// The first 8 bytes of blake3: the check of headers, frames and `HEAD`.
fn check8(bytes: &[u8]) -> [u8; 8] {
    blake3::hash(bytes).as_bytes()[..8].try_into().unwrap()
}

/// A log as the release before format version 2 wrote it, byte by byte:
/// one version 1 segment of `records` (kind, payload) from index 0, and
/// `HEAD` naming the last. Returns the chain hash after the last.
fn write_version_1_log(dir: &Path, records: &[(u8, &[u8])]) -> [u8; 32] {
    let mut seg = b"VLOG\x01\0\0\0".to_vec();
    seg.extend_from_slice(&0u64.to_be_bytes());
    seg.extend_from_slice(&[0; 32]);
    seg.extend_from_slice(&check8(&seg));
    let mut hash = [0u8; 32];
    for (kind, payload) in records {
        hash = chain_v1(&hash, *kind, payload);
        seg.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        seg.push(*kind);
        seg.extend_from_slice(payload);
        seg.extend_from_slice(&hash[..8]);
    }
    std::fs::write(dir.join(segment_file_name(0)), seg).unwrap();
    if !records.is_empty() {
        let mut head = b"VHED".to_vec();
        head.extend_from_slice(&(records.len() as u64 - 1).to_be_bytes());
        head.extend_from_slice(&hash);
        head.extend_from_slice(&check8(&head));
        std::fs::write(dir.join(HEAD_FILE), head).unwrap();
    }
    hash
}

#[test]
fn a_hashed_payload_chains_as_an_owned_one() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut owned, _) = SegmentLog::open(a.path(), LogConfig::default()).unwrap();
    let (mut hashed, _) = SegmentLog::open(b.path(), LogConfig::default()).unwrap();
    for i in 0..5 {
        let p = payload(i);
        let envelope = Hashed::new(p.clone());
        // The hash it carries is the payload's envelope id.
        assert_eq!(envelope.hash(), &vouch_schema::merkle::envelope_id(&p));
        let by_owned = owned.append_owned(kind(i), p).unwrap();
        assert_eq!(hashed.append_hashed(kind(i), envelope).unwrap(), by_owned);
    }
    owned.commit().unwrap();
    hashed.commit().unwrap();
    drop(hashed);
    verify(b.path()).unwrap();
    check_records(b.path(), 0, 5);
}

#[test]
fn a_version_1_log_is_read_and_goes_on_in_its_format_until_it_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<(u8, Vec<u8>)> = (0..3).map(|i| (kind(i).as_byte(), payload(i))).collect();
    let refs: Vec<(u8, &[u8])> = old.iter().map(|(k, p)| (*k, p.as_slice())).collect();
    let last = write_version_1_log(dir.path(), &refs);
    verify(dir.path()).unwrap();
    check_records(dir.path(), 0, 3);

    // Segments of five frames: the version 1 segment takes two more,
    // chained in version 1, then the log rolls into a version 2 segment.
    let five: u64 = (0..5).map(|i| FRAME_OVERHEAD_BYTES + payload(i).len() as u64).sum();
    let (mut log, recovery) = SegmentLog::open(dir.path(), config(HEADER_BYTES + five)).unwrap();
    assert_eq!((recovery.records, recovery.last_hash, recovery.truncated_bytes), (3, last, 0));
    let mut hash = last;
    for i in 3..9 {
        let pos = log.append_hashed(kind(i), Hashed::new(payload(i))).unwrap();
        let expected = if pos.segment == 0 { chain_v1 } else { chain_v2 };
        hash = expected(&hash, kind(i).as_byte(), &payload(i));
        assert_eq!(pos.hash, hash, "record {i} in segment {}", pos.segment);
        log.commit().unwrap();
    }
    drop(log);
    let segments: Vec<u64> = read_all(dir.path(), 0).iter().map(|(p, ..)| p.segment).collect();
    assert_eq!(segments, [0, 0, 0, 0, 0, 5, 5, 5, 5]);
    let raw = std::fs::read(dir.path().join(segment_file_name(5))).unwrap();
    assert_eq!(&raw[..5], b"VLOG\x02");
    verify(dir.path()).unwrap();
    check_records(dir.path(), 0, 9);
    // Reopened, it goes on where it was.
    let (mut log, recovery) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((recovery.records, recovery.last_hash), (9, hash));
    fill(&mut log, 9, 12, 2);
    drop(log);
    verify(dir.path()).unwrap();
    check_records(dir.path(), 0, 12);
}

#[test]
fn an_empty_version_1_segment_starts_over_in_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    write_version_1_log(dir.path(), &[]);
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let raw = std::fs::read(dir.path().join(segment_file_name(0))).unwrap();
    assert_eq!(&raw[..5], b"VLOG\x02");
    let pos = log.append(kind(0), &payload(0)).unwrap();
    assert_eq!(pos.hash, chain_v2(&[0; 32], kind(0).as_byte(), &payload(0)));
    log.commit().unwrap();
    drop(log);
    verify(dir.path()).unwrap();
    check_records(dir.path(), 0, 1);
}

#[test]
fn a_segment_of_an_unknown_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_version_1_log(dir.path(), &[(0, b"abc")]);
    let name = dir.path().join(segment_file_name(0));
    let mut raw = std::fs::read(&name).unwrap();
    raw[4] = 3;
    let check = check8(&raw[..48]);
    raw[48..56].copy_from_slice(&check);
    std::fs::write(&name, raw).unwrap();
    let err = SegmentLog::open(dir.path(), LogConfig::default()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { problem: Problem::BadVersion(3), .. }), "{err}");
    assert!(err.to_string().contains("unsupported segment version 3"), "{err}");
}

#[test]
fn torn_tail_at_every_byte_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = snapshots(dir.path(), 4, 1 << 20);
    let (before_segs, before_head) = &snaps[2];
    let (after_segs, _) = &snaps[3];
    let (name, committed) = &before_segs[0];
    let full = &after_segs[0].1;
    assert!(full.len() > committed.len());
    // A crash mid-write of record 3: HEAD still names record 2.
    for cut in committed.len()..=full.len() {
        restore(dir.path(), &[(name.clone(), full[..cut].to_vec())], before_head);
        let (log, rec) = SegmentLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(rec.records, 3, "cut at {cut}");
        assert_eq!(rec.truncated_bytes, (cut - committed.len()) as u64, "cut at {cut}");
        assert_eq!(log.committed_records(), 3);
        drop(log);
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), *committed);
        check_records(dir.path(), 0, 3);
        assert_eq!(verify(dir.path()).unwrap().records, 3);
    }
}

#[test]
fn torn_new_segment_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    // Every record fills a segment, so record 3 starts seg 3.
    let snaps = snapshots(dir.path(), 4, 1);
    let (before_segs, before_head) = &snaps[2];
    let (after_segs, _) = &snaps[3];
    assert_eq!(after_segs.len(), 4);
    let (new_name, new_bytes) = &after_segs[3];
    for cut in 0..=new_bytes.len() {
        let mut segs = before_segs.clone();
        segs.push((new_name.clone(), new_bytes[..cut].to_vec()));
        restore(dir.path(), &segs, before_head);
        let (mut log, rec) = SegmentLog::open(dir.path(), config(1)).unwrap();
        assert_eq!((rec.records, rec.removed_segments), (3, 1), "cut at {cut}");
        assert_eq!(rec.truncated_bytes, cut as u64);
        assert!(!dir.path().join(new_name).exists());
        // It continues where it left off, re-creating the segment.
        fill(&mut log, 3, 5, 1);
        check_records(dir.path(), 0, 5);
        assert_eq!(verify(dir.path()).unwrap().segments, 5);
    }
    // A fresh log whose first header was torn.
    for cut in 0..HEADER_BYTES as usize {
        restore(dir.path(), &[(before_segs[0].0.clone(), before_segs[0].1[..cut].to_vec())], &[]);
        std::fs::remove_file(dir.path().join(HEAD_FILE)).unwrap();
        let (mut log, rec) = SegmentLog::open(dir.path(), config(1)).unwrap();
        assert_eq!(rec.records, 0);
        fill(&mut log, 0, 2, 1);
        check_records(dir.path(), 0, 2);
    }
}

#[test]
fn every_flipped_byte_is_caught_at_its_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, segments) = small_segments(dir.path(), 8, 3);
    assert!(segments.len() >= 2, "the test wants several segments");
    verify(dir.path()).unwrap();
    for &segment in &segments {
        let name = segment_file_name(segment);
        let path = dir.path().join(&name);
        let original = std::fs::read(&path).unwrap();
        let starts: Vec<u64> =
            positions.iter().filter(|p| p.segment == segment).map(|p| p.offset).collect();
        for at in 0..original.len() {
            let expected = starts.iter().rev().find(|&&s| s <= at as u64).copied().unwrap_or(0);
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bytes = original.clone();
                bytes[at] ^= mask;
                std::fs::write(&path, &bytes).unwrap();
                match verify(dir.path()) {
                    Err(LogError::Corrupt { segment: s, offset, problem }) => {
                        assert_eq!(
                            (s.as_str(), offset),
                            (name.as_str(), expected),
                            "byte {at} ^ {mask:#x}: {problem}"
                        );
                    }
                    other => panic!("byte {at} of {name} ^ {mask:#x}: {other:?}"),
                }
            }
        }
        std::fs::write(&path, &original).unwrap();
    }
    verify(dir.path()).unwrap();
}

#[test]
fn a_skip_to_a_later_segment_leaves_the_segments_between_unread() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, segments) = small_segments(dir.path(), 40, 4);
    assert!(segments.len() >= 4, "{segments:?}");
    let (early, target) = (positions[1], positions[39]);
    let middle = segments[2];
    assert!(early.segment < middle && middle < target.segment);
    // A byte flipped in the middle segment's last frame: reading through fails there ...
    let path = dir.path().join(segment_file_name(middle));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 1;
    bytes[at] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let through: Vec<_> = LogReader::open(dir.path(), early.index).unwrap().collect();
    assert!(through.last().unwrap().is_err(), "the damage is on the way");
    // ... a skip past it never reads it.
    let mut reader = LogReader::open(dir.path(), early.index).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().position, early);
    reader.skip_to(target.index);
    let record = reader.next().unwrap().unwrap();
    assert_eq!((record.position, record.payload), (target, payload(target.index)));
    // Back or to where it stands: nothing moves.
    reader.skip_to(early.index);
    assert!(reader.next().is_none(), "the log ends after the target");
    // A skip within the segment being read reads on to the record.
    let first: Vec<&Position> = positions.iter().filter(|p| p.segment == segments[0]).collect();
    assert!(first.len() >= 3, "{first:?}");
    let mut reader = LogReader::open(dir.path(), 0).unwrap();
    reader.next().unwrap().unwrap();
    reader.skip_to(first[2].index);
    assert_eq!(reader.next().unwrap().unwrap().position, *first[2]);
}

#[test]
fn missing_records_and_segments_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, segments) = small_segments(dir.path(), 12, 4);
    assert!(segments.len() >= 3);
    // Last committed frame cut off whole: HEAD notices.
    let last = positions[11];
    let path = dir.path().join(segment_file_name(last.segment));
    let original = std::fs::read(&path).unwrap();
    std::fs::write(&path, &original[..last.offset as usize]).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert!(
        matches!(&err, LogError::Corrupt { problem: Problem::MissingCommitted { head: 11, next: 11 }, offset, .. } if *offset == last.offset),
        "{err}"
    );
    assert!(
        SegmentLog::open(dir.path(), config(200)).is_err(),
        "committed data is never truncated"
    );
    std::fs::write(&path, &original).unwrap();
    // A middle segment removed: the next header no longer follows on.
    let middle = dir.path().join(segment_file_name(segments[1]));
    let bytes = std::fs::read(&middle).unwrap();
    std::fs::remove_file(&middle).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert!(
        matches!(&err, LogError::Corrupt { segment, offset: 0, problem: Problem::IndexGap { .. } } if *segment == segment_file_name(segments[2])),
        "{err}"
    );
    std::fs::write(&middle, bytes).unwrap();
    // A damaged HEAD is reported as such.
    std::fs::write(dir.path().join(HEAD_FILE), b"garbage").unwrap();
    assert!(matches!(verify(dir.path()), Err(LogError::BadHead(_))));
}

#[test]
fn roll_and_prune_keep_verify_passing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), config(300)).unwrap();
    fill(&mut log, 0, 60, 5);
    let segments = log.segments().to_vec();
    assert!(segments.len() > 5);
    for pair in segments.windows(2) {
        let len = std::fs::metadata(dir.path().join(segment_file_name(pair[0]))).unwrap().len();
        assert!(len <= 300 || pair[1] == pair[0] + 1, "segments roll at the configured size");
    }
    assert_eq!(verify(dir.path()).unwrap().segments, segments.len() as u64);

    let info = log.prune_before(PruneBefore::Index(20)).unwrap();
    assert!(info.removed_segments > 0);
    assert!(info.first_index <= 20 && info.first_index > 0);
    assert_eq!(log.first_index(), info.first_index);
    let summary = verify(dir.path()).unwrap();
    assert_eq!(summary.first_index, info.first_index);
    assert_eq!(summary.records, 60 - info.first_index);
    check_records(dir.path(), info.first_index, 60);
    check_records(dir.path(), 33, 60);
    assert!(matches!(LogReader::open(dir.path(), 0), Err(LogError::NotInLog { .. })));

    // Reopen, keep writing, prune by age: only the active segment is left.
    drop(log);
    let (mut log, rec) = SegmentLog::open(dir.path(), config(300)).unwrap();
    assert_eq!((rec.records, rec.truncated_bytes), (60, 0));
    fill(&mut log, 60, 80, 7);
    let future = SystemTime::now() + Duration::from_secs(3600);
    log.prune_before(PruneBefore::Modified(future)).unwrap();
    assert_eq!(log.segments().len(), 1);
    let first = log.first_index();
    let summary = verify(dir.path()).unwrap();
    assert_eq!((summary.first_index, summary.records), (first, 80 - first));
    fill(&mut log, 80, 90, 3);
    check_records(dir.path(), first, 90);
    assert_eq!(verify(dir.path()).unwrap().records, 90 - first);
    // Nothing is old enough.
    let past = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(log.prune_before(PruneBefore::Modified(past)).unwrap().removed_segments, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_round_trip(
        ops in prop::collection::vec(
            (0u8..4, prop::collection::vec(any::<u8>(), 0..400), any::<bool>()),
            0..40,
        ),
        segment_bytes in prop_oneof![Just(1u64), Just(150), Just(1000), Just(1 << 26)],
        reopen_every in 1usize..20,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), config(segment_bytes)).unwrap();
        let mut committed: Vec<(Position, RecordKind, Vec<u8>)> = Vec::new();
        let mut pending = Vec::new();
        for (n, (k, bytes, commit)) in ops.iter().enumerate() {
            let k = RecordKind::from_byte(*k).unwrap();
            let pos = log.append(k, bytes).unwrap();
            pending.push((pos, k, bytes.clone()));
            if *commit {
                log.commit().unwrap();
                committed.append(&mut pending);
            }
            if n % reopen_every == 0 {
                drop(log);
                pending.clear();
                log = SegmentLog::open(dir.path(), config(segment_bytes)).unwrap().0;
                prop_assert_eq!(log.committed_records(), committed.len() as u64);
            }
        }
        drop(log);
        let (_, rec) = SegmentLog::open(dir.path(), config(segment_bytes)).unwrap();
        prop_assert_eq!(rec.records, committed.len() as u64);
        prop_assert_eq!(read_all(dir.path(), 0), committed.clone());
        let summary = verify(dir.path()).unwrap();
        prop_assert_eq!(summary.records, committed.len() as u64);
        if let Some(last) = committed.last() {
            prop_assert_eq!(summary.last_hash, last.0.hash);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A reader that follows a live log (`LogReader::follow` each time it
    /// runs dry, never reopened) yields every committed record once, in
    /// order, across rolls, writer restarts and pruning behind it, and
    /// nothing before it is durable.
    #[test]
    fn a_follower_reads_each_commit_once(
        commits in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
            1..30,
        ),
        segment_bytes in prop_oneof![Just(1u64), Just(150), Just(1000), Just(1 << 26)],
        reopen_every in 1usize..10,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), config(segment_bytes)).unwrap();
        let mut follower = LogReader::open(dir.path(), 0).unwrap();
        let (mut committed, mut read) = (Vec::new(), Vec::new());
        for (n, records) in commits.iter().enumerate() {
            let mut pending = Vec::new();
            for bytes in records {
                let pos = log.append(RecordKind::Envelope, bytes).unwrap();
                pending.push((pos, bytes.clone()));
            }
            // Appended, not yet written or synced: not for readers.
            prop_assert_eq!(follower.follow().unwrap(), committed.len() as u64);
            prop_assert!(follower.next().is_none());
            // Syncing: the sync thread moves HEAD once the records are
            // durable, which may come before `finish_commit` counts them.
            // A reader sees the whole commit then, or none of it.
            let syncing = log.start_commit().unwrap();
            let end = follower.follow().unwrap();
            let (before, after) = (committed.len() as u64, (committed.len() + pending.len()) as u64);
            prop_assert!(end == before || end == after, "end {} is neither {} nor {}", end, before, after);
            log.finish_commit(syncing).unwrap();
            committed.append(&mut pending);
            prop_assert_eq!(follower.follow().unwrap(), committed.len() as u64);
            read.extend(follower.by_ref().map(|r| {
                let r = r.unwrap();
                (r.position, r.payload)
            }));
            prop_assert_eq!(&read, &committed);
            prop_assert_eq!(follower.next_index(), committed.len() as u64);
            if n % reopen_every == 0 {
                drop(log);
                log = SegmentLog::open(dir.path(), config(segment_bytes)).unwrap().0;
                // Segments wholly behind the follower may go.
                log.prune_before(PruneBefore::Index(committed.len() as u64)).unwrap();
            }
        }
    }
}

/// A frame written but never committed (a crash before `HEAD` moved) may
/// be in a follower's read-ahead; the restarted writer cuts it off and
/// commits another record at that index, and the follower yields that one.
#[test]
fn a_follower_reads_what_replaced_an_uncommitted_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), config(1 << 20)).unwrap();
    fill(&mut log, 0, 3, 3);
    let head = std::fs::read(dir.path().join(HEAD_FILE)).unwrap();
    log.append(RecordKind::Envelope, b"written, never committed").unwrap();
    log.commit().unwrap();
    drop(log);
    // As if the process died after writing the frame, before `HEAD`.
    std::fs::write(dir.path().join(HEAD_FILE), &head).unwrap();

    let mut follower = LogReader::open(dir.path(), 0).unwrap();
    assert_eq!(follower.by_ref().count(), 3, "HEAD names three records");
    let (mut log, rec) = SegmentLog::open(dir.path(), config(1 << 20)).unwrap();
    assert!(rec.truncated_bytes > 0, "the uncommitted frame is cut off");
    log.append(RecordKind::Envelope, b"committed").unwrap();
    log.commit().unwrap();

    assert_eq!(follower.follow().unwrap(), 4);
    let record = follower.next().unwrap().unwrap();
    assert_eq!((record.position.index, record.payload.as_slice()), (3, &b"committed"[..]));
    assert!(follower.next().is_none());
}

/// A follower that stopped at a bad frame stays stopped: following again
/// neither skips the frame nor yields what comes after it.
#[test]
fn a_follower_stopped_by_an_error_stays_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), config(1 << 20)).unwrap();
    fill(&mut log, 0, 3, 3);
    let segment = dir.path().join(segment_file_name(0));
    let mut bytes = std::fs::read(&segment).unwrap();
    // The first frame's payload, past its 5-byte length and kind.
    bytes[HEADER_BYTES as usize + 5] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let mut follower = LogReader::open(dir.path(), 0).unwrap();
    assert!(matches!(follower.next(), Some(Err(LogError::Corrupt { .. }))));
    assert!(follower.next().is_none());
    fill(&mut log, 3, 5, 1);
    assert_eq!(follower.follow().unwrap(), 3, "the end it stopped at");
    assert!(follower.next().is_none());
}

const CRASH_ENV: &str = "VOUCH_LOG_CRASH_DIR";

/// The child half of `sigkill_loses_nothing_committed`: appends and commits
/// forever, printing each committed index. Does nothing in a normal run.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_ENV) else { return };
    let (mut log, rec) = SegmentLog::open(&dir, config(4096)).unwrap();
    let mut i = rec.records;
    loop {
        for _ in 0..(i % 5 + 1) {
            log.append(kind(i), &payload(i)).unwrap();
            i += 1;
        }
        let info = log.commit().unwrap();
        println!("committed {}", info.last.unwrap().index);
    }
}

#[test]
fn sigkill_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut max_committed: Option<u64> = None;
    for round in 0..5u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CRASH_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let wanted = 3 + round * 11;
        let mut note = |line: &str| {
            if let Some(index) = line.strip_prefix("committed ") {
                let index: u64 = index.trim().parse().unwrap();
                max_committed = Some(max_committed.map_or(index, |m| m.max(index)));
                true
            } else {
                false
            }
        };
        for line in lines.by_ref() {
            if note(&line.unwrap()) {
                seen += 1;
                if seen >= wanted {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Whatever the child printed before dying was committed too.
        for line in lines {
            let Ok(line) = line else { break };
            note(&line);
        }
        child.wait().unwrap();
        let max = max_committed.expect("the child committed something");

        let (log, rec) = SegmentLog::open(dir.path(), config(4096)).unwrap();
        eprintln!(
            "round {round}: last printed {max}, recovered {}, truncated {} bytes",
            rec.records, rec.truncated_bytes
        );
        assert!(rec.records > max, "round {round}: committed {max}, recovered {}", rec.records);
        drop(log);
        check_records(dir.path(), 0, rec.records);
        let summary = verify(dir.path()).unwrap();
        assert_eq!(summary.records, rec.records);
        assert_eq!(summary.uncommitted, 0);
    }
}

/// Prints group-commit throughput (no assertions; run with `--ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn commit_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), LogConfig::default()).unwrap();
    let payload = vec![0x5a; 300];
    for batch in [1u64, 64] {
        let start = std::time::Instant::now();
        let mut records = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            for _ in 0..batch {
                log.append(RecordKind::Envelope, &payload).unwrap();
            }
            log.commit().unwrap();
            records += batch;
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "batch {batch}: {:.0} records/s, {:.0} commits/s",
            records as f64 / secs,
            (records / batch) as f64 / secs
        );
    }
}
