//! Stream translation: upstream SSE events -> canonical [`StreamEvent`]s -> client SSE bytes.
//!
//! A translated stream runs through one [`StreamDecoder`] (the upstream's protocol) and one
//! [`StreamEncoder`] (the client's). The canonical events in between carry no indexes for text
//! and no protocol framing, so each encoder owns its protocol's bookkeeping: OpenAI's constant
//! chunk id and final usage chunk, Anthropic's content-block indexes and the `message_delta` that
//! needs both the stop reason and the output token count. Encoders accept `Finish`, `Usage` and
//! `Done` in any order and always write a well-formed stream.

use bytes::BytesMut;

use crate::canonical::{ChatResponse, StreamEvent};
use crate::sse::SseEvent;
use crate::{anthropic, gemini, openai, responses, Protocol, ProtocolError};

#[derive(Debug)]
enum DecoderInner {
    OpenAi(openai::stream::Decoder),
    Anthropic(anthropic::stream::Decoder),
    Gemini(gemini::stream::Decoder),
    Responses(responses::Decoder),
}

/// Turns an upstream's SSE events into canonical stream events.
#[derive(Debug)]
pub struct StreamDecoder {
    inner: DecoderInner,
}

impl StreamDecoder {
    /// A decoder for a stream in protocol `p`.
    pub fn new(p: Protocol) -> Self {
        let inner = match p {
            Protocol::OpenAi => DecoderInner::OpenAi(Default::default()),
            Protocol::Anthropic => DecoderInner::Anthropic(Default::default()),
            Protocol::Gemini => DecoderInner::Gemini(Default::default()),
            Protocol::Responses => DecoderInner::Responses(Default::default()),
        };
        Self { inner }
    }

    /// Decodes one event. A malformed event gives an error and leaves the decoder usable; an
    /// error reported by the upstream inside the stream gives [`ProtocolError::Upstream`].
    pub fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProtocolError> {
        let mut out = Vec::new();
        self.decode_into(ev, &mut out)?;
        Ok(out)
    }

    /// [`decode`](Self::decode), appending the events to `out` (a buffer a stream reuses for
    /// each of its events); on an error `out` is left as it was.
    pub fn decode_into(
        &mut self,
        ev: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProtocolError> {
        let before = out.len();
        let decoded = match &mut self.inner {
            DecoderInner::OpenAi(d) => d.decode(ev, out),
            DecoderInner::Anthropic(d) => d.decode(ev, out),
            DecoderInner::Gemini(d) => d.decode(ev, out),
            DecoderInner::Responses(d) => d.decode(ev).map(|events| out.extend(events)),
        };
        if decoded.is_err() {
            out.truncate(before);
        }
        decoded
    }

    /// Whether the protocol's terminator was seen (`[DONE]`, `message_stop`, or Gemini's final
    /// chunk with a `finishReason`). A stream that ends without it was cut short.
    pub fn saw_terminator(&self) -> bool {
        match &self.inner {
            DecoderInner::OpenAi(d) => d.terminated,
            DecoderInner::Anthropic(d) => d.terminated,
            DecoderInner::Gemini(d) => d.terminated,
            DecoderInner::Responses(d) => d.terminated,
        }
    }

    /// Whether a finish reason was seen.
    pub fn saw_finish(&self) -> bool {
        match &self.inner {
            DecoderInner::OpenAi(d) => d.finished,
            DecoderInner::Anthropic(d) => d.finished,
            DecoderInner::Gemini(d) => d.finished,
            DecoderInner::Responses(d) => d.finished,
        }
    }
}

#[derive(Debug)]
enum EncoderInner {
    OpenAi(openai::stream::Encoder),
    Anthropic(anthropic::stream::Encoder),
    Gemini(gemini::stream::Encoder),
    /// Boxed: it keeps the items of the whole answer for `response.completed`.
    Responses(Box<responses::stream::Encoder>),
}

/// Writes canonical stream events as SSE in a client's protocol.
#[derive(Debug)]
pub struct StreamEncoder {
    inner: EncoderInner,
}

impl StreamEncoder {
    /// The whole `response` as a stream in protocol `p` (see [`ChatResponse::to_events`]): the
    /// answer of a stream whose upstream call was not one.
    pub fn encode_whole(p: Protocol, include_usage: bool, response: &ChatResponse) -> BytesMut {
        let mut encoder = Self::new(p, include_usage);
        let mut out = BytesMut::new();
        for event in response.to_events() {
            encoder.encode(&event, &mut out);
        }
        out
    }

    /// An encoder for protocol `p`. `include_usage` (OpenAI only) adds the final usage chunk;
    /// Anthropic and Gemini streams always carry usage.
    pub fn new(p: Protocol, include_usage: bool) -> Self {
        let inner = match p {
            Protocol::OpenAi => EncoderInner::OpenAi(openai::stream::Encoder::new(include_usage)),
            Protocol::Anthropic => EncoderInner::Anthropic(Default::default()),
            Protocol::Gemini => EncoderInner::Gemini(Default::default()),
            Protocol::Responses => EncoderInner::Responses(Box::default()),
        };
        Self { inner }
    }

    /// Appends the SSE bytes for one event (possibly none, when the event is buffered).
    /// Events after `Done` or an error are ignored.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match &mut self.inner {
            EncoderInner::OpenAi(e) => e.encode(ev, out),
            EncoderInner::Anthropic(e) => e.encode(ev, out),
            EncoderInner::Gemini(e) => e.encode(ev, out),
            EncoderInner::Responses(e) => e.encode(ev, out),
        }
    }

    /// Ends the stream with an error in the client's protocol: OpenAI gets a `data:
    /// {"error":{...}}` chunk (no finish reason, no `[DONE]`), Anthropic an `event: error`.
    /// `kind` is the client protocol's error type (e.g. `overloaded_error`).
    pub fn encode_error(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        match &mut self.inner {
            EncoderInner::OpenAi(e) => e.encode_error(kind, message, out),
            EncoderInner::Anthropic(e) => e.encode_error(kind, message, out),
            EncoderInner::Gemini(e) => e.encode_error(kind, message, out),
            EncoderInner::Responses(e) => e.encode_error(kind, message, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ContentPart, FinishReason, Usage};
    use crate::{ResponseCollector, SseDecoder};

    #[test]
    fn a_whole_response_replayed_as_a_stream_decodes_to_the_same_answer() {
        let response = ChatResponse {
            id: "r1".into(),
            model: "m".into(),
            content: vec![
                ContentPart::Text("Let me look.".into()),
                ContentPart::ToolCall {
                    id: "call_1".into(),
                    name: "search".into(),
                    arguments: r#"{"q":"rust"}"#.into(),
                },
            ],
            finish: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 7,
                output_tokens: 3,
                ..Usage::default()
            },
        };
        for protocol in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Responses] {
            let bytes = StreamEncoder::encode_whole(protocol, true, &response);
            let mut decoder = StreamDecoder::new(protocol);
            let mut collector = ResponseCollector::new();
            for event in SseDecoder::new().push(&bytes) {
                for canonical in decoder.decode(&event).unwrap() {
                    collector.push(&canonical);
                }
            }
            assert!(collector.is_done(), "{protocol:?}");
            let replayed = collector.finish();
            assert_eq!(replayed.content, response.content, "{protocol:?}");
            assert_eq!(replayed.finish, response.finish, "{protocol:?}");
            assert_eq!(replayed.usage.output_tokens, 3, "{protocol:?}");
        }
    }
}
