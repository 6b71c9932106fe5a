//! Configuration errors. Every error names the key path it is about, so that a
//! typo in a 200-line file is found at once.

use std::fmt;

/// A configuration error: the key path (`models.smart.fallbacks[0]`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, empty for a whole-file problem.
    pub path: String,
    /// What is wrong and, where possible, what to do about it.
    pub message: String,
}

impl ConfigError {
    /// An error about the value at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config error: {}", self.message)
        } else {
            write!(f, "config error at `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
