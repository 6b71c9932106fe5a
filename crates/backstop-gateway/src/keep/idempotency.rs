//! Idempotency keys, the gateway's checkpoint: the first complete answer to a request with an
//! `Idempotency-Key` is kept for `idempotency.ttl` under `idem:{client}:{key hash}`, with the
//! hash of its body (without `stream`). A repeat gets it again, streamed if it asks for a
//! stream, with `x-backstop-idempotent-replay: true` and no upstream call; a repeat with
//! another body is a 422.
//!
//! While the first is answered it holds a lease, `idem:...:lease` (for at most `timeouts.total`
//! and a margin): a concurrent duplicate, in this replica or another on the same store, waits
//! for the answer instead of calling the provider again. The record and the lease are looked at
//! in one step ([`Store::lookup`]): one script on Redis; on memory and SQLite (one process) a
//! read on the calling thread and a lease kept in this process, so the check costs
//! microseconds and no write. The answer is kept in this process at once and written to the
//! file in batches ([`Store::settle`]), and what waits is written at shutdown.
//! If the first fails, it gives the lease back without an answer, and the waiting duplicate
//! takes it and tries itself; one still waiting at its own `timeouts.total` gets a 409. A
//! store that does not answer does not stop the request: it is served without the guarantee
//! (logged, and counted as `unavailable`).

use super::answer::{from_json, respond, to_json, Rendering};
use super::key::{self, sha256_hex};
use crate::http::{ApiError, ErrorKind, ServedMeta};
use crate::metrics::Metrics;
use crate::pipeline::{ClientRequest, Gateway};
use axum::response::Response;
use backstop_protocol::ChatResponse;
use backstop_state::backend::Lookup;
use backstop_state::record::Entry;
use backstop_state::Store;
use http::HeaderValue;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// [`HEADER`] as a header name, looked up on every request without parsing the name.
const NAME: http::HeaderName = http::HeaderName::from_static(HEADER);

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// How often a duplicate looks for the first request's answer.
const POLL: Duration = Duration::from_millis(25);

