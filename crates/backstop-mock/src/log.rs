//! The request log behind `GET /_mock/requests`.
//!
//! Tests assert on what reached the provider (how many attempts, how far apart, which fault hit
//! them), so every provider request is recorded once it has ended, in a bounded ring: a `Mutex`
//! around a `VecDeque` push, cheap enough for tens of thousands of requests per second. Entries
//! carry an arrival sequence number; the list is returned in arrival order. Headers and body are
//! stored as received (reference-counted bytes, no copy) and only redacted and parsed when the
//! log is read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::fault::Route;

/// Header names whose values are replaced by `"***"` in the log.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "x-amz-security-token",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
];

/// One request as the mock saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    /// Arrival time in milliseconds since the mock started (follows `tokio::time`, so paused
    /// time in tests shows here).
    pub at_ms: f64,
    /// Arrival time as Unix milliseconds (wall clock).
    pub unix_ms: u64,
    /// Which API surface.
    pub route: Route,
    /// HTTP method.
    pub method: String,
    /// The HTTP version the request came in: `"HTTP/1.1"` or `"HTTP/2.0"` (what ALPN chose
    /// over TLS, or the preface the client sent in cleartext).
    #[serde(default)]
    pub version: String,
    /// The connection it came on, numbered from 1 in the order the mock accepted them:
    /// requests with the same number shared a connection.
    #[serde(default)]
    pub connection: u64,
    /// Path and query.
    pub path: String,
    /// The requested model ("" when the request names none).
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// Request headers, secrets replaced by `"***"`.
    pub headers: BTreeMap<String, String>,
    /// The request body (JSON), `null` when empty, a string when not JSON.
    pub body: serde_json::Value,
    /// The fault applied (its kind name), if any.
    pub fault: Option<String>,
    /// The status sent, if headers were sent.
    pub status: Option<u16>,
    /// How it ended: `"ok"`, `"status 503"`, `"cut after 40"`, `"reset"`, `"hang"`,
    /// `"client disconnected"`, ...
    pub outcome: String,
    /// From arrival until it ended, in milliseconds.
    pub duration_ms: f64,
}

/// Copies headers for the log, hiding secret values.
pub(crate) fn redact(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str();
            let shown = if SECRET_HEADERS.contains(&name) {
                "***".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.to_owned(), shown)
        })
        .collect()
}

/// The bounded ring of recorded requests.
pub(crate) struct RequestLog {
    started: Instant,
    capacity: usize,
    seq: AtomicU64,
    entries: Mutex<VecDeque<Stored>>,
}

/// An entry as kept in the ring: headers and body still raw.
struct Stored {
    entry: RecordedRequest,
    headers: HeaderMap,
    body: Bytes,
}

