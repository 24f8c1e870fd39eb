//! The SLA engine's snapshot: one file beside the state, replaced whole
//! and atomically (write a temporary file, fsync, rename, fsync the
//! directory), with the log index it covers and a checksum.
//!
//! Why not a redb value: redb keeps the old and the new copy of a value
//! while a write commits and allocates in power-of-two regions, so a large
//! value rewritten every minute holds about five times its size on disk
//! (measured: a 100 MB value → 537 MB file). A file replaced by rename
//! holds exactly one copy, so disk use follows the live state.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The snapshot file's name inside the data directory.
pub const SNAPSHOT_FILE: &str = "sla.snapshot";

const MAGIC: &[u8; 8] = b"VOUCHSLA";
const VERSION: u32 = 1;
/// magic, version, covered log index, payload length, blake3 of the payload.
const HEADER: usize = 8 + 4 + 8 + 8 + 32;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file system failed.
    #[error("SLA snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a whole snapshot of this format (the engine is then
    /// rebuilt from the log).
    #[error("SLA snapshot {path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// A snapshot read back: the log records it covers (exclusive end index) and the engine's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Log records (by index, exclusive) folded into the engine state.
    pub applied: u64,
    /// The engine state (`vouch_sla::Engine::checkpoint`).
    pub bytes: Vec<u8>,
}

/// The snapshot file of a data directory.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    /// The snapshot file inside `data_dir`.
    pub fn in_dir(data_dir: &Path) -> SnapshotFile {
        SnapshotFile { path: data_dir.join(SNAPSHOT_FILE) }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
        move |source| SnapshotError::Io { path: self.path.clone(), source }
    }

    /// Replaces the snapshot with `bytes`, covering the log up to `applied`.
    pub fn write(&self, applied: u64, bytes: &[u8]) -> Result<(), SnapshotError> {
        let tmp = self.path.with_extension("snapshot.tmp");
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&applied.to_le_bytes());
        header.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        header.extend_from_slice(blake3::hash(bytes).as_bytes());
        let io = |source| SnapshotError::Io { path: tmp.clone(), source };
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(&header).and_then(|()| file.write_all(bytes)).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(self.io())?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(self.io())?;
        }
        Ok(())
    }

    /// The snapshot, `None` when there is none.
    pub fn read(&self) -> Result<Option<Snapshot>, SnapshotError> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io()(e)),
        };
        let invalid = |problem| SnapshotError::Invalid { path: self.path.clone(), problem };
        if data.len() < HEADER || &data[..8] != MAGIC {
            return Err(invalid("not a snapshot file"));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut version = [0u8; 4];
        version.copy_from_slice(&data[8..12]);
        if u32::from_le_bytes(version) != VERSION {
            return Err(invalid("another snapshot format"));
        }
        let (applied, len) = (word(12), word(20));
        let payload = &data[HEADER..];
        if payload.len() as u64 != len {
            return Err(invalid("truncated"));
        }
        if blake3::hash(payload).as_bytes() != &data[28..60] {
            return Err(invalid("checksum mismatch"));
        }
        Ok(Some(Snapshot { applied, bytes: payload.to_vec() }))
    }

    /// Removes the snapshot (`--rebuild-state`); absent is fine.
    pub fn remove(&self) -> Result<(), SnapshotError> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io()(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_damage_is_named() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = SnapshotFile::in_dir(dir.path());
        assert_eq!(file.read().unwrap(), None);
        file.write(7, b"state one").unwrap();
        file.write(9, b"state two").unwrap();
        assert_eq!(
            file.read().unwrap(),
            Some(Snapshot { applied: 9, bytes: b"state two".to_vec() })
        );
        let mut bytes = fs::read(file.path()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(file.path(), &bytes).unwrap();
        assert!(file.read().unwrap_err().to_string().contains("checksum"));
        fs::write(file.path(), &bytes[..HEADER + 2]).unwrap();
        assert!(file.read().unwrap_err().to_string().contains("truncated"));
        fs::write(file.path(), b"junk").unwrap();
        assert!(file.read().unwrap_err().to_string().contains("not a snapshot"));
        file.remove().unwrap();
        file.remove().unwrap();
        assert_eq!(file.read().unwrap(), None);
    }
}
