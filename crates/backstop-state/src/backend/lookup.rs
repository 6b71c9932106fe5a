//! A record and its lease looked at in one step, for a request that is either answered from a stored record
//! or becomes the one that makes it (an idempotency key): on Redis one script, one round trip; on a store no
//! other process writes to, answers settled in this process, a read answered on the calling thread and a lease
//! kept in this process.

use super::{Backend, Store, OP_TIMEOUT};
use crate::record::Entry;
use crate::StateError;
use std::time::Instant;

/// The record under `KEYS[1]` (`{1, value}`); else the lease `KEYS[2]` taken for `ARGV[1]` for `ARGV[2]` ms
/// (0: no end) (`{2, ''}`); else the lease's holder (`{3, value}`).
pub(crate) const GET_OR_CLAIM: &str = "local stored = redis.call('get', KEYS[1]) \
     if stored then return {1, stored} end \
     local taken \
     if tonumber(ARGV[2]) > 0 then taken = redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) \
     else taken = redis.call('set', KEYS[2], ARGV[1], 'NX') end \
     if taken then return {2, ''} end \
     return {3, redis.call('get', KEYS[2]) or ''}";

/// What [`Store::lookup`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The record's value.
    Stored(String),
    /// No record: the lease is now the caller's.
    Leased,
    /// No record, and another caller holds the lease: its value (`None` if it ended meanwhile).
    Held(Option<String>),
}

impl Store {
    /// The record under `record` if it is there; else the lease `lease` taken with `entry` (set-if-absent,
    /// ended by [`Store::give_back`] or its time to live); else who holds it.
    ///
    /// On Redis this is one script (one round trip), shared by every replica. On memory and SQLite, which one
    /// process uses, an answer settled in this process is found in memory ([`Store::settle`]), a written one is
    /// read inline ([`Store::get_inline`]), and the lease is kept in this process, bounded: the file is not
    /// written. On SQLite a key this process never wrote is not read at all: the process keeps the fingerprints
    /// of the keys its file may hold (see `known.rs`).
    pub async fn lookup(
        &self,
        record: &str,
        lease: &str,
        entry: Entry,
    ) -> Result<Lookup, StateError> {
        if let Backend::Redis(r) = &self.backend {
            let (record, lease) = (self.full(record), self.full(lease));
            let (outcome, value) = self
                .timed(
                    "lookup",
                    OP_TIMEOUT,
                    r.get_or_claim(&record, &lease, &entry),
                )
                .await?;
            return Ok(match outcome {
                1 => Lookup::Stored(value),
                2 => Lookup::Leased,
                _ => Lookup::Held(Some(value).filter(|v| !v.is_empty())),
            });
        }
        if let Some(value) = self.settled_answer(record) {
            return Ok(Lookup::Stored(value));
        }
        let writes = self.settled_writes();
        if self.may_hold(record) {
            if let Some(value) = self.get_inline(record).await? {
                return Ok(Lookup::Stored(value));
            }
        }
        if let Some(holder) = self.leases.claim(lease, &entry.value, entry.ttl)? {
            return Ok(Lookup::Held(Some(holder)));
        }
        // The holder before may have settled its answer (kept in memory, then its lease given back) since the
        // first look, and it may even be written already: looked at again with the lease held, it is found
        // and not made twice.
        let stored = match self.settled_answer(record) {
            Some(value) => Ok(Some(value)),
            None if self.settled_writes() != writes => self.get_inline(record).await,
            None => Ok(None),
        };
        match stored {
            Ok(None) => Ok(Lookup::Leased),
            Ok(Some(value)) => {
                self.leases.release(lease, &entry.value);
                Ok(Lookup::Stored(value))
            }
            Err(error) => {
                self.leases.release(lease, &entry.value);
                Err(error)
            }
        }
    }

    /// Whether the backend may hold `key`: `false` only on SQLite, for a key this process never wrote to its
    /// file (see `known.rs`), which a lookup then need not read.
    fn may_hold(&self, key: &str) -> bool {
        match &self.backend {
            Backend::Sqlite(s) => s.may_hold(&self.prefix, key),
            Backend::Memory(_) | Backend::Redis(_) => true,
        }
    }

    /// Gives back the lease `lease` taken by [`Store::lookup`], if `value` still holds it.
    pub async fn give_back(&self, lease: &str, value: &str) -> Result<bool, StateError> {
        if self.is_shared() {
            return self.release(lease, value).await;
        }
        Ok(self.leases.release(lease, value))
    }

    /// The value under `key`, like [`Store::get`], read on the calling thread when the backend can answer at
    /// once (memory; SQLite through its read-only connection, a point lookup of a few microseconds), without
    /// the hop to the store's blocking thread; otherwise through [`Store::get`].
    pub async fn get_inline(&self, key: &str) -> Result<Option<String>, StateError> {
        let started = Instant::now();
        let full = self.full(key);
        let inline = match &self.backend {
            Backend::Memory(m) => Some(Ok(m.get(&full))),
            Backend::Sqlite(s) => s.get_inline(&full),
            Backend::Redis(_) => None,
        };
        match inline {
            Some(result) => self.note("get", started, result),
            None => self.get(key).await,
        }
    }
}
