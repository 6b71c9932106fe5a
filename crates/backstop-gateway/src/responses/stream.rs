//! The typed event stream on its way to the client: each event that carries the whole
//! `response` object (`response.created`, `response.in_progress`, `response.completed`, ...) is
//! finished like a non-streamed answer, and the final one is handed over to be stored. Sequence numbers count
//! from 0 over the client's stream: an upstream's own numbers (a native passthrough) are kept
//! as long as they do, and renumbered once they stop (after a broken stream was continued on
//! another target, whose events number from where the gateway's encoder stood), and such a
//! continuation's items are fitted to the ones the client has (see [`super::items`]).

use super::echo::Echo;
use super::items::Items;
use super::store::Stored;
use backstop_protocol::{write_sse, SseDecoder};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// Rewrites the events of one stream.
pub struct Patcher {
    sse: SseDecoder,
    echo: Echo,
    owner: String,
    /// The finished answer to store, once an event carried it.
    record: Option<Stored>,
    /// An event outgrew the decoder: the stream is passed through as it is.
    gave_up: bool,
    /// The sequence number the next event gets.
    sequence: u64,
    /// The output items the client was given.
    items: Items,
}

impl Patcher {
    /// A patcher for the answer to a request described by `echo`, made by `owner`.
    pub fn new(echo: Echo, owner: String) -> Self {
        Self {
            sse: SseDecoder::new(),
            echo,
            owner,
            record: None,
            gave_up: false,
            sequence: 0,
            items: Items::default(),
        }
    }

    /// The client's bytes for the next chunk of the stream. Past an event larger than the SSE
    /// decoder's bound (an answer of many megabytes in `response.completed`), the rest of the
    /// stream goes out as it is, unpatched and unstored.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let events = match self.sse.try_push(chunk) {
            Ok(events) => events,
            Err(error) => {
                if !self.gave_up {
                    tracing::warn!(id = %self.echo.id, "the answer is not stored: {error}");
                    self.gave_up = true;
                }
                return Bytes::copy_from_slice(chunk);
            }
        };
        let mut out = BytesMut::with_capacity(chunk.len() + 64);
        for event in events {
            let kind = event.event.as_deref();
            let parsed = kind
                .is_some()
                .then(|| serde_json::from_str::<Value>(&event.data).ok())
                .flatten()
                .filter(Value::is_object);
            let Some(mut body) = parsed else {
                write_sse(&mut out, kind, &event.data);
                continue;
            };
            let numbered = self.number(&mut body);
            let fitted = kind.is_some_and(|kind| self.items.fit(kind, &mut body));
            let mut changed = numbered || fitted;
            if let Some(response) = body.get_mut("response").filter(|r| r.is_object()) {
                self.echo.finish(response);
                if let Some(record) = self.echo.record(&self.owner, response) {
                    self.record = Some(record);
                }
                changed = true;
            }
            if changed {
                write_sse(&mut out, kind, &body.to_string());
            } else {
                write_sse(&mut out, kind, &event.data);
            }
        }
        out.freeze()
    }

    /// The finished answer to store, once the stream has carried it (taken once).
    pub fn take_record(&mut self) -> Option<Stored> {
        self.record.take()
    }

    /// Gives an event the next sequence number; whether that changed it.
    fn number(&mut self, body: &mut Value) -> bool {
        let Some(number) = body.get_mut("sequence_number") else {
            return false;
        };
        let expected = self.sequence;
        self.sequence += 1;
        if number.as_u64() == Some(expected) {
            return false;
        }
        *number = expected.into();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::echo::prepare;
    use super::super::store::{MemoryStore, ResponseStore};
    use super::*;
    use std::sync::Arc;

    /// What a request with `body` echoes (it continues nothing).
    async fn echo(body: &'static [u8]) -> Echo {
        let store = ResponseStore::Memory(Arc::new(MemoryStore::default()));
        let (_, echo) = prepare(Bytes::from_static(body), &store, "key")
            .await
            .unwrap();
        echo
    }

    #[tokio::test]
    async fn whole_response_events_get_the_gateway_id_and_the_last_is_stored() {
        let echo = echo(br#"{"model":"m","input":"hi","metadata":{"k":"v"}}"#).await;
        let id = echo.id.clone();
        let mut patcher = Patcher::new(echo, "key".into());
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_up\",\"status\":\"in_progress\",\"output\":[]},\"sequence_number\":0}\n\n";
        let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\",\"sequence_number\":1}\n\n";
        let completed = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_up\",\"status\":\"completed\",\"output\":[]},\"sequence_number\":2}\n\n";
        let first = patcher.feed(created.as_bytes());
        let text = String::from_utf8(first.to_vec()).unwrap();
        assert!(text.contains(&id) && !text.contains("resp_up"), "{text}");
        assert!(text.contains("\"metadata\":{\"k\":\"v\"}"), "{text}");
        assert!(
            patcher.take_record().is_none(),
            "not stored before it completes"
        );
        let middle = patcher.feed(delta.as_bytes());
        assert_eq!(&middle[..], delta.as_bytes());
        patcher.feed(completed.as_bytes());
        let stored = patcher.take_record().unwrap();
        assert_eq!(stored.response["id"], id.as_str());
        assert_eq!(stored.owner, "key");
    }

    #[tokio::test]
    async fn sequence_numbers_count_on_across_a_continuation() {
        let echo = echo(br#"{"model":"m","input":"x"}"#).await;
        let mut patcher = Patcher::new(echo, String::new());
        let delta = |n: u64| {
            format!("event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"a\",\"sequence_number\":{n}}}\n\n")
        };
        let upstream = format!("{}{}{}", delta(0), delta(1), delta(2));
        assert_eq!(&patcher.feed(upstream.as_bytes())[..], upstream.as_bytes());
        let continued = format!("{}{}", delta(4), delta(5));
        let text = String::from_utf8(patcher.feed(continued.as_bytes()).to_vec()).unwrap();
        let numbers: Vec<u64> = backstop_protocol::SseDecoder::new()
            .push(text.as_bytes())
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(&e.data).unwrap()["sequence_number"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(numbers, [3, 4]);
    }

    #[tokio::test]
    async fn an_oversized_event_lets_the_rest_through_unchanged() {
        let echo = echo(br#"{"model":"m","input":"x"}"#).await;
        let mut patcher = Patcher::new(echo, String::new());
        let huge = format!(
            "data: {}",
            "x".repeat(backstop_protocol::MAX_EVENT_SIZE + 1)
        );
        assert_eq!(&patcher.feed(huge.as_bytes())[..], huge.as_bytes());
        assert_eq!(&patcher.feed(b"data: tail\n\n")[..], b"data: tail\n\n");
    }
}
