//! What the client receives from a relayed stream: events forwarded as they are
//! (same protocol) or re-encoded (translation, or after a splice), tool calls held
//! back until whole, and the bookkeeping a continuation needs (the text delivered,
//! the stream's id) to splice another target's answer into the same stream. The text
//! kept for a continuation is bounded (`max_rescue_text`): past the bound it is dropped
//! and the stream can no longer be continued.

use backstop_protocol::{
    write_sse, Protocol, ProviderKind, SseEvent, StreamEncoder, StreamEvent, Terminator,
};
use bytes::{Bytes, BytesMut};

/// How events reach the client.
enum Mode {
    /// Same protocol: each event's own bytes are forwarded, and the upstream's terminator
    /// (if its streams have one) ends the stream when the upstream did not send it.
    Passthrough(Option<Terminator>),
    /// Canonical events re-encoded for the caller.
    Encode(StreamEncoder),
}

/// The client side of one relayed stream.
pub struct Output {
    mode: Mode,
    caller: Protocol,
    client_wants_usage: bool,
    out: BytesMut,
    /// Output of a tool call still streaming: released when the call is whole.
    held: Option<BytesMut>,
    start: Option<(String, String)>,
    /// The text delivered so far, while it fits in `max_text`.
    served_text: String,
    max_text: usize,
    /// The delivered text outgrew `max_text` and was dropped.
    text_overflow: bool,
    delivered_deltas: u64,
    tool_calls: u32,
    /// After a splice: the continuation's own start is dropped.
    spliced: bool,
    /// After a splice whose prefill lost trailing whitespace: trim the continuation's leading whitespace.
    trim_leading: bool,
    /// Tokens of the answer delivered before the latest splice, and the original prompt's.
    earlier_output: u64,
    original_input: Option<u64>,
    /// After a restart: the new answer, held until it is known to begin with the text sent.
    restart: Option<Restart>,
}

/// A restarted answer being compared with the text already delivered.
struct Restart {
    /// The delivered text, without trailing whitespace.
    expected: String,
    /// The restarted answer's text so far.
    seen: String,
    state: Matching,
    /// The state has changed since the relay last asked.
    news: bool,
}

/// Where the comparison of a restarted answer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matching {
    /// Not enough of the new answer yet: nothing of it has been sent.
    Pending,
    /// It begins with the delivered text: the rest is relayed as a continuation.
    Matched,
    /// It does not: none of it is sent.
    Diverged,
}

impl Output {
    /// Output in `caller`'s protocol for an upstream speaking `upstream`, keeping at most
    /// `max_text` bytes of delivered text to continue from.
    pub fn new(
        caller: Protocol,
        upstream: Protocol,
        client_wants_usage: bool,
        max_text: usize,
    ) -> Self {
        let mode = if caller == upstream {
            Mode::Passthrough(ProviderKind::native_spec(upstream).stream_terminator)
        } else {
            Mode::Encode(StreamEncoder::new(caller, client_wants_usage))
        };
        Self {
            mode,
            caller,
            client_wants_usage,
            out: BytesMut::new(),
            held: None,
            start: None,
            served_text: String::new(),
            max_text,
            text_overflow: false,
            delivered_deltas: 0,
            tool_calls: 0,
            spliced: false,
            trim_leading: false,
            earlier_output: 0,
            original_input: None,
            restart: None,
        }
    }

