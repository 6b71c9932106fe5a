//! The streaming relay: upstream SSE events to the client, event by event, as
//! they arrive. Before the commit point (the first event) a failure is returned to
//! the attempt loop; after it, a broken, stalled or unterminated stream is never
//! presented as a complete answer: it ends with an error event in the caller's
//! protocol, and the failure counts against the target. A malformed event is dropped.

use super::attempt::record_usage;
use super::classify::class_of;
use super::failure::{describe_transport, Failure};
use super::plan::Candidate;
use super::request::ClientRequest;
use super::Gateway;
use crate::metrics::Metrics;
use backstop_core::{FailureClass, Permit};
use backstop_protocol::{
    write_sse, Protocol, ProtocolError, SseDecoder, SseEvent, StreamDecoder, StreamEncoder,
    StreamEvent, Usage,
};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// How long to wait, once the answer has its final finish reason (and usage), for the
/// upstream's own terminator before finishing the stream ourselves.
const TAIL_GRACE: Duration = Duration::from_millis(500);

/// How events reach the client.
enum Mode {
    /// Same protocol: each event's own bytes are forwarded.
    Passthrough,
    /// Other protocol: canonical events re-encoded for the caller.
    Translate(StreamEncoder),
}

/// One upstream stream being relayed.
pub struct Relay {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    sse: SseDecoder,
    decoder: StreamDecoder,
    mode: Mode,
    caller: Protocol,
    out: BytesMut,
    permit: Option<Permit>,
    idle: Duration,
    deadline: Instant,
    expect_usage: bool,
    client_wants_usage: bool,
    saw_finish: bool,
    saw_usage: bool,
    done: bool,
    candidate: Candidate,
    metrics: Arc<Metrics>,
    usage: Option<Usage>,
    malformed: u32,
}

impl Relay {
    /// Wraps an upstream 2xx streaming response.
    pub fn new(
        gateway: &Gateway,
        request: &ClientRequest,
        candidate: &Candidate,
        response: reqwest::Response,
        permit: Permit,
        deadline: Instant,
    ) -> Self {
        let upstream_kind = candidate.target.provider.kind;
        let mode = if upstream_kind == request.protocol {
            Mode::Passthrough
        } else {
            Mode::Translate(StreamEncoder::new(
                request.protocol,
                request.envelope.include_usage,
            ))
        };
        Self {
            upstream: response.bytes_stream().boxed(),
            sse: SseDecoder::new(),
            decoder: StreamDecoder::new(upstream_kind),
            mode,
            caller: request.protocol,
            out: BytesMut::new(),
            permit: Some(permit),
            idle: gateway.config().timeouts.idle,
            deadline,
            expect_usage: upstream_kind == Protocol::OpenAi,
            client_wants_usage: request.envelope.include_usage,
            saw_finish: false,
            saw_usage: false,
            done: false,
            candidate: candidate.clone(),
            metrics: gateway.metrics().clone(),
            usage: None,
            malformed: 0,
        }
    }

    /// Reads until the first event is ready for the client, or fails before `until`.
    pub async fn prime(&mut self, until: Instant) -> Result<(), Failure> {
        while self.out.is_empty() && !self.done {
            self.step(until).await?;
        }
        if self.out.is_empty() {
            let failure = Failure::local(
                FailureClass::Transient,
                "stream ended before its first event",
            );
            self.record(Err(failure.class));
            return Err(failure);
        }
        Ok(())
    }

