//! What is stored: keyed records with an optional time to live, and the changes the feed carries.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A value to store under a key, for at most `ttl` (`None`: until deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value, JSON by convention.
    pub value: String,
    /// How long the store keeps it.
    pub ttl: Option<Duration>,
}

impl Entry {
    /// The wall-clock expiry of an entry written now, in Unix milliseconds.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.ttl
            .map(|ttl| now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)))
    }
}

/// A change of one key, as the feed carries it: `value` is `None` when the key was deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The full key, prefix included.
    pub key: String,
    /// The new value, or `None` for a deletion.
    pub value: Option<String>,
    /// The replica that made the change.
    pub origin: String,
}
