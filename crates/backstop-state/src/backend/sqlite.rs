//! The SQLite backend: one embedded file in WAL mode, for a single node that must survive restarts.
//!
//! The file carries a schema version. A new file gets the current schema; an older one is migrated; a newer one,
//! a file that is not a database, or a database of another program is refused at start with an error naming the
//! file (the gateway exits 2), never overwritten.

use super::known::{KnownKeys, MAX_KNOWN};
use crate::record::{now_ms, Change, Entry};
use crate::StateError;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The schema this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// The statements that bring a file from version `index` to `index + 1`.
const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE records (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX records_expiry ON records (expires_at);",
    // The durable queue (see crate::queue): one row a job, `queue` being the store's prefix.
    "CREATE TABLE jobs (
        queue TEXT NOT NULL,
        id TEXT NOT NULL,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        payload TEXT NOT NULL,
        callback TEXT,
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        purge_ms INTEGER NOT NULL,
        not_before_ms INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL,
        lease_token TEXT,
        result TEXT,
        status_code INTEGER,
        PRIMARY KEY (queue, id)
    );
    CREATE INDEX jobs_due ON jobs (queue, status, not_before_ms);
    CREATE TABLE job_counts (
        queue TEXT PRIMARY KEY NOT NULL,
        unfinished INTEGER NOT NULL
    );",
];

/// A live record's value by key.
const GET: &str =
    "SELECT value FROM records WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)";

/// An open state file.
#[derive(Clone)]
pub struct Sqlite {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    /// A second, read-only connection for point lookups answered inline (see [`Sqlite::get_inline`]).
    reader: Arc<Mutex<Connection>>,
    /// The keys the file may hold (see [`Sqlite::may_hold`]).
    known: Arc<KnownKeys>,
}

