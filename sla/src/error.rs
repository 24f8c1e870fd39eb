//! Errors of the SLA engine.

/// Why a policy, registry or checkpoint cannot be used.
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
    /// Checkpoint bytes that do not decode into engine state.
    #[error("SLA checkpoint: {0}")]
    Checkpoint(String),
    /// A checkpoint made under a different policy or registry.
    #[error("SLA checkpoint was made under {what} hash {found}, not the {expected} in force")]
    CheckpointMismatch {
        /// "policy" or "registry".
        what: &'static str,
        /// The hash recorded in the checkpoint.
        found: String,
        /// The hash in force.
        expected: String,
    },
}
