//! How the node process asks the kernel for memory.

/// Turns transparent huge pages off for this process. mimalloc asks for them
/// on its arenas, and a node at saturation keeps freeing and re-taking
/// envelope-sized buffers: each time a purged 2 MiB range is touched again
/// the kernel zeroes a whole huge page, which took half of a saturated
/// node's CPU (BENCHMARKS.md, "One node at saturation"). The flag is the
/// kernel's, so it also holds where THP is `always` rather than `madvise`,
/// and it covers memory mapped before the call. A kernel without it leaves
/// the process as it was, which is only slower. The `vouch` binary calls
/// this first thing; benches that stand for a node call it too.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
