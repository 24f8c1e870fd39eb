//! `vouch prove LOG ENVELOPE_ID`: an envelope's inclusion proof against the
//! checkpoint its verifier signed for the envelope's minute.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vouch_verifier::replay::proof::{ProofError, prove};

use super::{Exit, print_json};

#[derive(Debug, Args)]
pub(crate) struct ProveArgs {
    /// The log directory (a node's `<data dir>/log`; a data dir holding `log/` works too).
    log_dir: PathBuf,
    /// The envelope id: hex of the blake3 hash of its bytes (what `vouch
    /// export ndjson` prints as `envelope_hash`).
    envelope: String,
}

pub(crate) fn run(args: ProveArgs) -> Result<Exit> {
    let dir = super::replay::log_dir(args.log_dir);
    match prove(&dir, &args.envelope) {
        Ok(proof) => {
            print_json(&serde_json::to_value(&proof)?);
            Ok(Exit::Ok)
        }
        Err(ProofError::Log(e)) => {
            Err(anyhow::Error::new(e).context(format!("reading {}", dir.display())))
        }
        Err(e) => {
            print_json(&json!({"ok": false, "error": e.to_string()}));
            eprintln!("no proof: {e}");
            Ok(Exit::CheckFailed)
        }
    }
}
