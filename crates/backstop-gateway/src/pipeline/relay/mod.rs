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

pub mod cadence;
mod output;
mod stop;

use super::buffers::{BufferBudget, Held};
use super::classify::class_of;
use super::failure::{describe_transport, Failure};
use super::plan::Route;
use super::record::{record_attempt, Answered, Ended};
use super::request::ClientRequest;
use super::rescue::{Continuation, RescueContext};
use super::Gateway;
use crate::config::{Idle, StreamBuffer};
use crate::metrics::Metrics;
use crate::redact::Redactor;
use backstop_core::{Attempt, FailureClass};
use backstop_protocol::{
    FinishReason, ProtocolError, ResponseCollector, SseDecoder, SseEvent, StreamDecoder,
    StreamEvent, Usage,
};
use bytes::Bytes;
use cadence::Cadence;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use futures_util::FutureExt;
use output::{Matching, Output};
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

/// Where the relayed answer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the commit point: no event has reached the client.
    Priming,
    /// Events flow to the client; no finish reason yet.
    Answering,
    /// The answer has its finish reason; its usage and the upstream's terminator may follow.
    Finished,
    /// Over: the terminator arrived, the gateway finished the answer, or it was ended with an
    /// error event.
    Done,
}

/// One upstream stream being relayed (and, after a rescue, its continuation).
pub struct Relay {
    upstream: BoxStream<'static, Result<Bytes, crate::upstream::TransportError>>,
    sse: SseDecoder,
    decoder: StreamDecoder,
    /// The canonical events of the upstream event being relayed, a buffer kept for the next.
    events: Vec<StreamEvent>,
    output: Output,
    /// The attempt being relayed, from the commit point until its stream ends.
    attempt: Option<Attempt>,
    idle: Idle,
    /// The gaps between the current upstream's events, for `idle = "auto"`.
    cadence: Cadence,
    /// With a restarted answer being compared: why the stream it replaces broke.
    broken: Option<String>,
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
    phase: Phase,
    route: Route,
    metrics: Arc<Metrics>,
    governance: Arc<crate::governance::Governance>,
    redactor: Arc<Redactor>,
    usage: Option<Usage>,
    malformed: u32,
    rescue: Option<RescueContext>,
    rescues: u32,
    max_rescues: u32,
    max_tokens: Option<u64>,
    /// The channel's content filter stops answers with a 200 (Azure): the commit point waits
    /// for the first text or tool call, so that a filtered answer is still a failure.
    refusal_is_failure: bool,
    /// A text or tool call of the current upstream's answer has arrived.
    content_seen: bool,
    /// The answer gathered for `keeper` (only when something is to be kept).
    collector: Option<ResponseCollector>,
    /// The names of the tools the answer calls, in order.
    tool_calls: Vec<String>,
    /// Keeps the answer once the stream ends cleanly.
    keeper: Option<crate::keep::Keeper>,
    /// Why the answer ended, once its upstream said so.
    finish: Option<FinishReason>,
    /// The model the upstream says answers.
    reported_model: Option<String>,
}

