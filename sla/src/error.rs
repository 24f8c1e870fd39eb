//! Errors of the SLA engine.

/// Why a policy, registry or engine snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    /// The policy file is not valid TOML of the expected shape.
    #[error("SLA policy: {0}")]
    Policy(String),
    /// The model registry file is not valid TOML of the expected shape.
    #[error("model registry: {0}")]
    Registry(String),
    /// A policy or registry file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Snapshot bytes that do not decode into engine state.
    #[error("SLA snapshot: {0}")]
    Snapshot(String),
    /// A snapshot made under a different policy or registry.
    #[error("SLA snapshot was made under {what} hash {found}, not the {expected} in force")]
    SnapshotMismatch {
        /// "policy" or "registry".
        what: &'static str,
        /// The hash recorded in the snapshot.
        found: String,
        /// The hash in force.
        expected: String,
    },
}
