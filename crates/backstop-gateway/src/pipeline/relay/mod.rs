//! The streaming relay: upstream SSE events to the client as they arrive. Before the
//! commit point (the first event) a failure goes back to the attempt loop. After it, a
//! broken, stalled or unterminated stream is continued on the next candidate that can
//! (see [`super::rescue`]) and spliced into the same client stream; where none can, it
//! ends with an error event in the caller's protocol, never as a complete answer. Every
//! failure counts against its target. A malformed event is dropped.
//!
//! Nothing an upstream does can hold memory or the client past a bound: the relay reads
//! only when the client asks for more (the response body is pulled by hyper, so a slow
//! client slows the upstream read down), checks the request's `total` deadline and the
//! drain deadline of a shutdown on every turn (an upstream that always has data ready
//! never lets a timer fire on its own), yields to the scheduler as it goes, counts the
//! bytes of the stream against `max_stream_bytes`, and keeps at most `max_rescue_text` of
//! text to continue from. SSE comments are no events: they do not hold off `idle`. A
//! stream ended at a deadline or a shutdown is not the target's failure.

mod output;
mod stop;

use super::buffers::{BufferBudget, Held};
use super::call::record_usage;
use super::classify::class_of;
use super::failure::{describe_transport, Failure};
use super::plan::Candidate;
use super::request::ClientRequest;
use super::rescue::{Continuation, RescueContext};
use super::Gateway;
use crate::config::StreamBuffer;
use crate::metrics::Metrics;
use crate::redact::Redactor;
use backstop_core::{FailureClass, Permit};
use backstop_protocol::{ProtocolError, SseDecoder, SseEvent, StreamDecoder, StreamEvent, Usage};
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use futures_util::FutureExt;
use output::Output;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use stop::{Cut, Stop};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// How long to wait, once the answer has its final finish reason (and usage), for the
/// upstream's own terminator before finishing the stream ourselves.
const TAIL_GRACE: Duration = Duration::from_millis(500);

/// The most bytes gathered into one client write from upstream events that have already
/// arrived (see [`Relay::gather_ready`]).
const GATHER_LIMIT: usize = 32 * 1024;

/// Scheduler turns given to hyper's connection task to hand over a chunk it already holds.
/// Measured with 60-event streams from the mock: one turn gathered under 0.1% of the waiting
/// events (a 60-event stream still took 60 client writes), two gathered 98% (one write per
/// stream, gateway CPU per stream 520 -> 220 us), more gained nothing.
const GATHER_TURNS: u32 = 2;

