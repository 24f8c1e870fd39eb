//! Removing whole old segments ([`SegmentLog::prune_before`]); the next
//! segment's header keeps the chain anchored.

use std::fs;
use std::time::SystemTime;

use super::format::{segment_file_name, sync_dir};
use super::{LogError, SegmentLog, io_err};

/// Which old segments [`SegmentLog::prune_before`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneBefore {
    /// Segments all of whose records have an index below this.
    Index(u64),
    /// Segments last written before this time.
    Modified(SystemTime),
}

/// What [`SegmentLog::prune_before`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneInfo {
    /// Segment files removed.
    pub removed_segments: u64,
    /// Their total size.
    pub removed_bytes: u64,
    /// Index of the first record still in the log.
    pub first_index: u64,
}

impl SegmentLog {
    /// Removes whole old segments matching `cutoff`, oldest first, stopping
    /// at the first that does not match; the active (last) segment is never
    /// removed. The chain stays anchored by the next segment's header.
    pub fn prune_before(&mut self, cutoff: PruneBefore) -> Result<PruneInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut info = PruneInfo::default();
        while self.segments.len() > 1 {
            let segment = self.segments[0];
            let path = self.dir.join(segment_file_name(segment));
            let meta = fs::metadata(&path).map_err(io_err(&path))?;
            let remove = match cutoff {
                PruneBefore::Index(index) => self.segments[1] <= index,
                PruneBefore::Modified(time) => meta.modified().map_err(io_err(&path))? < time,
            };
            if !remove {
                break;
            }
            fs::remove_file(&path).map_err(io_err(&path))?;
            self.segments.remove(0);
            info.removed_segments += 1;
            info.removed_bytes += meta.len();
        }
        if info.removed_segments > 0 {
            sync_dir(&self.dir)?;
        }
        info.first_index = self.first_index();
        Ok(info)
    }
}
