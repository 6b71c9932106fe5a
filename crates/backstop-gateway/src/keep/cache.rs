//! The `cached` tier: complete successful answers of a model kept in the state layer under
//! `cache:{model}:{who}:{hash}` (see [`super::key`]), each with the time it was stored and
//! the model's `cache.ttl` as its time to live, so that SQLite keeps them over a restart and
//! every replica on one Redis shares them.
//!
//! **Bounds.** Each replica keeps an index of the answers it stored, oldest first, per model;
//! storing one past `max_entries` or `max_bytes` evicts the oldest first (an answer larger
//! than `max_bytes` is not stored). The index is read back from the store when a replica
//! first stores an answer of a model, so a restarted replica still knows (and evicts) what
//! it wrote before. With several replicas on one Redis, each bounds what it wrote: the store
//! holds at most replicas × the bound, and `ttl` removes everything in the end.

use super::answer::{from_json, to_json};
use super::key;
use crate::config::{CacheMatch, CacheSettings};
use crate::pipeline::ClientRequest;
use backstop_protocol::ChatResponse;
use backstop_state::record::{now_ms, Entry};
use backstop_state::Store;
use http::HeaderMap;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long reading back a model's entries at first use may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The store has no unconditional delete: an evicted answer is overwritten with an empty
/// value that expires at once (and is never read as an answer).
const EVICTED_TTL: Duration = Duration::from_millis(1);

/// What the client's `Cache-Control` asks of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientDirectives {
    /// `no-cache`: do not answer from the cache.
    pub no_cache: bool,
    /// `no-store`: do not answer from it nor keep this answer.
    pub no_store: bool,
}

impl ClientDirectives {
    /// The directives of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            for token in value.to_str().unwrap_or("").split(',') {
                match token.trim().to_ascii_lowercase().as_str() {
                    "no-cache" => directives.no_cache = true,
                    "no-store" => {
                        directives.no_cache = true;
                        directives.no_store = true;
                    }
                    _ => {}
                }
            }
        }
        directives
    }
}

/// The key of `request`'s answer in the cache of the public `model`; `None` when the request
/// cannot be read in its protocol-neutral form.
pub fn key_of(request: &ClientRequest, model: &str, settings: &CacheSettings) -> Option<String> {
    let canonical = request.canonical().ok()?;
    let hash = match settings.matching {
        CacheMatch::Exact => key::exact(model, canonical),
        CacheMatch::LastMessage => key::last_message(model, canonical),
    };
    let who = if settings.per_key {
        key::client_id(&request.headers)
    } else {
        "shared".to_string()
    };
    Some(format!("{}{who}:{hash}", model_prefix(model)))
}

fn model_prefix(model: &str) -> String {
    format!("cache:{model}:")
}

/// A cached answer and its age.
pub struct Hit {
    /// The answer.
    pub answer: ChatResponse,
    /// Seconds since it was stored.
    pub age: u64,
}

/// The answer under `key`, if the store has a live one (a store that does not answer is a
/// miss: the request goes on as if nothing was cached).
pub async fn get(store: &Store, key: &str) -> Option<Hit> {
    let value = match store.get(key).await {
        Ok(value) => value?,
        Err(error) => {
            tracing::warn!("cache lookup failed, served without it: {error}");
            return None;
        }
    };
    let stored: Value = serde_json::from_str(&value).ok()?;
    let at = stored.get("at")?.as_u64()?;
    Some(Hit {
        answer: from_json(stored.get("answer")?)?,
        age: now_ms().saturating_sub(at) / 1000,
    })
}

/// One answer this replica stored.
struct Kept {
    key: String,
    bytes: u64,
    at: u64,
}

/// The answers one model's cache holds from this replica, oldest first.
#[derive(Default)]
struct ModelIndex {
    loaded: bool,
    entries: VecDeque<Kept>,
    bytes: u64,
}

impl ModelIndex {
    fn push(&mut self, kept: Kept) {
        if let Some(at) = self.entries.iter().position(|k| k.key == kept.key) {
            if let Some(old) = self.entries.remove(at) {
                self.bytes -= old.bytes;
            }
        }
        self.bytes += kept.bytes;
        self.entries.push_back(kept);
    }

    /// Drops the expired entries and, past the bounds, the oldest: the keys to evict.
    fn trim(&mut self, settings: &CacheSettings, now: u64) -> Vec<String> {
        let ttl = u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut evicted = Vec::new();
        while let Some(oldest) = self.entries.front() {
            let expired = oldest.at.saturating_add(ttl) <= now;
            let over =
                self.entries.len() as u64 > settings.max_entries || self.bytes > settings.max_bytes;
            if !expired && !over {
                break;
            }
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes;
            if !expired {
                evicted.push(oldest.key);
            }
        }
        evicted
    }
}

