//! The training crate's error type: every failure names what was wrong and where, so the CLI can
//! print it as is and exit with the right code.

use std::path::PathBuf;

/// Errors raised while loading data, training, scoring or reading artifacts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input itself is unusable (missing column, unparsable value, empty file, too many bad rows).
    #[error("{0}")]
    Input(String),
    /// Parameters that cannot start a run.
    #[error("invalid parameter `{name}`: {reason}")]
    Param { name: &'static str, reason: String },
    /// An artifact that is missing, corrupt or written by an incompatible version.
    #[error("model artifact {path}: {reason}")]
    Artifact { path: PathBuf, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        // Not `#[source]`: the message already includes it, and error chains would repeat it.
        source: std::io::Error,
    },
    /// A failure inside polars while reading or writing tabular files.
    #[error("{context}: {source}")]
    Polars {
        context: String,
        source: polars::error::PolarsError,
    },
    /// A failure inside LightGBM or linfa.
    #[error("model fitting failed: {0}")]
    Model(String),
}

impl Error {
    /// Whether the error is the caller's input (exit code 2) rather than an internal failure.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::Input(_) | Error::Param { .. } | Error::Artifact { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Error::Param {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn artifact(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Artifact {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<lightgbm3::Error> for Error {
    fn from(e: lightgbm3::Error) -> Self {
        Error::Model(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