impl Sqlite {
    /// Opens (or creates) the file at `path`, checks and migrates its schema.
    pub fn open(path: &Path) -> Result<Sqlite, StateError> {
        let open_error = |detail: String| StateError::Open {
            path: path.to_path_buf(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let foreign = |what: &str| StateError::Foreign {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => {
                    foreign("not a SQLite database (corrupt, or another kind of file)")
                }
                _ => open_error(e.to_string()),
            })?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "the state file is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000;")
            .map_err(|e| open_error(e.to_string()))?;
        migrate(&conn, path)?;
        let known = KnownKeys::for_file(path, || live_keys(&conn))?;
        let reader = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        reader
            .execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 0;")
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
            reader: Arc::new(Mutex::new(reader)),
            known,
        })
    }

    /// Whether the file may hold `prefix` followed by `key`: `false` only when it cannot, because this process
    /// writes every record of the file and has not written this key since the file was opened (see `known.rs`).
    /// A lookup of a key never stored then needs no read.
    pub(crate) fn may_hold(&self, prefix: &str, key: &str) -> bool {
        self.known.may_hold(&[prefix, key])
    }

    /// The value under `key`, read on the calling thread through the read-only connection: a primary-key
    /// lookup that SQLite answers from its page cache in microseconds (in WAL mode a reader never waits for
    /// the writer). Another thread's read holds the connection for as long, so this waits for it rather than
    /// take the writing connection, which may be inside a batch. `None` when the file is busy: then use
    /// [`Sqlite::get`].
    pub(crate) fn get_inline(&self, key: &str) -> Option<Result<Option<String>, StateError>> {
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = reader.prepare_cached(GET).and_then(|mut statement| {
            statement
                .query_row(params![key, now_ms() as i64], |row| row.get(0))
                .optional()
        });
        match found {
            Err(error) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                None
            }
            found => Some(found.map_err(StateError::from)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the connection off the async workers.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StateError> + Send + 'static,
    ) -> Result<R, StateError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this.lock()))
            .await
            .map_err(|e| StateError::Backend(format!("state task failed: {e}")))?
    }

    pub(crate) async fn put_many(
        &self,
        entries: Vec<(String, Entry)>,
        origin: String,
    ) -> Result<Vec<Change>, StateError> {
        self.known.add(entries.iter().map(|(key, _)| key.as_str()));
        self.run(move |conn| {
            let tx = conn.unchecked_transaction()?;
            tx.prepare_cached(
                "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            )?
            .execute(params![now_ms() as i64])?;
            // One statement for the batch, parsed once per connection, not once per row.
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = ?2, expires_at = ?3",
            )?;
            let mut changes = Vec::with_capacity(entries.len());
            for (key, entry) in entries {
                insert.execute(params![
                    key,
                    entry.value,
                    entry.expires_at_ms().map(|t| t as i64)
                ])?;
                changes.push(Change {
                    key,
                    value: Some(entry.value),
                    origin: origin.clone(),
                });
            }
            drop(insert);
            tx.commit()?;
            Ok(changes)
        })
        .await
    }

    pub(crate) async fn get(&self, key: String) -> Result<Option<String>, StateError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(GET, params![key, now_ms() as i64], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    pub(crate) async fn scan(&self, prefix: String) -> Result<Vec<(String, String)>, StateError> {
        self.run(move |conn| {
            let mut statement = conn.prepare(
                "SELECT key, value FROM records WHERE substr(key, 1, length(?1)) = ?1
                 AND (expires_at IS NULL OR expires_at > ?2)",
            )?;
            let rows = statement
                .query_map(params![prefix, now_ms() as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<Vec<(String, String)>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub(crate) async fn set_if_absent(
        &self,
        key: String,
        entry: Entry,
    ) -> Result<bool, StateError> {
        self.known.add([key.as_str()]);
        self.run(move |conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "DELETE FROM records WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
                params![key, now_ms() as i64],
            )?;
            let inserted = tx.execute(
                "INSERT INTO records (key, value, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING",
                params![key, entry.value, entry.expires_at_ms().map(|t| t as i64)],
            )?;
            tx.commit()?;
            Ok(inserted == 1)
        })
        .await
    }

    pub(crate) async fn add(
        &self,
        key: String,
        amount: f64,
        ttl: Option<std::time::Duration>,
    ) -> Result<f64, StateError> {
        self.known.add([key.as_str()]);
        self.run(move |conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "DELETE FROM records WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
                params![key, now_ms() as i64],
            )?;
            let expires_at = Entry {
                value: String::new(),
                ttl,
            }
            .expires_at_ms()
            .map(|t| t as i64);
            tx.execute(
                "INSERT INTO records (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS REAL) + ?4 AS TEXT)",
                params![key, amount.to_string(), expires_at, amount],
            )?;
            let total: String =
                tx.query_row("SELECT value FROM records WHERE key = ?1", params![key], |row| {
                    row.get(0)
                })?;
            tx.commit()?;
            Ok(total.parse().unwrap_or(0.0))
        })
        .await
    }

    pub(crate) async fn delete_if(&self, key: String, value: String) -> Result<bool, StateError> {
        self.run(move |conn| {
            Ok(conn.execute(
                "DELETE FROM records WHERE key = ?1 AND value = ?2",
                params![key, value],
            )? == 1)
        })
        .await
    }

    pub(crate) async fn describe(&self) -> Result<String, StateError> {
        let path = self.path.display().to_string();
        self.run(move |conn| {
            let count: i64 =
                conn.query_row("SELECT count(*) FROM records", [], |row| row.get(0))?;
            let version = rusqlite::version();
            Ok(format!(
                "sqlite {version} at {path}: schema v{SCHEMA_VERSION}, WAL, {count} records"
            ))
        })
        .await
    }
}

/// The keys of the file's live records, or `None` when there are more than [`MAX_KNOWN`].
fn live_keys(conn: &Connection) -> Result<Option<Vec<String>>, StateError> {
    let mut statement = conn
        .prepare("SELECT key FROM records WHERE expires_at IS NULL OR expires_at > ?1 LIMIT ?2")?;
    let keys = statement
        .query_map(params![now_ms() as i64, MAX_KNOWN as i64 + 1], |row| {
            row.get(0)
        })?
        .collect::<Result<Vec<String>, _>>()?;
    Ok((keys.len() <= MAX_KNOWN).then_some(keys))
}

/// Checks the file's schema version and applies the missing migrations.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let table_exists = |name: &str| -> Result<bool, StateError> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    };
    let version: i64 = if table_exists("backstop_schema")? {
        conn.query_row("SELECT max(version) FROM backstop_schema", [], |row| {
            row.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0)
    } else {
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
        if tables > 0 {
            return Err(StateError::Foreign {
                path: path.to_path_buf(),
                what: "a database of another program (it has no backstop_schema table)".into(),
            });
        }
        conn.execute_batch("CREATE TABLE backstop_schema (version INTEGER NOT NULL)")?;
        0
    };
    if version > SCHEMA_VERSION {
        return Err(StateError::Newer {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(migration)?;
        tx.execute(
            "INSERT INTO backstop_schema (version) VALUES (?1)",
            params![index as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_the_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.db");
        Sqlite::open(&path).unwrap();
        Sqlite::open(&path).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        let error = Sqlite::open(&path).err().unwrap();
        assert!(matches!(error, StateError::Foreign { .. }), "{error}");
        assert!(error.to_string().contains("state.db"), "{error}");
    }

    #[test]
    fn a_foreign_or_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE accounts (id INTEGER)")
            .unwrap();
        let error = Sqlite::open(&foreign).err().unwrap();
        assert!(error.to_string().contains("another program"), "{error}");

        let newer = dir.path().join("newer.db");
        Sqlite::open(&newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .execute("INSERT INTO backstop_schema (version) VALUES (99)", [])
            .unwrap();
        let error = Sqlite::open(&newer).err().unwrap();
        assert!(
            matches!(error, StateError::Newer { found: 99, .. }),
            "{error}"
        );
    }
}