/// One upstream stream being relayed (and, after a rescue, its continuation).
pub struct Relay {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    sse: SseDecoder,
    decoder: StreamDecoder,
    output: Output,
    permit: Option<Permit>,
    idle: Duration,
    deadline: Instant,
    total: Duration,
    drain: watch::Receiver<Option<Instant>>,
    /// Since when the upstream has sent no event while the relay waited for one.
    quiet_since: Instant,
    upstream_bytes: u64,
    max_stream_bytes: u64,
    /// With `stream_buffer = "full"`: the bytes held until the stream completes.
    buffered: Held,
    buffers: Arc<BufferBudget>,
    expect_usage: bool,
    buffer_full: bool,
    /// The first event is out: the stream is committed to this client.
    primed: bool,
    saw_finish: bool,
    saw_usage: bool,
    done: bool,
    candidate: Candidate,
    metrics: Arc<Metrics>,
    redactor: Arc<Redactor>,
    usage: Option<Usage>,
    malformed: u32,
    rescue: RescueContext,
    rescues: u32,
    max_rescues: u32,
    max_tokens: Option<u64>,
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
        rescue: RescueContext,
    ) -> Self {
        let upstream = candidate.target.spec();
        let config = &request.config;
        let max_text = usize::try_from(candidate.model.max_rescue_text).unwrap_or(usize::MAX);
        Self {
            upstream: crate::channels::sse_body(upstream, response),
            sse: SseDecoder::new(),
            decoder: StreamDecoder::new(upstream.protocol),
            output: Output::new(
                request.protocol,
                upstream.protocol,
                request.envelope.include_usage,
                max_text,
            ),
            permit: Some(permit),
            idle: config.timeouts.idle,
            deadline,
            total: config.timeouts.total,
            drain: gateway.watch_drain(),
            quiet_since: Instant::now(),
            upstream_bytes: 0,
            max_stream_bytes: candidate.model.max_stream_bytes,
            buffered: Held::default(),
            buffers: gateway.buffers(),
            expect_usage: upstream.usage_after_finish,
            buffer_full: candidate.model.stream_buffer == StreamBuffer::Full,
            primed: false,
            saw_finish: false,
            saw_usage: false,
            done: false,
            candidate: candidate.clone(),
            metrics: gateway.metrics().clone(),
            redactor: gateway.redactor(),
            usage: None,
            malformed: 0,
            rescue,
            rescues: 0,
            max_rescues: candidate.model.max_rescues,
            max_tokens: request.envelope.max_tokens,
        }
    }

    /// Reads until the first event is ready for the client (with `stream_buffer = "full"`:
    /// until the whole stream is), or fails before `until`.
    pub async fn prime(&mut self, until: Instant) -> Result<(), Failure> {
        let until = if self.buffer_full {
            self.deadline
        } else {
            until
        };
        while !self.done && (self.output.ready() == 0 || self.buffer_full) {
            match self.step(until).await {
                Ok(()) => {}
                Err(Stop::Failed(failure)) => return Err(failure),
                Err(Stop::Cut(cut)) => {
                    self.end_cut(cut);
                    return Err(cut.into_failure());
                }
            }
            if self.buffer_full {
                self.hold_buffered()?;
            }
        }
        if self.output.ready() == 0 {
            let failure = Failure::local(
                FailureClass::Transient,
                "stream ended before its first event",
            );
            self.record(Err(failure.class));
            return Err(failure);
        }
        self.primed = true;
        Ok(())
    }

    /// The client body: the relayed events, continued elsewhere or ended with an error
    /// event if the stream breaks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures_util::stream::unfold(self, |mut relay| async move {
            relay.next_chunk().await.map(|chunk| (Ok(chunk), relay))
        })
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        self.quiet_since = Instant::now();
        loop {
            if self.output.ready() > 0 {
                self.gather_ready().await;
                return Some(self.output.take());
            }
            if self.done {
                return None;
            }
            let until = self.next_read_deadline();
            if let Err(stop) = self.step(until).await {
                self.stop(stop).await;
            }
        }
    }

    /// With `stream_buffer = "full"`: takes the bytes buffered so far from the gateway's
    /// budget, or gives up on the stream (not the target's fault) when it has none left.
    fn hold_buffered(&mut self) -> Result<(), Failure> {
        let growth = self.output.ready().saturating_sub(self.buffered.bytes());
        if self.buffers.take(&mut self.buffered, growth).is_ok() {
            return Ok(());
        }
        let message = format!(
            "answer too large to buffer now: the gateway's {} bytes for buffered answers (server.max_buffered_bytes) are in use",
            self.buffers.limit()
        );
        Err(self.fail(Failure::local(FailureClass::Permanent, message)))
    }

    /// Appends the events that have already arrived upstream to what is about to be written.
    /// hyper's client hands a response body over from its connection task one chunk (here:
    /// one event) at a time, so without this every event became its own write to the client
    /// (a syscall, a TCP segment and a wake-up of the reader per event: a 60-event stream cost
    /// 64 writes through the gateway against 5 from the mock). Yielding lets that task pass
    /// on the next chunk it already holds; nothing waits for data that has not arrived.
    async fn gather_ready(&mut self) {
        let start = self.upstream_bytes;
        while !self.done
            && self.output.ready() < GATHER_LIMIT
            && self.upstream_bytes - start < GATHER_LIMIT as u64
        {
            let Some(next) = self.arrived().await else {
                return;
            };
            if let Err(stop) = self.take(next) {
                self.stop(stop).await;
            }
        }
    }

    /// The next upstream item if it has already arrived: it becomes ready within
    /// [`GATHER_TURNS`] scheduler turns, or `None`.
    async fn arrived(&mut self) -> Option<Option<reqwest::Result<Bytes>>> {
        for _ in 0..GATHER_TURNS {
            tokio::task::yield_now().await;
            if let Some(next) = self.upstream.next().now_or_never() {
                return Some(next);
            }
        }
        None
    }

    /// After the first byte: a failure is rescued where it can be; a cut ends the stream.
    async fn stop(&mut self, stop: Stop) {
        match stop {
            Stop::Failed(failure) => self.recover(failure).await,
            Stop::Cut(cut) => {
                self.end_cut(cut);
                let message = format!("{}; the answer is incomplete", cut.message());
                self.output.fail(&message);
                self.done = true;
            }
        }
    }

    /// After the first byte: continue the answer on another target, or end the stream
    /// with an error event naming the failure.
    async fn recover(&mut self, failure: Failure) {
        let label = self.candidate.target.label.clone();
        tracing::warn!(target = %label, class = failure.class.as_str(), "stream failed after the first byte: {}", failure.message);
        let why = match self.continuation().await {
            Ok(continuation) => {
                self.splice(continuation);
                return;
            }
            Err(why) => why,
        };
        self.metrics.rescue(&label, "failed");
        let message = format!(
            "upstream {label} failed mid-stream: {}; the answer is incomplete ({why})",
            failure.message
        );
        self.output.fail(&message);
        self.done = true;
    }

    async fn continuation(&mut self) -> Result<Continuation, String> {
        if let Some(cut) = self.cut_due(Instant::now()) {
            return Err(cut.message());
        }
        if self.rescues >= self.max_rescues {
            return Err(format!("rescue limit of {} reached", self.max_rescues));
        }
        if self.output.tool_calls() > 0 {
            return Err(
                "a tool call was already delivered, so the answer cannot be continued".into(),
            );
        }
        let delivered = self.output.delivered_tokens();
        let max_tokens = self
            .max_tokens
            .map(|max| max.saturating_sub(delivered).max(1));
        let Some((prefill, _)) = self.output.prefill() else {
            return Err(format!(
                "the answer was too long to rescue: its text passed max_rescue_text ({} bytes)",
                self.candidate.model.max_rescue_text
            ));
        };
        let prefill = prefill.to_string();
        self.rescue
            .continuation(&prefill, max_tokens)
            .await
            .map_err(|notes| {
                if notes.is_empty() {
                    "no other target to continue on".to_string()
                } else {
                    format!("no target could continue: {}", notes.join("; "))
                }
            })
    }

    /// Switches to the continuation's stream.
    fn splice(&mut self, continuation: Continuation) {
        let from = self.candidate.target.label.clone();
        let upstream = continuation.candidate.target.spec();
        let trimmed = self.output.prefill().is_some_and(|(_, trimmed)| trimmed);
        let delivered = self.output.delivered_tokens();
        let earlier = self
            .usage
            .map_or(delivered, |u| u.output_tokens.max(delivered));
        self.output.splice(trimmed, earlier);
        self.upstream = crate::channels::sse_body(upstream, continuation.response);
        self.sse = SseDecoder::new();
        self.decoder = StreamDecoder::new(upstream.protocol);
        self.permit = Some(continuation.permit);
        self.candidate = continuation.candidate;
        self.expect_usage = upstream.usage_after_finish;
        self.saw_finish = false;
        self.saw_usage = false;
        self.usage = None;
        self.quiet_since = Instant::now();
        self.rescues += 1;
        self.metrics.rescue(&from, "continued");
        tracing::warn!(from = %from, to = %self.candidate.target.label, rescue = self.rescues, "stream continued on another target");
    }

    /// When the upstream's silence ends the wait: `idle` after its last event (or after
    /// the client asked for more), shorter once the answer is complete.
    fn next_read_deadline(&self) -> Instant {
        let finished = self.saw_finish && (self.saw_usage || !self.expect_usage);
        let wait = if finished {
            TAIL_GRACE.min(self.idle)
        } else {
            self.idle
        };
        self.quiet_since + wait
    }

    /// The next deadline at which the gateway cuts the stream: the request's total, or
    /// the end of a shutdown's grace when that comes first.
    fn next_cut(&self) -> (Instant, Cut) {
        match *self.drain.borrow() {
            Some(drain) if drain < self.deadline => (drain, Cut::Shutdown),
            _ => (self.deadline, Cut::Deadline(self.total)),
        }
    }

    /// The cut due at `now`, if any.
    fn cut_due(&self, now: Instant) -> Option<Cut> {
        let (at, cut) = self.next_cut();
        (now >= at).then_some(cut)
    }

    /// Reads one upstream chunk and relays the events it completes, unless a deadline
    /// comes first: the gateway's own (a cut) or `until`, the first-event or idle one (the
    /// target's failure). The deadlines are checked before every read, so an upstream
    /// that always has data ready cannot outrun them, and the task yields once it has
    /// used its share of the scheduler.
    async fn step(&mut self, until: Instant) -> Result<(), Stop> {
        tokio::task::coop::consume_budget().await;
        let now = Instant::now();
        if let Some(cut) = self.cut_due(now) {
            return Err(Stop::Cut(cut));
        }
        if now >= until {
            return self.silent();
        }
        let wake = until.min(self.next_cut().0);
        let drain = &mut self.drain;
        let next = tokio::select! {
            biased;
            next = self.upstream.next() => next,
            () = sleep_until(wake) => return Ok(()),
            () = async {
                if drain.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => return Ok(()),
        };
        self.take(next)
    }

    /// The upstream sent no event before the first-event or idle deadline: a stall, or,
    /// once the answer has its finish reason, the end of an answer with no terminator.
    fn silent(&mut self) -> Result<(), Stop> {
        if self.saw_finish {
            self.finish_without_terminator();
            return Ok(());
        }
        let message = if self.primed {
            format!("stream stalled: no event within idle ({:?})", self.idle)
        } else {
            "stream stalled: no event before the first_byte timeout".to_string()
        };
        Err(self
            .fail(Failure::local(FailureClass::Unavailable, message))
            .into())
    }

    /// Relays the events completed by one upstream item (a chunk, an error, or the end).
    fn take(&mut self, next: Option<reqwest::Result<Bytes>>) -> Result<(), Stop> {
        match next {
            Some(Ok(chunk)) => {
                self.upstream_bytes += chunk.len() as u64;
                if self.upstream_bytes > self.max_stream_bytes {
                    return Err(Stop::Cut(Cut::TooLarge(self.max_stream_bytes)));
                }
                let events = self.sse.push(&chunk);
                if !events.is_empty() {
                    self.quiet_since = Instant::now();
                }
                for event in events {
                    self.relay_event(event)?;
                    if self.done {
                        break;
                    }
                }
                Ok(())
            }
            Some(Err(error)) => {
                let message = format!("stream broke: {}", describe_transport(&error));
                Err(self
                    .fail(Failure::local(FailureClass::Transient, message))
                    .into())
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
                let message = "stream ended before the answer was complete";
                Err(self
                    .fail(Failure::local(FailureClass::Transient, message))
                    .into())
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
                return Err(self.fail(failure.redacted(&self.redactor)));
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
        self.output.write(&event, events);
        if self.decoder.saw_terminator() {
            self.done = true;
            self.record(Ok(()));
        }
        Ok(())
    }

    /// The answer is complete (it has its finish reason) but the upstream did not send
    /// its terminator: send the caller's terminator ourselves.
    fn finish_without_terminator(&mut self) {
        self.output.terminate();
        self.done = true;
        self.record(Ok(()));
    }

    /// Records a failure of the current target and hands it back.
    fn fail(&mut self, failure: Failure) -> Failure {
        self.record(Err(failure.class));
        failure
    }

    /// Ends the current target's part in the stream for `cut`: a runaway stream counts
    /// against the target; a deadline or a shutdown does not (its permit is let go unrecorded).
    fn end_cut(&mut self, cut: Cut) {
        let label = &self.candidate.target.label;
        tracing::warn!(target = %label, reason = cut.label(), "stream cut: {}", cut.message());
        if cut.blames_target() {
            self.record(Err(FailureClass::Transient));
            return;
        }
        if let Some(permit) = self.permit.take() {
            drop(permit);
            self.metrics.attempt_cut(label, cut.label());
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
                // Before the first event the failure goes back to the attempt loop, which
                // counts it with every other failed attempt.
                if self.primed {
                    self.metrics.attempt(label, Some(class.as_str()));
                }
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
