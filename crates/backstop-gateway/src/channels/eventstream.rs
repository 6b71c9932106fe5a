//! Bedrock's InvokeModelWithResponseStream answer, in the AWS event-stream binary framing,
//! turned into the Anthropic server-sent events every other Claude channel sends.
//!
//! Each `chunk` event carries `{"bytes": BASE64}`, the base64 of one Anthropic stream event;
//! it becomes `event: TYPE` / `data: JSON`. An exception event (`:message-type: exception`,
//! a throttling or model error after the 200) becomes Anthropic's `error` event, which the
//! relay treats as a broken stream like any other provider's. A frame that does not decode
//! (a bad checksum, a length past the limit) ends the stream with an `error` event too.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};

/// The most bytes buffered while waiting for one frame to complete.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Decoding state: the bytes not yet framed, and whether the stream has ended.
struct Decoder {
    decoder: MessageFrameDecoder,
    buffer: BytesMut,
    done: bool,
}

/// The SSE form of an event-stream body.
pub fn to_sse<S, E>(body: S) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    let state = Decoder {
        decoder: MessageFrameDecoder::new(),
        buffer: BytesMut::new(),
        done: false,
    };
    stream::unfold((body, state), |(mut body, mut state)| async move {
        loop {
            if state.done {
                return None;
            }
            match state.next_frames() {
                Ok(Some(sse)) => return Some((Ok(sse), (body, state))),
                Ok(None) => {}
                Err(message) => {
                    state.done = true;
                    let event = error_event("api_error", &message);
                    return Some((Ok(event), (body, state)));
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => state.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    state.done = true;
                    return Some((Err(error), (body, state)));
                }
                None => return None,
            }
        }
    })
}

impl Decoder {
    /// The SSE text of every complete frame in the buffer, `None` when there is none yet.
    fn next_frames(&mut self) -> Result<Option<Bytes>, String> {
        let mut out = Vec::new();
        loop {
            match self.decoder.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Complete(message)) => {
                    let (sse, last) = to_event(&message);
                    out.extend_from_slice(&sse);
                    if last {
                        self.done = true;
                        break;
                    }
                }
                Ok(DecodedFrame::Incomplete) => break,
                Err(error) => {
                    return Err(format!(
                        "malformed event-stream frame from Bedrock: {error}"
                    ))
                }
            }
        }
        if self.buffer.remaining() > MAX_FRAME {
            return Err(format!(
                "an event-stream frame from Bedrock passed {MAX_FRAME} bytes"
            ));
        }
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

/// The string value of header `name` of `message`.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(value) => Some(value.as_str()),
            _ => None,
        })
}

/// One frame as SSE, and whether it ends the stream (an exception does).
fn to_event(message: &Message) -> (Vec<u8>, bool) {
    match header(message, ":message-type") {
        Some("event") => match chunk_event(message.payload()) {
            Some(sse) => (sse, false),
            None => (Vec::new(), false),
        },
        Some("exception") | Some("error") => {
            let name = header(message, ":exception-type")
                .or_else(|| header(message, ":error-code"))
                .unwrap_or("unknownException");
            let text = serde_json::from_slice::<Value>(message.payload())
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            let kind = exception_type(name);
            (error_event(kind, &format!("{name}: {text}")).to_vec(), true)
        }
        _ => (Vec::new(), false),
    }
}

/// A `chunk` payload's Anthropic event as `event: TYPE\ndata: JSON\n\n`; `None` when the
/// payload is not one (the relay never sees a half event).
fn chunk_event(payload: &[u8]) -> Option<Vec<u8>> {
    let chunk: Value = serde_json::from_slice(payload).ok()?;
    let encoded = chunk.get("bytes")?.as_str()?;
    let data = aws_smithy_types::base64::decode(encoded).ok()?;
    let event: Value = serde_json::from_slice(&data).ok()?;
    let name = event.get("type")?.as_str()?.to_string();
    let mut sse = format!("event: {name}\ndata: ").into_bytes();
    sse.extend_from_slice(&data);
    sse.extend_from_slice(b"\n\n");
    Some(sse)
}

/// The Anthropic error type for a Bedrock stream exception, so the relay classifies it.
fn exception_type(name: &str) -> &'static str {
    match name {
        "throttlingException" => "rate_limit_error",
        "serviceUnavailableException" | "modelNotReadyException" => "overloaded_error",
        "validationException" => "invalid_request_error",
        _ => "api_error",
    }
}

/// Anthropic's `error` event with `kind` and `message`.
fn error_event(kind: &str, message: &str) -> Bytes {
    let data = json!({ "type": "error", "error": { "type": kind, "message": message } });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        write_message_to(message, &mut out).unwrap();
        out
    }

    fn chunk(event: &Value) -> Vec<u8> {
        let payload = json!({ "bytes": aws_smithy_types::base64::encode(event.to_string()) });
        frame(
            &Message::new(payload.to_string())
                .add_header(Header::new(
                    ":message-type",
                    HeaderValue::String("event".into()),
                ))
                .add_header(Header::new(
                    ":event-type",
                    HeaderValue::String("chunk".into()),
                )),
        )
    }

    async fn decode(pieces: Vec<Vec<u8>>) -> String {
        let body = stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<_, std::convert::Infallible>(Bytes::from(p))),
        );
        let out: Vec<_> = to_sse(body).collect().await;
        out.into_iter()
            .map(|chunk| String::from_utf8(chunk.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn chunks_become_anthropic_events_even_split_across_reads() {
        let mut bytes = chunk(&json!({"type": "message_start", "message": {}}));
        bytes.extend(chunk(&json!({"type": "message_stop"})));
        let pieces: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
        assert_eq!(
            decode(pieces).await,
            "event: message_start\ndata: {\"message\":{},\"type\":\"message_start\"}\n\n\
             event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[tokio::test]
    async fn an_exception_ends_the_stream_as_an_error_event() {
        let exception = frame(
            &Message::new(r#"{"message":"Too many requests"}"#)
                .add_header(Header::new(
                    ":message-type",
                    HeaderValue::String("exception".into()),
                ))
                .add_header(Header::new(
                    ":exception-type",
                    HeaderValue::String("throttlingException".into()),
                )),
        );
        let mut bytes = chunk(&json!({"type": "ping"}));
        bytes.extend(exception);
        bytes.extend(chunk(&json!({"type": "ping"})));
        let text = decode(vec![bytes]).await;
        assert!(text.starts_with("event: ping\n"), "{text}");
        assert!(text.ends_with(
            "event: error\ndata: {\"error\":{\"message\":\"throttlingException: Too many requests\",\"type\":\"rate_limit_error\"},\"type\":\"error\"}\n\n"
        ), "{text}");
        assert_eq!(text.matches("event: ping").count(), 1);
    }

    #[tokio::test]
    async fn a_corrupt_frame_ends_the_stream_as_an_error_event() {
        let mut bytes = chunk(&json!({"type": "ping"}));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let text = decode(vec![bytes]).await;
        assert!(text.starts_with("event: error\n"), "{text}");
        assert!(text.contains("malformed event-stream frame"), "{text}");
    }
}
