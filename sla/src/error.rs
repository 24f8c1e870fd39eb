//! Errors of the SLA engine.

/// Why a policy, registry or engine snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    /// The policy file is not valid TOML of the expected shape.
    #[error("SLA policy: {0}")]
    Policy(#[source] PolicyError),
    /// The model registry file is not valid TOML of the expected shape.
    #[error("model registry: {0}")]
    Registry(#[source] RegistryError),
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
    Snapshot(#[source] ciborium::de::Error<std::io::Error>),
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

/// What is wrong with a policy file ([`SlaError::Policy`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not TOML of the policy's shape.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A window name that is not one of the known windows.
    #[error("unknown window {window:?}")]
    UnknownWindow {
        /// The name as configured.
        window: String,
    },
    /// A value out of its range; the message names the key and the range.
    #[error("{0}")]
    OutOfRange(&'static str),
}

/// What is wrong with a model registry file ([`SlaError::Registry`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Not TOML of the registry's shape.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A model id or alias used twice (compared case-insensitively).
    #[error("model name {name:?} appears twice")]
    DuplicateName {
        /// The name as written.
        name: String,
    },
}