    /// Bytes ready for the client.
    pub fn ready(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes ready for the client.
    pub fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Whole tool calls already delivered.
    pub fn tool_calls(&self) -> u32 {
        self.tool_calls
    }

    /// Writes one upstream event (`raw`) that decoded to `events` (which a continuation's adjustments may change).
    pub fn write(&mut self, raw: &SseEvent, events: &mut Vec<StreamEvent>) {
        if self.spliced {
            self.adapt_continuation(events);
            if events.is_empty() {
                return;
            }
        }
        for event in events.iter() {
            match event {
                StreamEvent::Start { id, model } if self.start.is_none() => {
                    self.start = Some((id.clone(), model.clone()));
                }
                StreamEvent::Usage(usage)
                    if self.original_input.is_none() && usage.input_tokens > 0 =>
                {
                    self.original_input = Some(usage.input_tokens);
                }
                _ => {}
            }
        }
        let closes_call = events.iter().any(|e| {
            matches!(
                e,
                StreamEvent::TextDelta { .. }
                    | StreamEvent::Finish { .. }
                    | StreamEvent::Done
                    | StreamEvent::ToolCallStart { .. }
            )
        });
        if closes_call {
            self.release_held();
        }
        let opens_call = events
            .iter()
            .any(|e| matches!(e, StreamEvent::ToolCallStart { .. }));
        let delivered = self.held.is_none() && !opens_call;
        let mut opened = BytesMut::new();
        let sink = match (&mut self.held, opens_call) {
            (Some(held), _) => held,
            (None, true) => &mut opened,
            (None, false) => &mut self.out,
        };
        match &mut self.mode {
            Mode::Passthrough(_) => {
                let usage_only =
                    !events.is_empty() && events.iter().all(|e| matches!(e, StreamEvent::Usage(_)));
                if !usage_only || self.client_wants_usage {
                    write_sse(sink, raw.event.as_deref(), &raw.data);
                }
            }
            Mode::Encode(encoder) => {
                for event in events.iter() {
                    encoder.encode(event, sink);
                }
            }
        }
        if opens_call && self.held.is_none() {
            self.held = Some(opened);
        }
        let ends_answer = events
            .iter()
            .any(|e| matches!(e, StreamEvent::Finish { .. } | StreamEvent::Done));
        if opens_call && ends_answer {
            self.release_held();
        }
        if delivered {
            for event in events.iter() {
                if let StreamEvent::TextDelta { text } = event {
                    self.keep_text(text);
                    self.delivered_deltas += 1;
                }
            }
        }
    }

    /// Keeps delivered text for a continuation, until it outgrows `max_text`.
    fn keep_text(&mut self, text: &str) {
        if self.text_overflow {
            return;
        }
        if self.served_text.len() + text.len() > self.max_text {
            self.text_overflow = true;
            self.served_text = String::new();
            return;
        }
        self.served_text.push_str(text);
    }

    fn release_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.out.extend_from_slice(&held);
            self.tool_calls += 1;
        }
    }

    /// The continuation's events, fitted to the stream already delivered: no second
    /// start, no whitespace doubled at the seam, usage of the whole answer.
    fn adapt_continuation(&mut self, events: &mut Vec<StreamEvent>) {
        events.retain(|e| !matches!(e, StreamEvent::Start { .. }));
        if self
            .restart
            .as_ref()
            .is_some_and(|r| r.state == Matching::Pending)
        {
            *events = self.match_restart(std::mem::take(events));
        }
        for event in events.iter_mut() {
            match event {
                StreamEvent::TextDelta { text } if self.trim_leading => {
                    let trimmed = text.trim_start();
                    if !trimmed.is_empty() {
                        self.trim_leading = false;
                    }
                    *text = trimmed.to_string();
                }
                StreamEvent::Usage(usage) => {
                    usage.output_tokens += self.earlier_output;
                    usage.input_tokens = self.original_input.unwrap_or(usage.input_tokens);
                }
                _ => {}
            }
        }
        events.retain(|e| !matches!(e, StreamEvent::TextDelta { text } if text.is_empty()));
    }

    /// The text to continue from, without trailing whitespace (which providers refuse in a
    /// prefill), and whether any was cut; `None` once the text outgrew `max_text`.
    pub fn prefill(&self) -> Option<(&str, bool)> {
        if self.text_overflow {
            return None;
        }
        let trimmed = self.served_text.trim_end();
        Some((trimmed, trimmed.len() != self.served_text.len()))
    }

    /// Output tokens delivered so far, as far as they are known.
    pub fn delivered_tokens(&self) -> u64 {
        self.delivered_deltas
    }

    /// Prepares to splice another target's answer into this stream: a tool call still
    /// streaming is dropped (the continuation sends it whole), and events are re-encoded
    /// from now on, by an encoder that has seen what the client has.
    pub fn splice(&mut self, trimmed_whitespace: bool, earlier_output: u64) {
        self.held = None;
        if let Mode::Passthrough(_) = self.mode {
            self.mode = Mode::Encode(self.caught_up_encoder(self.client_wants_usage));
        }
        self.spliced = true;
        self.trim_leading = trimmed_whitespace;
        self.earlier_output = earlier_output;
    }

    /// An encoder for the caller that has seen what the client has of a relayed stream (its
    /// start and the text delivered), so that what it writes next goes on from there.
    fn caught_up_encoder(&self, client_wants_usage: bool) -> StreamEncoder {
        let mut encoder = StreamEncoder::new(self.caller, client_wants_usage);
        let mut seen = BytesMut::new();
        let (id, model) = self.start.clone().unwrap_or_default();
        encoder.encode(&StreamEvent::Start { id, model }, &mut seen);
        if !self.served_text.is_empty() {
            encoder.encode(
                &StreamEvent::TextDelta {
                    text: self.served_text.clone(),
                },
                &mut seen,
            );
        }
        encoder
    }

    /// Prepares to splice a restarted answer (the request sent again without a prefill): its
    /// text is held and compared with the text already delivered, and only what comes after
    /// that is relayed, once the two are known to agree (see [`Output::restart_news`]).
    pub fn splice_restart(&mut self) {
        let (expected, trimmed) = match self.prefill() {
            Some((text, trimmed)) => (text.to_string(), trimmed),
            None => (String::new(), false),
        };
        self.splice(trimmed, 0);
        self.restart = Some(Restart {
            expected,
            seen: String::new(),
            state: Matching::Pending,
            news: false,
        });
    }

    /// How the comparison of a restarted answer stands, when it has changed since the last call.
    pub fn restart_news(&mut self) -> Option<Matching> {
        let restart = self.restart.as_mut()?;
        std::mem::take(&mut restart.news).then_some(restart.state)
    }

    /// The restarted answer's events while it is compared: its text is held until it covers
    /// the delivered text; what follows that is let through. Any tool call, or an end before
    /// the delivered text is covered, is a divergence.
    fn match_restart(&mut self, events: Vec<StreamEvent>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for event in events {
            let Some(restart) = self
                .restart
                .as_mut()
                .filter(|r| r.state == Matching::Pending)
            else {
                out.push(event);
                continue;
            };
            match event {
                StreamEvent::TextDelta { text } => {
                    restart.seen.push_str(&text);
                    let n = restart.seen.len().min(restart.expected.len());
                    if restart.seen.as_bytes()[..n] != restart.expected.as_bytes()[..n] {
                        restart.settle(Matching::Diverged);
                        return Vec::new();
                    }
                    if restart.seen.len() >= restart.expected.len() {
                        let rest = restart.seen.split_off(restart.expected.len());
                        restart.settle(Matching::Matched);
                        if !rest.is_empty() {
                            out.push(StreamEvent::TextDelta { text: rest });
                        }
                    }
                }
                StreamEvent::Usage(_) => out.push(event),
                StreamEvent::Start { .. } => {}
                StreamEvent::ToolCallStart { .. }
                | StreamEvent::ToolCallDelta { .. }
                | StreamEvent::Finish { .. }
                | StreamEvent::Done => {
                    restart.settle(Matching::Diverged);
                    return Vec::new();
                }
            }
        }
        out
    }

    /// The answer has its finish reason but the upstream sent no terminator: send the caller's.
    pub fn terminate(&mut self) {
        self.release_held();
        match &mut self.mode {
            Mode::Passthrough(Some(terminator)) => {
                write_sse(&mut self.out, terminator.event, terminator.data);
            }
            Mode::Passthrough(None) => {}
            Mode::Encode(encoder) => encoder.encode(&StreamEvent::Done, &mut self.out),
        }
    }

    /// Ends the stream with an error event in the caller's protocol (never a finish).
    pub fn fail(&mut self, message: &str) {
        self.held = None;
        match &mut self.mode {
            Mode::Encode(encoder) => encoder.encode_error("api_error", message, &mut self.out),
            Mode::Passthrough(_) => {
                self.caught_up_encoder(false)
                    .encode_error("api_error", message, &mut self.out)
            }
        }
    }
}

