//! Keeping the log's footprint in the page cache bounded.
//!
//! The log is written once and read back rarely (sync serving a peer,
//! replay), so a node at full rate would otherwise fill the page cache with
//! frames nobody reads, at the expense of what is read (the state file, the
//! SLA snapshot), and every new frame would land on a page the kernel has to
//! find afresh. Dropping durable frames that lie further back than a tail
//! window keeps the cache bounded and lets new frames reuse the pages just
//! given back. Only clean (fdatasync'd) ranges are ever dropped, so nothing
//! is lost: a later read takes them from disk.

use std::fs::File;

/// Asks the kernel to drop `[from, to)` of `file` from the page cache and
/// returns the length of the range. Advisory: where the call is refused
/// (or on a platform without it) the pages simply stay cached, as without
/// it, so its error is not worth failing a commit over.
pub(super) fn drop_range(file: &File, from: u64, to: u64) -> u64 {
    let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) else { return 0 };
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    len.get()
}

/// `offset` rounded down to a page boundary: the kernel keeps a partly
/// covered page, so ranges end on whole pages for the next to start there.
pub(super) fn page_floor(offset: u64) -> u64 {
    let page = page_size();
    offset - offset % page
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(not(target_os = "linux"))]
fn page_size() -> u64 {
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_end_on_pages() {
        let page = page_size();
        assert_eq!(page_floor(0), 0);
        assert_eq!(page_floor(page - 1), 0);
        assert_eq!(page_floor(page), page);
        assert_eq!(page_floor(3 * page + 17), 3 * page);
    }
}
