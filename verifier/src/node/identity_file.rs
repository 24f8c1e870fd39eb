//! The node's libp2p identity, kept in its data directory so that a
//! restarted verifier keeps its peer id: publishers and peers dial
//! `/…/p2p/<peer id>` addresses, which a fresh key would break.

use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;

use super::{NodeError, StateFailure};

/// The identity file's name inside the data directory.
pub(crate) const FILE: &str = "p2p-identity.key";

/// Reads the ed25519 keypair at `path`, or creates one there (mode 0600).
pub(crate) fn load_or_create(path: &Path) -> Result<Keypair, NodeError> {
    let bad = |action: &'static str, source: std::io::Error| -> NodeError {
        StateFailure::File { action, path: path.to_owned(), source }.into()
    };
    let key = |action: &'static str, source| -> NodeError {
        StateFailure::Identity { action, path: path.to_owned(), source }.into()
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            return Keypair::from_protobuf_encoding(&bytes).map_err(|e| key("decoding", e));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad("reading", e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| bad("creating the directory of", e))?;
    }
    let keypair = Keypair::generate_ed25519();
    let bytes = keypair.to_protobuf_encoding().map_err(|e| key("encoding", e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| bad("creating", e))?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| bad("writing", e))?;
    Ok(keypair)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_survives_a_restart() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("data").join(FILE);
        let first = load_or_create(&path).unwrap().public().to_peer_id();
        let again = load_or_create(&path).unwrap().public().to_peer_id();
        assert_eq!(first, again);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(load_or_create(&path), Err(NodeError::State(_))));
    }
}
