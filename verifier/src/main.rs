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
    vouch_verifier::node::memory::disable_transparent_huge_pages();
    cli::main()
}
