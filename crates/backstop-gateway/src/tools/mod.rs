//! Tool APIs and MCP servers behind the gateway: `ANY /tools/NAME/{path}` and
//! `POST/GET/DELETE /mcp/NAME`. A call goes through the same engine as a model call (one
//! breaker per tool, retries with backoff and `Retry-After`, timeouts, fallbacks, the shared
//! retry budget), with the same classification of statuses and transport errors.

mod call;
mod health;
mod proxy;

pub use call::{
    record as record_call, Outgoing, Reply, ReplyBody, ToolAttempts, ToolFailure, ToolRoute,
};
pub use health::{ToolHealth, ToolHealthMap};
pub use proxy::{candidate, failure_text, idempotent, router};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

/// Reads `response`'s body, at most `limit` bytes: a longer one is an error.
pub async fn read_bounded(mut response: reqwest::Response, limit: u64) -> Result<Bytes, String> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("the body broke off: {}", error.without_url()))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(format!("the body is longer than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Headers that belong to one connection, never forwarded either way.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// `headers` without the hop-by-hop ones.
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out
}

/// The client's headers to send on to a tool: end-to-end ones (`x-request-id` included, to
/// follow a call across both), without the gateway's own credential when client keys are
/// configured (that key is for the gateway, not the tool).
pub fn forwarded(headers: &HeaderMap, gateway_keys: bool) -> HeaderMap {
    let mut out = end_to_end(headers);
    if gateway_keys {
        out.remove(http::header::AUTHORIZATION);
        out.remove("x-api-key");
    }
    out
}

/// When a call that starts now must end: after `total`, or at the end of a shutdown's grace
/// when that comes first.
pub fn call_deadline(
    gateway: &crate::pipeline::Gateway,
    total: std::time::Duration,
) -> tokio::time::Instant {
    let own = tokio::time::Instant::now() + total;
    gateway.drain_deadline().map_or(own, |drain| drain.min(own))
}