/// How much longer than `timeouts.total` a lease is held by a replica that died.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The request's `Idempotency-Key`, if it has one; a 400 naming the header if it is empty,
/// longer than 255 bytes or not printable ASCII.
pub fn key_of(headers: &http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(&NAME) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| (0x20..0x7f).contains(b))
    {
        let mut error = ApiError::new(
            ErrorKind::InvalidRequest,
            format!("invalid Idempotency-Key header: it must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        );
        error.param = Some("Idempotency-Key".to_string());
        return Err(error);
    }
    Ok(value.to_str().ok())
}

/// Where a request with an `Idempotency-Key` stands once its record was looked up.
pub enum Begin {
    /// The stored answer, replayed.
    Replay(Response),
    /// Serve it: with the lease when this request is the first (`None`: no key, or no store).
    Proceed(Option<Lease>),
}

/// Looks `request`'s key up: a replay, a 422 for another body, a wait for a duplicate in
/// flight, or the lease of the first request.
pub async fn begin(gateway: &Gateway, request: &ClientRequest) -> Result<Begin, ApiError> {
    let Some(idempotency_key) = key_of(&request.headers)? else {
        return Ok(Begin::Proceed(None));
    };
    let Some(store) = super::store(gateway) else {
        return Ok(Begin::Proceed(None));
    };
    let metrics = gateway.metrics().clone();
    let record = format!(
        "idem:{}:{}",
        key::client_id(&request.headers),
        &sha256_hex(idempotency_key.as_bytes())[..32]
    );
    let lease_key = format!("{record}:lease");
    let body = key::body(&request.body);
    let unavailable = |error: backstop_state::StateError| {
        tracing::warn!("idempotency record unreadable, served without the guarantee: {error}");
        metrics.keep().idempotency("unavailable");
        Ok(Begin::Proceed(None))
    };
    let mut waited = false;
    loop {
        // Both are hex digits and hyphens: nothing in them needs escaping.
        let value = format!(
            r#"{{"token":"{}","body":"{body}"}}"#,
            crate::http::random_uuid().hyphenated()
        );
        let entry = Entry {
            value: value.clone(),
            ttl: Some(request.config.timeouts.total + LEASE_MARGIN),
        };
        match store.lookup(&record, &lease_key, entry).await {
            Ok(Lookup::Stored(stored)) => return replay(&stored, &body, request, &metrics, waited),
            Ok(Lookup::Leased) => {
                metrics.keep().idempotency("first");
                return Ok(Begin::Proceed(Some(Lease {
                    store,
                    record,
                    lease_key,
                    lease_value: value,
                    body,
                    ttl: request.config.idempotency.ttl,
                    done: false,
                })));
            }
            Ok(Lookup::Held(holder)) => {
                if let Some(holder) = holder {
                    check_body(&holder, &body, &metrics)?;
                }
            }
            Err(error) => return unavailable(error),
        }
        if Instant::now() + POLL >= request.deadline {
            metrics.keep().idempotency("conflict");
            return Err(ApiError::new(
                ErrorKind::InProgress,
                "a request with this Idempotency-Key is still being answered: try again later",
            )
            .with_retry_after(Some(Duration::from_secs(1))));
        }
        waited = true;
        tokio::time::sleep(POLL).await;
    }
}

/// A 422 when `stored` (a record or a lease) is for another body than `body`.
fn check_body(stored: &str, body: &str, metrics: &Metrics) -> Result<Value, ApiError> {
    let stored: Value = serde_json::from_str(stored).unwrap_or(Value::Null);
    if stored.get("body").and_then(Value::as_str) != Some(body) {
        metrics.keep().idempotency("mismatch");
        return Err(ApiError::new(
            ErrorKind::KeyReused,
            "this Idempotency-Key was used with another request body: use a new key for a new request",
        ));
    }
    Ok(stored)
}

fn replay(
    stored: &str,
    body: &str,
    request: &ClientRequest,
    metrics: &Metrics,
    waited: bool,
) -> Result<Begin, ApiError> {
    let stored = check_body(stored, body, metrics)?;
    let Some(answer) = stored.get("answer").and_then(from_json) else {
        return Err(ApiError::new(
            ErrorKind::Internal,
            "the stored answer of this Idempotency-Key cannot be read",
        ));
    };
    metrics
        .keep()
        .idempotency(if waited { "waited" } else { "replayed" });
    let tier = stored.get("tier").and_then(Value::as_str).unwrap_or("full");
    let meta = ServedMeta {
        model: stored
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&request.envelope.model)
            .to_string(),
        target: None,
        attempts: 0,
        fallback: tier == "reduced",
        degraded: (tier == "cached").then_some("cached"),
    };
    let mut response = respond(&Rendering::of(request), &answer, &meta);
    response.headers_mut().insert(
        "x-backstop-idempotent-replay",
        HeaderValue::from_static("true"),
    );
    Ok(Begin::Replay(response))
}

/// The first request's hold on its key: [`Lease::complete`] stores its answer; dropped
/// without one (the request failed, or the client left mid-stream), it is given back.
pub struct Lease {
    store: Arc<Store>,
    record: String,
    lease_key: String,
    lease_value: String,
    body: String,
    ttl: Duration,
    done: bool,
}

impl Lease {
    /// Stores `answer` (of the public `model`, served at `tier`) and gives the lease back, without waiting
    /// for the store ([`Store::settle`]: on SQLite and memory a duplicate replays it from memory at once).
    pub fn complete(mut self, answer: &ChatResponse, model: &str, tier: &str) {
        self.done = true;
        let value =
            json!({"body": self.body, "model": model, "tier": tier, "answer": to_json(answer)});
        let entry = Entry {
            value: value.to_string(),
            ttl: Some(self.ttl),
        };
        self.store
            .settle(&self.record, entry, &self.lease_key, &self.lease_value);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let store = self.store.clone();
        let (key, value) = (self.lease_key.clone(), self.lease_value.clone());
        spawn(async move {
            let _ = store.give_back(&key, &value).await;
        });
    }
}

/// Runs `work` on the current runtime, if there is one (there always is while serving).
fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}