impl Restart {
    fn settle(&mut self, state: Matching) {
        self.state = state;
        self.news = true;
        self.seen = String::new();
        self.expected = String::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_protocol::FinishReason;

    fn raw() -> SseEvent {
        SseEvent {
            event: None,
            data: "{}".into(),
        }
    }

    fn call(index: u32) -> Vec<StreamEvent> {
        vec![
            StreamEvent::ToolCallStart {
                index,
                id: format!("call_{index}"),
                name: "f".into(),
            },
            StreamEvent::ToolCallDelta {
                index,
                arguments: "{\"a\":".into(),
            },
        ]
    }

    #[test]
    fn a_tool_call_is_held_until_whole() {
        let mut output = Output::new(Protocol::OpenAi, Protocol::Anthropic, false, 1024);
        output.write(
            &raw(),
            &mut vec![StreamEvent::Start {
                id: "s".into(),
                model: "m".into(),
            }],
        );
        let before = output.take();
        output.write(&raw(), &mut call(0));
        assert_eq!(output.ready(), 0, "held while streaming");
        output.write(
            &raw(),
            &mut vec![StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "1}".into(),
            }],
        );
        assert_eq!(output.ready(), 0);
        output.write(
            &raw(),
            &mut vec![StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            }],
        );
        assert!(output.ready() > 0);
        assert_eq!(output.tool_calls(), 1);
        assert!(!before.is_empty());
    }

    #[test]
    fn a_whole_tool_call_in_one_event_is_delivered() {
        let mut output = Output::new(Protocol::OpenAi, Protocol::Gemini, false, 1024);
        let mut events = call(0);
        events.push(StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
        });
        events.push(StreamEvent::Done);
        output.write(&raw(), &mut events);
        assert!(output.ready() > 0);
        assert_eq!(output.tool_calls(), 1);
    }

    #[test]
    fn a_held_call_is_dropped_by_a_splice() {
        let mut output = Output::new(Protocol::OpenAi, Protocol::OpenAi, false, 1024);
        output.write(
            &raw(),
            &mut vec![StreamEvent::TextDelta {
                text: "Hello ".into(),
            }],
        );
        output.take();
        output.write(&raw(), &mut call(0));
        assert_eq!(output.prefill(), Some(("Hello", true)));
        output.splice(true, 1);
        output.write(
            &raw(),
            &mut vec![
                StreamEvent::Start {
                    id: "other".into(),
                    model: "x".into(),
                },
                StreamEvent::TextDelta {
                    text: " world".into(),
                },
            ],
        );
        let text = String::from_utf8(output.take().to_vec()).unwrap();
        assert!(
            text.contains("\"world\"") && !text.contains("other") && !text.contains("call_0"),
            "{text}"
        );
    }

    #[test]
    fn text_past_max_rescue_text_is_dropped_and_not_offered_as_prefill() {
        let mut output = Output::new(Protocol::OpenAi, Protocol::OpenAi, false, 8);
        let delta = |text: &str| {
            vec![StreamEvent::TextDelta {
                text: text.to_string(),
            }]
        };
        output.write(&raw(), &mut delta("1234"));
        output.write(&raw(), &mut delta("5678"));
        assert_eq!(output.prefill(), Some(("12345678", false)));
        output.write(&raw(), &mut delta("9"));
        assert_eq!(output.prefill(), None);
        assert_eq!(output.served_text.capacity(), 0, "the kept text is freed");
        output.write(&raw(), &mut delta("0"));
        assert_eq!(output.prefill(), None, "and stays dropped");
        assert_eq!(output.delivered_tokens(), 4);
    }
}
