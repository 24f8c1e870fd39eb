//! `vouch`: the command line of Vouch. Keys, delegation certificates,
//! revocations and authority views; signing, verifying, publishing and
//! subscribing to envelopes; the verifier node; the Streamr bridge, sinks and export of a
//! node's log; its audit (`vouch replay`); a load-test gateway; and a whole
//! simulated network on loopback (`vouch demo`). Each subcommand is a module
//! of `cli/` that parses its flags, calls the `vouch_verifier` library and
//! prints.

mod cli;

/// mimalloc returns freed pages to the system, where glibc's allocator kept
/// a flooded node's resident memory at its high-water mark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    cli::main()
}

/// Turns transparent huge pages off for this process. mimalloc asks for them
/// on its arenas, and a node at saturation keeps freeing and re-taking
/// envelope-sized buffers: each time a purged 2 MiB range is touched again
/// the kernel zeroes a whole huge page, which took half of a saturated
/// node's CPU (BENCHMARKS.md, "One node at saturation"). The flag is the
/// kernel's, so it also holds where THP is `always` rather than `madvise`.
/// A kernel without it leaves the process as it was, which is only slower.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
