//! `vouch`: keys, delegation certificates, signed envelopes and authority
//! snapshots from the command line (and, as the project grows, the verifier
//! node itself).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