/// This replica's index of stored answers, per model.
#[derive(Default)]
pub struct Index {
    models: Mutex<HashMap<String, ModelIndex>>,
}

impl Index {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ModelIndex>> {
        self.models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads back what the store holds for `model`, once.
    async fn load(&self, store: &Store, model: &str) {
        if self.lock().get(model).is_some_and(|index| index.loaded) {
            return;
        }
        let found = store
            .scan(&model_prefix(model), LOAD_TIMEOUT)
            .await
            .unwrap_or_default();
        let mut kept: Vec<Kept> = found
            .into_iter()
            .filter_map(|(key, value)| {
                let stored: Value = serde_json::from_str(&value).ok()?;
                Some(Kept {
                    key,
                    bytes: value.len() as u64,
                    at: stored.get("at")?.as_u64()?,
                })
            })
            .collect();
        kept.sort_by_key(|k| k.at);
        let mut models = self.lock();
        let index = models.entry(model.to_string()).or_default();
        if !index.loaded {
            index.loaded = true;
            let newer = std::mem::take(&mut index.entries);
            index.bytes = 0;
            for k in kept.into_iter().chain(newer) {
                index.push(k);
            }
        }
    }

    /// The number of answers and bytes this replica holds for `model`.
    pub fn held(&self, model: &str) -> (usize, u64) {
        self.lock()
            .get(model)
            .map_or((0, 0), |index| (index.entries.len(), index.bytes))
    }
}

/// Stores `answer` under `key` in `model`'s cache and evicts what the bounds no longer allow.
pub async fn put(
    store: &Store,
    index: &Index,
    model: &str,
    settings: &CacheSettings,
    key: String,
    answer: &ChatResponse,
) {
    let at = now_ms();
    let value = json!({"at": at, "answer": to_json(answer)}).to_string();
    let bytes = value.len() as u64;
    if bytes > settings.max_bytes {
        tracing::info!(
            model,
            bytes,
            "answer larger than cache.max_bytes: not cached"
        );
        return;
    }
    index.load(store, model).await;
    let entry = Entry {
        value,
        ttl: Some(settings.ttl),
    };
    if let Err(error) = store.put_many(vec![(key.clone(), entry)]).await {
        tracing::warn!(model, "answer not cached: {error}");
        return;
    }
    let evicted = {
        let mut models = index.lock();
        let model_index = models.entry(model.to_string()).or_default();
        model_index.push(Kept { key, bytes, at });
        model_index.trim(settings, at)
    };
    if evicted.is_empty() {
        return;
    }
    let gone = evicted
        .into_iter()
        .map(|key| {
            let entry = Entry {
                value: String::new(),
                ttl: Some(EVICTED_TTL),
            };
            (key, entry)
        })
        .collect();
    if let Err(error) = store.put_many(gone).await {
        tracing::warn!(
            model,
            "evicting cached answers failed (their ttl still ends them): {error}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_entries: u64, max_bytes: u64) -> CacheSettings {
        CacheSettings {
            ttl: Duration::from_secs(60),
            serve: crate::config::CacheServe::OnFailure,
            matching: CacheMatch::Exact,
            max_entries,
            max_bytes,
            per_key: false,
        }
    }

    fn kept(key: &str, bytes: u64, at: u64) -> Kept {
        Kept {
            key: key.into(),
            bytes,
            at,
        }
    }

    #[test]
    fn the_oldest_answers_go_first_past_either_bound() {
        let mut index = ModelIndex::default();
        for (n, key) in ["a", "b", "c"].into_iter().enumerate() {
            index.push(kept(key, 10, 1000 + n as u64));
        }
        assert_eq!(index.trim(&settings(2, 1000), 1010), ["a"]);
        index.push(kept("d", 15, 1011));
        assert_eq!(index.trim(&settings(10, 20), 1012), ["b", "c"]);
        assert_eq!(index.bytes, 15);
        index.push(kept("d", 5, 1013));
        assert_eq!(index.entries.len(), 1, "a key stored again replaces itself");
        assert!(
            index.trim(&settings(10, 25), 61_013).is_empty(),
            "expired: dropped, not evicted"
        );
        assert!(index.entries.is_empty());
    }

    #[test]
    fn cache_control_is_read_token_by_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CACHE_CONTROL,
            "max-age=0, No-Cache".parse().unwrap(),
        );
        assert_eq!(
            ClientDirectives::of(&headers),
            ClientDirectives {
                no_cache: true,
                no_store: false
            }
        );
        assert_eq!(
            ClientDirectives::of(&HeaderMap::new()),
            ClientDirectives::default()
        );
    }
}