impl Relay {
    /// Wraps an upstream 2xx streaming response.
    pub fn new(
        gateway: &Gateway,
        request: &ClientRequest,
        route: &Route,
        response: crate::upstream::UpstreamResponse,
        deadline: Instant,
    ) -> Self {
        let upstream = route.target.spec();
        let config = &request.config;
        let max_text = usize::try_from(route.model.max_rescue_text).unwrap_or(usize::MAX);
        Self {
            upstream: crate::channels::sse_body(upstream, response),
            sse: SseDecoder::new(),
            decoder: StreamDecoder::new(upstream.protocol),
            events: Vec::new(),
            output: Output::new(
                request.protocol,
                upstream.protocol,
                request.envelope.include_usage,
                max_text,
            ),
            attempt: None,
            idle: route.model.idle.unwrap_or(config.timeouts.idle),
            cadence: Cadence::default(),
            broken: None,
            deadline,
            total: config.timeouts.total,
            drain: gateway.watch_drain(),
            quiet_since: Instant::now(),
            upstream_bytes: 0,
            max_stream_bytes: route.model.max_stream_bytes,
            buffered: Held::default(),
            buffers: gateway.buffers(),
            expect_usage: upstream.usage_after_finish,
            buffer_full: route.model.stream_buffer == StreamBuffer::Full
                || crate::keep::tiers::holds_stream(request, route),
            phase: Phase::Priming,
            route: route.clone(),
            metrics: gateway.metrics().clone(),
            governance: gateway.governance().clone(),
            redactor: gateway.redactor(),
            usage: None,
            malformed: 0,
            rescue: None,
            rescues: 0,
            max_rescues: route.model.max_rescues,
            max_tokens: request.envelope.max_tokens,
            refusal_is_failure: upstream.refusal_is_failure,
            content_seen: false,
            collector: crate::keep::tiers::wants_answer(request).then(ResponseCollector::new),
            tool_calls: Vec::new(),
            keeper: None,
            finish: None,
            reported_model: None,
        }
    }

