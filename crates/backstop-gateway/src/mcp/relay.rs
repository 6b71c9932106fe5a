//! An MCP server's answer relayed to the client as it comes (an SSE stream or JSON), within
//! `max_response_bytes` and the call's total timeout. The attempt is recorded when the
//! answer ends. When a POSTed request's event stream breaks, stalls or ends before the
//! answer to it, the relay ends it with the answer the failure calls for (a `tools/call`
//! result with `isError`, or a JSON-RPC error), so the client never waits for nothing. A
//! client that goes away drops the relay and its attempt unrecorded, as a cancellation.

use super::message::{answers, RpcRequest};
use crate::metrics::Metrics;
use backstop_core::{Attempt, FailureClass};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::sync::Arc;
use tokio::time::Instant;

/// The most bytes of one SSE event the relay scans for the answer (it relays longer ones
/// unscanned).
const MAX_EVENT: usize = 1 << 20;

/// Where the relay of one answer stands.
pub struct Relay {
    response: Option<reqwest::Response>,
    attempt: Option<Attempt>,
    metrics: Arc<Metrics>,
    label: String,
    server: String,
    /// The request whose answer is awaited, when the answer is an event stream.
    awaited: Option<RpcRequest>,
    /// A stream of the server's own messages (`GET`): reaching the deadline ends it, and is
    /// not the server's failure.
    open_ended: bool,
    answered: bool,
    events: EventScanner,
    sent: u64,
    limit: u64,
    deadline: Instant,
}

impl Relay {
    /// A relay of `response`, the answer of `attempt` to `request` (`None` for a `GET` stream
    /// or a message that is not a request).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        response: reqwest::Response,
        attempt: Attempt,
        metrics: Arc<Metrics>,
        label: String,
        server: String,
        request: Option<RpcRequest>,
        limit: u64,
        deadline: Instant,
    ) -> Self {
        let sse = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        Self {
            response: Some(response),
            attempt: Some(attempt),
            metrics,
            label,
            server,
            open_ended: request.is_none() && sse,
            awaited: request.filter(|_| sse),
            answered: false,
            events: EventScanner::default(),
            sent: 0,
            limit,
            deadline,
        }
    }

    /// The answer as a stream of body chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut relay| async move {
            let chunk = relay.next().await?;
            Some((Ok(chunk), relay))
        })
    }

    async fn next(&mut self) -> Option<Bytes> {
        let response = self.response.as_mut()?;
        let outcome = tokio::time::timeout_at(self.deadline, response.chunk()).await;
        let failure = match outcome {
            Ok(Ok(Some(chunk))) => {
                self.sent += chunk.len() as u64;
                if self.sent > self.limit {
                    Some((
                        FailureClass::Permanent,
                        "the answer is longer than max_response_bytes".to_string(),
                    ))
                } else {
                    if let Some(request) = &self.awaited {
                        self.answered |= self.events.push(&chunk, &request.id);
                    }
                    return Some(chunk);
                }
            }
            Ok(Ok(None)) if self.awaited.is_none() || self.answered => None,
            Ok(Ok(None)) => Some((
                FailureClass::Transient,
                "the stream ended before the answer".to_string(),
            )),
            Ok(Err(error)) => Some((
                FailureClass::Transient,
                format!("the stream broke off: {}", error.without_url()),
            )),
            Err(_) if self.open_ended => {
                // The stream lived its `timeouts.total`: the client opens another one.
                self.response = None;
                self.attempt = None;
                return None;
            }
            Err(_) => Some((
                FailureClass::Unavailable,
                "no answer within timeouts.total".to_string(),
            )),
        };
        self.response = None;
        let class = failure.as_ref().map(|(class, _)| *class);
        if let Some(attempt) = self.attempt.take() {
            attempt.finish(class);
        }
        crate::tools::record_call(&self.metrics, &self.label, class);
        let (_, reason) = failure?;
        tracing::warn!(tool = %self.label, "MCP answer failed: {reason}");
        let request = self.awaited.as_ref().filter(|_| !self.answered)?;
        let message = request.failure(&self.server, &reason);
        Some(Bytes::from(format!("event: message\ndata: {message}\n\n")))
    }
}

/// Splits an event stream into events and looks for the answer to one request.
#[derive(Default)]
struct EventScanner {
    line: BytesMut,
    data: String,
    overflow: bool,
}

impl EventScanner {
    /// Takes `chunk`; true when an event in it answers `id`.
    fn push(&mut self, chunk: &[u8], id: &serde_json::Value) -> bool {
        let mut found = false;
        for &byte in chunk {
            if byte != b'\n' {
                if self.line.len() < MAX_EVENT {
                    self.line.extend_from_slice(&[byte]);
                } else {
                    self.overflow = true;
                }
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line.is_empty() {
                let data = std::mem::take(&mut self.data);
                if !std::mem::take(&mut self.overflow) {
                    found |= serde_json::from_str(&data).is_ok_and(|m| answers(&m, id));
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.data.len() + value.len() < MAX_EVENT {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(&String::from_utf8_lossy(value));
                } else {
                    self.overflow = true;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_answer_across_chunks() {
        let mut scanner = EventScanner::default();
        let id = json!(2);
        assert!(!scanner.push(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n", &id));
        assert!(!scanner.push(
            b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,",
            &id
        ));
        assert!(scanner.push(b"\"result\":{}}\r\n\r\n", &id));
        assert!(!scanner.push(b"data: {\"id\":3,\"result\":{}}\n\n", &id));
    }
}
