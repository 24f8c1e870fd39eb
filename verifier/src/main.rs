//! `vouch`: the command line of Vouch. Keys, delegation certificates,
//! revocations and authority views; signing, verifying, publishing and
//! subscribing to envelopes; the verifier node; the Streamr bridge, sinks and export of a
//! node's log; its audit (`vouch replay`); a load-test gateway; and a whole
//! simulated network on loopback (`vouch demo`). Each subcommand is a module
//! of `cli/` that parses its flags, calls the `vouch_verifier` library and
//! prints.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