/// The body as the log shows it: JSON, `null` when empty, a string when not JSON.
fn show_body(body: &Bytes) -> serde_json::Value {
    if body.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

impl RequestLog {
    pub(crate) fn new(capacity: usize, started: Instant) -> Self {
        RequestLog {
            started,
            capacity,
            seq: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Stored>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts an entry for a request that just arrived; it is recorded when the guard ends.
    pub(crate) fn begin(self: &Arc<Self>, draft: Draft) -> LogGuard {
        let now = Instant::now();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let entry = RecordedRequest {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: now.saturating_duration_since(self.started).as_secs_f64() * 1000.0,
            unix_ms,
            route: draft.route,
            method: draft.method,
            version: draft.version,
            connection: draft.connection,
            path: draft.path,
            model: String::new(),
            stream: false,
            headers: BTreeMap::new(),
            body: serde_json::Value::Null,
            fault: None,
            status: None,
            outcome: "client disconnected".to_owned(),
            duration_ms: 0.0,
        };
        LogGuard {
            log: Arc::clone(self),
            arrived: now,
            entry: Some(entry),
            headers: draft.headers,
            body: draft.body,
        }
    }

    fn push(&self, stored: Stored) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(stored);
    }

    /// Every recorded request, in arrival order.
    pub(crate) fn list(&self) -> Vec<RecordedRequest> {
        let raw: Vec<(RecordedRequest, HeaderMap, Bytes)> = self
            .lock()
            .iter()
            .map(|s| (s.entry.clone(), s.headers.clone(), s.body.clone()))
            .collect();
        let mut all: Vec<RecordedRequest> = raw
            .into_iter()
            .map(|(mut entry, headers, body)| {
                entry.headers = redact(&headers);
                entry.body = show_body(&body);
                entry
            })
            .collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    /// Forgets every recorded request; returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut entries = self.lock();
        let n = entries.len();
        entries.clear();
        n
    }
}

/// What is known about a request before its body is understood.
pub(crate) struct Draft {
    pub(crate) route: Route,
    pub(crate) method: String,
    pub(crate) version: String,
    pub(crate) connection: u64,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// An entry being filled in; recorded when dropped, as `"client disconnected"` unless
/// [`LogGuard::finish`] said otherwise first.
pub(crate) struct LogGuard {
    log: Arc<RequestLog>,
    arrived: Instant,
    entry: Option<RecordedRequest>,
    headers: HeaderMap,
    body: Bytes,
}

impl LogGuard {
    fn with(&mut self, f: impl FnOnce(&mut RecordedRequest)) {
        if let Some(entry) = self.entry.as_mut() {
            f(entry);
        }
    }

    /// Notes the model and stream flag once the body is parsed.
    pub(crate) fn set_request(&mut self, model: &str, stream: bool) {
        self.with(|e| {
            e.model = model.to_owned();
            e.stream = stream;
        });
    }

    /// Notes the fault that applies.
    pub(crate) fn set_fault(&mut self, fault: &'static str) {
        self.with(|e| e.fault = Some(fault.to_owned()));
    }

    /// Notes the status sent.
    pub(crate) fn set_status(&mut self, status: u16) {
        self.with(|e| e.status = Some(status));
    }

    /// Records the entry now with this outcome.
    pub(crate) fn finish(&mut self, outcome: impl Into<String>) {
        let outcome = outcome.into();
        self.with(|e| e.outcome = outcome);
        self.record();
    }

    fn record(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.duration_ms = self.arrived.elapsed().as_secs_f64() * 1000.0;
            let headers = std::mem::take(&mut self.headers);
            let body = std::mem::take(&mut self.body);
            self.log.push(Stored {
                entry,
                headers,
                body,
            });
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            route: Route::Openai,
            method: "POST".into(),
            version: "HTTP/1.1".into(),
            connection: 1,
            path: "/v1/chat/completions".into(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"model":"m"}"#),
        }
    }

    #[tokio::test]
    async fn ring_keeps_the_newest_and_dropped_guards_say_disconnected() {
        let log = Arc::new(RequestLog::new(2, Instant::now()));
        for _ in 0..3 {
            log.begin(draft()).finish("ok");
        }
        drop(log.begin(draft()));
        let all = log.list();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(all[1].outcome, "client disconnected");
        assert_eq!(all[1].body, serde_json::json!({"model": "m"}));
        assert_eq!(all[1].version, "HTTP/1.1");
        assert_eq!(log.clear(), 2);
        assert!(log.list().is_empty());
    }

    #[test]
    fn secrets_are_redacted() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer sk-secret".parse().unwrap());
        headers.insert("x-api-key", "sk-ant-secret".parse().unwrap());
        headers.insert("x-goog-api-key", "AIza".parse().unwrap());
        headers.insert("anthropic-version", "2023-06-01".parse().unwrap());
        let shown = redact(&headers);
        assert_eq!(shown["authorization"], "***");
        assert_eq!(shown["x-api-key"], "***");
        assert_eq!(shown["x-goog-api-key"], "***");
        assert_eq!(shown["anthropic-version"], "2023-06-01");
    }
}