    /// What the upstream reported of the answer so far.
    fn answered(&self) -> Answered<'_> {
        Answered {
            usage: self.usage.as_ref(),
            finish: self.finish.as_ref(),
            model: self.reported_model.as_deref(),
        }
    }

    /// The names of the tools the answer calls so far.
    pub fn tool_calls(&self) -> &[String] {
        &self.tool_calls
    }

    /// Hands the answer to `keeper` once the stream ends cleanly (a stream continued on
    /// another target is not kept: it was spliced from two answers).
    pub fn keep(&mut self, keeper: crate::keep::Keeper) {
        self.keeper = Some(keeper);
    }

    fn deliver(&mut self) {
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        let Some(collector) = self.collector.take() else {
            return;
        };
        if self.rescues == 0 {
            keeper.complete(collector.finish());
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
        while !self.done()
            && (self.output.ready() == 0 || self.buffer_full || self.awaiting_content())
        {
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
            return Err(Failure::local(
                FailureClass::Transient,
                "stream ended before its first event",
            ));
        }
        if self.phase == Phase::Priming {
            self.phase = Phase::Answering;
        }
        Ok(())
    }

    /// The commit point: the stream is this client's answer, `attempt` is finished when it
    /// ends, and a break is continued with `rescue`.
    pub fn commit(&mut self, attempt: Attempt, rescue: RescueContext) {
        if self.done() {
            // Primed to its end (a short answer, or `stream_buffer = "full"`): whole already.
            record_attempt(
                &self.metrics,
                &self.route,
                attempt,
                Ended::Answered(self.answered()),
            );
            self.log_end("complete");
            self.deliver();
        } else {
            self.attempt = Some(attempt);
        }
        self.rescue = Some(rescue);
    }

    fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Before the commit point on a channel whose content filter answers with a 200: no
    /// text or tool call yet, so a finish on the content filter is still a failure.
    fn awaiting_content(&self) -> bool {
        self.refusal_is_failure && self.phase == Phase::Priming && !self.content_seen
    }

    /// The client body: the relayed events, continued elsewhere or ended with an error
    /// event if the stream breaks. The relay stays boxed: the stream hands it to the future of
    /// each next chunk and takes it back, a pointer's move instead of the relay's.
    pub fn into_stream(
        self: Box<Self>,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
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
            if self.done() {
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
        while !self.done()
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
    async fn arrived(&mut self) -> Option<Option<Result<Bytes, crate::upstream::TransportError>>> {
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
            // Boxed: a rescue's state (a whole upstream call) is thirty times the size of the
            // rest, and every open stream would hold room for it.
            Stop::Failed(failure) => Box::pin(self.recover(failure)).await,
            Stop::Cut(cut) => {
                self.end_cut(cut);
                let message = format!("{}; the answer is incomplete", cut.message());
                self.output.fail(&message);
                self.phase = Phase::Done;
            }
        }
    }

    /// After the first byte: continue the answer on another target, or end the stream
    /// with an error event naming the failure.
    async fn recover(&mut self, failure: Failure) {
        let label = self.route.target.label.clone();
        tracing::warn!(target = %label, class = failure.class.as_str(), "stream failed after the first byte: {}", failure.message);
        let why = match self.continuation().await {
            Ok((continuation, restart)) => {
                self.broken = restart
                    .then(|| format!("upstream {label} failed mid-stream: {}", failure.message));
                self.splice(continuation, restart);
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
        self.phase = Phase::Done;
    }

    /// A continuation of the answer from the text delivered, or else, with `rescue_restart`,
    /// a restart of the request to be compared with it (`true`).
    async fn continuation(&mut self) -> Result<(Continuation, bool), String> {
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
                self.route.model.max_rescue_text
            ));
        };
        let prefill = prefill.to_string();
        let restart = self.route.model.rescue_restart && !prefill.is_empty();
        let Some(rescue) = self.rescue.as_mut() else {
            return Err("no other target to continue on".to_string());
        };
        let notes = match rescue.continuation(&prefill, max_tokens).await {
            Ok(continuation) => return Ok((continuation, false)),
            Err(notes) => notes,
        };
        let why = if notes.is_empty() {
            "no other target to continue on".to_string()
        } else {
            format!("no target could continue: {}", notes.join("; "))
        };
        if !restart {
            return Err(why);
        }
        match rescue.continuation("", self.max_tokens).await {
            Ok(continuation) => Ok((continuation, true)),
            Err(notes) if notes.is_empty() => Err(why),
            Err(notes) => Err(format!(
                "{why}; no target could restart it: {}",
                notes.join("; ")
            )),
        }
    }

    /// Switches to the continuation's stream (a restart's is compared with the text sent
    /// before any of it is relayed).
    fn splice(&mut self, continuation: Continuation, restart: bool) {
        let from = self.route.target.label.clone();
        let gap = self.cadence.since_last_event(Instant::now());
        self.metrics.rescue_delay(&from, gap);
        let upstream = continuation.route.target.spec();
        let trimmed = self.output.prefill().is_some_and(|(_, trimmed)| trimmed);
        let delivered = self.output.delivered_tokens();
        let earlier = self
            .usage
            .map_or(delivered, |u| u.output_tokens.max(delivered));
        if restart {
            self.output.splice_restart();
        } else {
            self.output.splice(trimmed, earlier);
            self.metrics.rescue(&from, "continued");
        }
        self.cadence.reset();
        self.upstream = crate::channels::sse_body(upstream, continuation.response);
        self.sse = SseDecoder::new();
        self.decoder = StreamDecoder::new(upstream.protocol);
        self.attempt = Some(continuation.attempt);
        self.route = continuation.route;
        self.expect_usage = upstream.usage_after_finish;
        self.phase = Phase::Answering;
        self.usage = None;
        self.quiet_since = Instant::now();
        self.rescues += 1;
        let how = if restart {
            "restarted (to be compared with the text sent)"
        } else {
            "continued"
        };
        tracing::warn!(from = %from, to = %self.route.target.label, rescue = self.rescues, "stream {how} on another target");
    }

    /// When the upstream's silence ends the wait: `idle` after its last event (or after
    /// the client asked for more), shorter once the answer is complete.
    fn next_read_deadline(&self) -> Instant {
        let finished =
            self.phase == Phase::Finished && (self.usage.is_some() || !self.expect_usage);
        let idle = self.stall_after().0;
        let wait = if finished { TAIL_GRACE.min(idle) } else { idle };
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
        if self.phase == Phase::Finished {
            self.finish_without_terminator();
            return Ok(());
        }
        let message = if self.phase == Phase::Answering {
            let (idle, rule) = self.stall_after();
            self.metrics.stall(&self.route.target.label, rule.label());
            format!(
                "stream stalled: no event for {idle:?} (idle, {} rule)",
                rule.label()
            )
        } else {
            "stream stalled: no event before the first_byte timeout".to_string()
        };
        Err(self
            .fail(Failure::local(FailureClass::Unavailable, message))
            .into())
    }

    /// Relays the events completed by one upstream item (a chunk, an error, or the end).
    fn take(
        &mut self,
        next: Option<Result<Bytes, crate::upstream::TransportError>>,
    ) -> Result<(), Stop> {
        match next {
            Some(Ok(chunk)) => {
                self.upstream_bytes += chunk.len() as u64;
                if self.upstream_bytes > self.max_stream_bytes {
                    return Err(Stop::Cut(Cut::TooLarge(self.max_stream_bytes)));
                }
                let events = self.sse.push(&chunk);
                if !events.is_empty() {
                    self.quiet_since = Instant::now();
                    self.cadence.event(self.quiet_since);
                }
                for event in events {
                    self.relay_event(event)?;
                    if self.done() {
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
                if self.done() {
                    return Ok(());
                }
                if self.phase == Phase::Finished {
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
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        match self.decoder.decode_into(&event, &mut events) {
            Ok(()) => {}
            Err(ProtocolError::Upstream { kind, message }) => {
                let failure = Failure::local(
                    class_of(kind, 200),
                    format!("upstream error event: {message}"),
                );
                return Err(self.fail(failure.redacted(&self.redactor)));
            }
            Err(error) => {
                self.malformed += 1;
                self.metrics.malformed_event(&self.route.target.label);
                tracing::warn!(target = %self.route.target.label, "dropped a malformed stream event: {error}");
                self.events = events;
                return Ok(());
            }
        }
        for canonical in &events {
            if let Some(collector) = &mut self.collector {
                collector.push(canonical);
            }
            if let StreamEvent::ToolCallStart { name, .. } = canonical {
                self.tool_calls.push(name.clone());
            }
            match canonical {
                StreamEvent::Finish {
                    reason: FinishReason::ContentFilter,
                } if self.awaiting_content() => {
                    return Err(self.fail(crate::channels::output_filtered()));
                }
                StreamEvent::Finish { reason } => {
                    self.phase = Phase::Finished;
                    self.finish = Some(reason.clone());
                }
                StreamEvent::Usage(usage) => self.usage = Some(*usage),
                StreamEvent::TextDelta { text } => self.content_seen |= !text.is_empty(),
                StreamEvent::ToolCallStart { .. } => self.content_seen = true,
                StreamEvent::Start { model, .. } => {
                    self.reported_model = Some(model.clone());
                    self.check_drift(model)?;
                }
                StreamEvent::ToolCallDelta { .. } | StreamEvent::Done => {}
            }
        }
        self.output.write(&event, &mut events);
        self.events = events;
        match self.output.restart_news() {
            Some(Matching::Matched) => {
                self.broken = None;
                self.metrics.rescue(&self.route.target.label, "restarted");
                tracing::warn!(target = %self.route.target.label, "the restarted answer begins with the text sent: relaying the rest");
            }
            Some(Matching::Diverged) => {
                self.diverged();
                return Ok(());
            }
            Some(Matching::Pending) | None => {}
        }
        if self.decoder.saw_terminator() {
            self.phase = Phase::Done;
            self.finish(Ok(()));
        }
        Ok(())
    }

    /// The answer is complete (it has its finish reason) but the upstream did not send
    /// its terminator: send the caller's terminator ourselves.
    fn finish_without_terminator(&mut self) {
        self.output.terminate();
        self.phase = Phase::Done;
        self.finish(Ok(()));
    }

    /// The restarted answer does not begin with the text sent: none of it is relayed, and the
    /// stream ends with the error the client would have had without it. The restart's
    /// target did nothing wrong: its attempt is counted as cut.
    fn diverged(&mut self) {
        let label = self.route.target.label.clone();
        self.metrics.rescue(&label, "diverged");
        if let Some(attempt) = self.attempt.take() {
            record_attempt(&self.metrics, &self.route, attempt, Ended::Cut("diverged"));
        }
        let broken = self.broken.take().unwrap_or_default();
        let message = format!("{broken}; the answer is incomplete (its restart on {label} diverged from the text already sent)");
        tracing::warn!(target = %label, "the restarted answer differs from the text sent: ending the stream");
        self.output.fail(&message);
        self.phase = Phase::Done;
    }

    /// How long a silence may last now, and the rule that says so.
    fn stall_after(&self) -> (Duration, cadence::Rule) {
        let usual = self.route.health.usual_pause.get();
        self.cadence.stall_after(self.idle, usual)
    }

    /// Compares the model the upstream reports with the target's pin (see
    /// [`crate::governance::drift::check_stream`]).
    fn check_drift(&mut self, reported: &str) -> Result<(), Failure> {
        let drifts = &self.governance.drifts;
        let committed = self.phase != Phase::Priming;
        crate::governance::drift::check_stream(
            drifts,
            &self.metrics,
            &self.route,
            reported,
            committed,
        )
        .map_err(|failure| self.fail(failure))
    }

    /// Records a failure of the current target and hands it back.
    fn fail(&mut self, failure: Failure) -> Failure {
        self.finish(Err(&failure));
        failure
    }

    /// Ends the current target's part in the stream for `cut`: a runaway stream counts
    /// against the target; a deadline or a shutdown does not.
    fn end_cut(&mut self, cut: Cut) {
        let label = &self.route.target.label;
        tracing::warn!(target = %label, reason = cut.label(), "stream cut: {}", cut.message());
        if cut.blames_target() {
            self.finish(Err(&cut.into_failure()));
        } else if let Some(attempt) = self.attempt.take() {
            record_attempt(&self.metrics, &self.route, attempt, Ended::Cut(cut.label()));
        }
    }

    /// Records the end of the committed attempt (nothing before the commit point: the
    /// engine records those failures).
    fn finish(&mut self, outcome: Result<(), &Failure>) {
        let Some(attempt) = self.attempt.take() else {
            return;
        };
        if let (Ok(()), Some(longest)) = (outcome, self.cadence.longest_pause()) {
            self.route.health.usual_pause.learn(longest);
        }
        let ended = match outcome {
            Ok(()) => Ended::Answered(self.answered()),
            Err(failure) => Ended::Failed(failure),
        };
        record_attempt(&self.metrics, &self.route, attempt, ended);
        self.log_end(if outcome.is_ok() {
            "complete"
        } else {
            "failed"
        });
        if outcome.is_ok() {
            self.deliver();
        }
    }

    fn log_end(&self, outcome: &'static str) {
        tracing::info!(
            target = %self.route.target.label,
            outcome,
            input_tokens = self.usage.as_ref().map_or(0, |u| u.input_tokens),
            output_tokens = self.usage.as_ref().map_or(0, |u| u.output_tokens),
            malformed_events = self.malformed,
            "stream ended"
        );
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The size of the future an async method of the relay returns.
    fn future_size<'a, F: std::future::Future>(_: impl FnOnce(&'a mut Relay) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open stream holds its relay and the future of its next chunk for as long as it
    /// is open: room for a rescue (a whole upstream call, several times the rest) must not be
    /// part of it.
    #[test]
    fn an_open_stream_holds_no_room_for_a_rescue() {
        let next_chunk = future_size(|relay| relay.next_chunk());
        let recover =
            future_size(|relay| relay.recover(Failure::local(FailureClass::Transient, "broken")));
        assert!(
            next_chunk * 4 < recover,
            "next_chunk {next_chunk} bytes, recover {recover}"
        );
        assert!(next_chunk <= 2048, "next_chunk {next_chunk} bytes");
    }
}
