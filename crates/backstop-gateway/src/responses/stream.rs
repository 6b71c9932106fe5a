//! The typed event stream on its way to the client: each event that carries the whole
//! `response` object (`response.created`, `response.in_progress`, `response.completed`, ...) is
//! finished like a non-streamed answer, and the final one is stored.

use super::echo::Echo;
use super::store::{Limits, ResponseStore};
use backstop_protocol::{write_sse, SseDecoder};
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use std::sync::Arc;

/// Rewrites the events of one stream.
pub struct Patcher {
    sse: SseDecoder,
    echo: Echo,
    owner: String,
    store: Arc<dyn ResponseStore>,
    limits: Limits,
}

impl Patcher {
    /// A patcher for the answer to a request described by `echo`, made by `owner`.
    pub fn new(echo: Echo, owner: String, store: Arc<dyn ResponseStore>, limits: Limits) -> Self {
        Self {
            sse: SseDecoder::new(),
            echo,
            owner,
            store,
            limits,
        }
    }

    /// The client's bytes for the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(chunk.len() + 64);
        for event in self.sse.push(chunk) {
            let kind = event.event.as_deref();
            let whole = kind.is_some_and(|k| k.starts_with("response."));
            let patched = whole
                .then(|| serde_json::from_str::<Value>(&event.data).ok())
                .flatten()
                .filter(|v| v.get("response").is_some_and(Value::is_object));
            let Some(mut body) = patched else {
                write_sse(&mut out, kind, &event.data);
                continue;
            };
            if let Some(response) = body.get_mut("response") {
                self.echo.finish(response);
                if let Some(record) = self.echo.record(&self.owner, response) {
                    self.store.put(&self.echo.id, record, self.limits);
                }
            }
            write_sse(&mut out, kind, &body.to_string());
        }
        out.freeze()
    }
}
