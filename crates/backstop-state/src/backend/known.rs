//! The keys a SQLite file may hold, kept in the process that owns the file, so that a lookup of a key the file
//! cannot hold (the first request with a new idempotency key) answers without reading the file.
//!
//! A key's 64-bit fingerprint is added before the key is written, and every key already in the file is added
//! when the file is opened, so a key whose fingerprint is missing is not in the file. The converse need not
//! hold: a fingerprint stays when its record expires or is deleted, and two keys may share one; either costs a
//! read that finds nothing, never a wrong answer. The set is bounded by [`MAX_KNOWN`]: a key that finds it full
//! makes it answer "may hold" for every key from then on (every lookup reads the file, as without the set) until
//! the file is opened again, which keeps only the live keys.
//!
//! This holds only while one process writes to the file, which is what the SQLite backend is for (one gateway
//! process; see the README's "Shared state"). Handles opened on one file in one process share one set (see
//! [`KnownKeys::for_file`]).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// The most fingerprints kept (some 16 MB at the bound, 8 bytes a key and the set's overhead).
pub const MAX_KNOWN: usize = 1 << 20;

/// The fingerprints of the keys a file may hold, or `None` once the bound was reached.
pub(crate) struct KnownKeys {
    fingerprints: Mutex<Option<HashSet<u64>>>,
}

/// The sets of the files open in this process, by path.
fn open_files() -> MutexGuard<'static, HashMap<PathBuf, Weak<KnownKeys>>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<KnownKeys>>>> = OnceLock::new();
    FILES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fingerprint of the key made of `parts` one after the other: the same as of the joined key, with no
/// joined copy made (the hasher reads a stream of bytes).
fn fingerprint(parts: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        hasher.write(part.as_bytes());
    }
    hasher.finish()
}

impl KnownKeys {
    /// The set of the file at `path`: the one already open in this process, or a new one filled with `load()`
    /// (the file's live keys, or `None` when there are more than [`MAX_KNOWN`]).
    pub(crate) fn for_file<E>(
        path: &Path,
        load: impl FnOnce() -> Result<Option<Vec<String>>, E>,
    ) -> Result<Arc<KnownKeys>, E> {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut files = open_files();
        files.retain(|_, known| known.strong_count() > 0);
        if let Some(known) = files.get(&path).and_then(Weak::upgrade) {
            return Ok(known);
        }
        let fingerprints = load()?.map(|keys| keys.iter().map(|key| fingerprint(&[key])).collect());
        let known = Arc::new(KnownKeys {
            fingerprints: Mutex::new(fingerprints),
        });
        files.insert(path, Arc::downgrade(&known));
        Ok(known)
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashSet<u64>>> {
        self.fingerprints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `keys` are about to be written.
    pub(crate) fn add<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut fingerprints = self.lock();
        for key in keys {
            let Some(set) = fingerprints.as_mut() else {
                return;
            };
            let print = fingerprint(&[key]);
            if set.len() >= MAX_KNOWN && !set.contains(&print) {
                tracing::info!(
                    "the state file holds over {MAX_KNOWN} keys: lookups of new keys read it from now on"
                );
                *fingerprints = None;
                return;
            }
            set.insert(print);
        }
    }

    /// Whether the file may hold the key made of `parts` (a prefix and a key, say): `false` only when it cannot.
    pub(crate) fn may_hold(&self, parts: &[&str]) -> bool {
        self.lock()
            .as_ref()
            .is_none_or(|set| set.contains(&fingerprint(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path, keys: &[&str]) -> Arc<KnownKeys> {
        let keys = keys.iter().map(|key| key.to_string()).collect();
        KnownKeys::for_file(path, || Ok::<_, ()>(Some(keys))).unwrap()
    }

    #[test]
    fn a_key_is_known_once_loaded_or_added() {
        let known = open(Path::new("/nonexistent/known-a.db"), &["loaded"]);
        assert!(known.may_hold(&["loaded"]));
        assert!(!known.may_hold(&["new"]));
        known.add(["new"]);
        assert!(known.may_hold(&["new"]));
        assert!(!known.may_hold(&["other"]));
        assert!(
            known.may_hold(&["ne", "w"]),
            "a key in parts is the joined key"
        );
    }

    #[test]
    fn handles_on_one_file_share_one_set_while_one_is_open() {
        let path = Path::new("/nonexistent/known-b.db");
        let first = open(path, &[]);
        let second = open(path, &["ignored: the open set is reused"]);
        first.add(["written by the first"]);
        assert!(second.may_hold(&["written by the first"]));
        assert!(!second.may_hold(&["ignored: the open set is reused"]));
        drop((first, second));
        let reopened = open(path, &["loaded again"]);
        assert!(reopened.may_hold(&["loaded again"]));
        assert!(!reopened.may_hold(&["written by the first"]));
    }

    #[test]
    fn past_the_bound_every_key_may_be_held() {
        let known = open(Path::new("/nonexistent/known-c.db"), &[]);
        let keys: Vec<String> = (0..MAX_KNOWN).map(|n| n.to_string()).collect();
        known.add(keys.iter().map(String::as_str));
        assert!(!known.may_hold(&["never written"]));
        known.add(["one too many"]);
        assert!(known.may_hold(&["one too many"]));
        assert!(known.may_hold(&["never written"]));

        let too_many =
            KnownKeys::for_file(Path::new("/nonexistent/known-d.db"), || Ok::<_, ()>(None))
                .unwrap();
        assert!(too_many.may_hold(&["anything"]));
    }
}
