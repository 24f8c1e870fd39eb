//! Reading the TOML files `vouch node` and `vouch bridge` are configured by,
//! and the files they name, with one error type for both.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration file (or a file it names) could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file cannot be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{}: {source}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: toml::de::Error,
    },
}

/// The text of `path`.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path)
        .map_err(|source| FileError::Read { path: path.to_owned(), source })
}

/// `path` parsed as TOML of shape `T`.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    toml::from_str(&read_text(path)?)
        .map_err(|source| FileError::Toml { path: path.to_owned(), source })
}
