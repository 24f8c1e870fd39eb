//! The verifier's segment log (`verifier/src/store/log/`, compiled here
//! from the same source files: they need only std, blake3 and thiserror).
//!
//! The input is written to disk as a log directory: a segment file, and
//! with the first byte odd also a `HEAD` file cut from the input's end.
//! Then every reader runs on it: `verify`, `LogReader` from the start, and
//! `SegmentLog::open` (which truncates a torn tail). None may panic, and
//! once `open` has recovered the directory, it must verify and read back
//! cleanly to its last committed record.
#![no_main]

#[allow(dead_code, unreachable_pub, unused_imports, missing_docs)]
#[path = "../../verifier/src/store/log/mod.rs"]
mod log;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("vouch-fuzz-log-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("temp dir");
    let (segment, head) = match data.split_first() {
        Some((flag, rest)) if flag & 1 == 1 && rest.len() >= 52 => {
            let (seg, head) = rest.split_at(rest.len() - 52);
            (seg, Some(head))
        }
        Some((_, rest)) => (rest, None),
        None => return,
    };
    std::fs::write(dir.join(log::segment_file_name(0)), segment).expect("write segment");
    if let Some(head) = head {
        std::fs::write(dir.join(log::HEAD_FILE), head).expect("write HEAD");
    }

    let _ = log::verify(dir);
    if let Ok(reader) = log::LogReader::open(dir, 0) {
        for record in reader {
            if record.is_err() {
                break;
            }
        }
    }
    let Ok((opened, _recovery)) = log::SegmentLog::open(dir, log::LogConfig::default()) else {
        return;
    };
    let committed = opened.committed_records();
    drop(opened);
    let summary = log::verify(dir).expect("a recovered log verifies");
    assert_eq!(summary.records, committed - summary.first_index);
    let read = log::LogReader::open(dir, summary.first_index)
        .expect("a recovered log opens")
        .map(|r| r.expect("a recovered log reads back"))
        .count() as u64;
    assert_eq!(read, summary.records);
});
