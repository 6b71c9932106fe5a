//! The state layer's errors.

use std::path::PathBuf;

/// What went wrong with the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The `state` setting cannot be read.
    #[error("{0}")]
    Spec(String),
    /// The SQLite file cannot be created or opened.
    #[error("cannot open the state file {path}: {detail}; check that its directory exists and is writable, or choose another path with `state = \"sqlite:PATH\"`")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The file is not a SQLite database, or not Backstop's.
    #[error("the state file {path} is {what}; move it away (Backstop creates a new one) or choose another path with `state = \"sqlite:PATH\"`")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// `not a SQLite database (corrupt?)` or `a database of another program`.
        what: String,
    },
    /// The file was written by a newer Backstop.
    #[error("the state file {path} has schema version {found}, newer than this Backstop's {supported}; run the newer Backstop, or move the file away")]
    Newer {
        /// The file.
        path: PathBuf,
        /// The file's version.
        found: i64,
        /// This build's version.
        supported: i64,
    },
    /// An operation on the backend failed (connection lost, disk full, ...).
    #[error("state backend: {0}")]
    Backend(String),
    /// An operation took longer than the backend's time limit.
    #[error("state backend did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl StateError {
    /// Whether this error is about the store's setting or file (fix and restart: exit 2), not a passing failure.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StateError::Spec(_)
                | StateError::Open { .. }
                | StateError::Foreign { .. }
                | StateError::Newer { .. }
        )
    }
}

impl From<rusqlite::Error> for StateError {
    fn from(error: rusqlite::Error) -> Self {
        StateError::Backend(error.to_string())
    }
}

impl From<redis::RedisError> for StateError {
    fn from(error: redis::RedisError) -> Self {
        // RedisError's Display never includes the connection URL.
        StateError::Backend(error.to_string())
    }
}