    /// The client body: the relayed events, ending with an error event if the stream breaks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures_util::stream::unfold(self, |mut relay| async move {
            relay.next_chunk().await.map(|chunk| (Ok(chunk), relay))
        })
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if !self.out.is_empty() {
                return Some(self.out.split().freeze());
            }
            if self.done {
                return None;
            }
            let until = self.next_read_deadline();
            if let Err(failure) = self.step(until).await {
                tracing::warn!(target = %self.candidate.target.label, class = failure.class.as_str(), "stream failed after the first byte: {}", failure.message);
                self.write_error(&failure.message);
                self.done = true;
            }
        }
    }

    fn next_read_deadline(&self) -> Instant {
        let finished = self.saw_finish && (self.saw_usage || !self.expect_usage);
        let wait = if finished {
            TAIL_GRACE.min(self.idle)
        } else {
            self.idle
        };
        self.deadline.min(Instant::now() + wait)
    }

    /// Reads one upstream chunk and relays the events it completes.
    async fn step(&mut self, until: Instant) -> Result<(), Failure> {
        let next = match timeout_at(until, self.upstream.next()).await {
            Ok(next) => next,
            Err(_) if self.saw_finish => {
                self.finish_without_terminator();
                return Ok(());
            }
            Err(_) => {
                let failure = Failure::local(
                    FailureClass::Unavailable,
                    format!("stream stalled: no event within idle ({:?})", self.idle),
                );
                self.record(Err(failure.class));
                return Err(failure);
            }
        };
        match next {
            Some(Ok(chunk)) => {
                for event in self.sse.push(&chunk) {
                    self.relay_event(event)?;
                    if self.done {
                        break;
                    }
                }
                Ok(())
            }
            Some(Err(error)) => {
                let failure = Failure::local(
                    FailureClass::Transient,
                    format!("stream broke: {}", describe_transport(&error)),
                );
                self.record(Err(failure.class));
                Err(failure)
            }
            None => {
                if let Some(event) = self.sse.finish() {
                    self.relay_event(event)?;
                }
                if self.done {
                    return Ok(());
                }
                if self.saw_finish {
                    self.finish_without_terminator();
                    return Ok(());
                }
                let failure = Failure::local(
                    FailureClass::Transient,
                    "stream ended before the answer was complete",
                );
                self.record(Err(failure.class));
                Err(failure)
            }
        }
    }

    fn relay_event(&mut self, event: SseEvent) -> Result<(), Failure> {
        let events = match self.decoder.decode(&event) {
            Ok(events) => events,
            Err(ProtocolError::Upstream { kind, message }) => {
                let failure = Failure::local(
                    class_of(kind, 200),
                    format!("upstream error event: {message}"),
                );
                self.record(Err(failure.class));
                return Err(failure);
            }
            Err(error) => {
                self.malformed += 1;
                self.metrics.malformed_event(&self.candidate.target.label);
                tracing::warn!(target = %self.candidate.target.label, "dropped a malformed stream event: {error}");
                return Ok(());
            }
        };
        for canonical in &events {
            match canonical {
                StreamEvent::Finish { .. } => self.saw_finish = true,
                StreamEvent::Usage(usage) => {
                    self.saw_usage = true;
                    self.usage = Some(*usage);
                }
                StreamEvent::Start { .. }
                | StreamEvent::TextDelta { .. }
                | StreamEvent::ToolCallStart { .. }
                | StreamEvent::ToolCallDelta { .. }
                | StreamEvent::Done => {}
            }
        }
        match &mut self.mode {
            Mode::Passthrough => {
                let usage_only =
                    !events.is_empty() && events.iter().all(|e| matches!(e, StreamEvent::Usage(_)));
                if !usage_only || self.client_wants_usage {
                    write_sse(&mut self.out, event.event.as_deref(), &event.data);
                }
            }
            Mode::Translate(encoder) => {
                for canonical in &events {
                    encoder.encode(canonical, &mut self.out);
                }
            }
        }
        if self.decoder.saw_terminator() {
            self.done = true;
            self.record(Ok(()));
        }
        Ok(())
    }

    /// The answer is complete (it has its finish reason) but the upstream did not send
    /// its terminator: send the caller's terminator ourselves.
    fn finish_without_terminator(&mut self) {
        match &mut self.mode {
            Mode::Passthrough => match self.caller {
                Protocol::OpenAi => write_sse(&mut self.out, None, "[DONE]"),
                Protocol::Anthropic => write_sse(
                    &mut self.out,
                    Some("message_stop"),
                    r#"{"type":"message_stop"}"#,
                ),
                Protocol::Gemini => {}
            },
            Mode::Translate(encoder) => encoder.encode(&StreamEvent::Done, &mut self.out),
        }
        self.done = true;
        self.record(Ok(()));
    }

    fn write_error(&mut self, message: &str) {
        let message = format!(
            "upstream {} failed mid-stream: {message}; the answer is incomplete",
            self.candidate.target.label
        );
        match &mut self.mode {
            Mode::Translate(encoder) => encoder.encode_error("api_error", &message, &mut self.out),
            Mode::Passthrough => StreamEncoder::new(self.caller, false).encode_error(
                "api_error",
                &message,
                &mut self.out,
            ),
        }
    }

    fn record(&mut self, outcome: Result<(), FailureClass>) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let label = &self.candidate.target.label;
        match outcome {
            Ok(()) => {
                permit.record_success();
                self.metrics.attempt(label, None);
                if let Some(usage) = &self.usage {
                    record_usage(&self.metrics, &self.candidate, usage);
                }
            }
            Err(class) => {
                permit.record_failure(class);
                self.metrics.attempt(label, Some(class.as_str()));
            }
        }
        tracing::info!(
            target = %label,
            outcome = if outcome.is_ok() { "complete" } else { "failed" },
            input_tokens = self.usage.as_ref().map_or(0, |u| u.input_tokens),
            output_tokens = self.usage.as_ref().map_or(0, |u| u.output_tokens),
            malformed_events = self.malformed,
            "stream ended"
        );
    }
}
