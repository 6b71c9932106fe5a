//! Delivering a response body event by event, with the stream faults applied.
//!
//! The provider modules produce the complete, correct list of events; this module decides
//! *when* each one leaves and whether it leaves at all: a slow first token, a delay per event,
//! a stall, a corrupted event, a missing terminator, the provider's error event in place of the
//! rest (a clean end of the body: that is how a provider reports a failure after its 200), or
//! a cut that drops the connection mid-body (the body stream returns an error, so hyper closes
//! the connection without the final chunk, exactly what a client sees when a provider dies
//! mid-answer).

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;

use crate::effect::StreamFault;
use crate::log::LogGuard;

/// The events of a streamed reply and its terminator (`[DONE]`, `message_stop`, `]`), if any.
pub(crate) struct Events {
    pub(crate) events: Vec<Bytes>,
    pub(crate) terminator: Option<Bytes>,
}

/// The frames a stream fault puts in place of a reply's events, in one wire format.
pub(crate) trait FaultFrames {
    /// An event whose JSON is cut off mid-object.
    fn malformed(&self) -> Bytes;
    /// The provider's mid-stream error event, which ends the body; `first` when no event
    /// precedes it.
    fn error_event(&self, first: bool) -> Bytes;
}

/// How the events are delivered.
#[derive(Debug, Default, Clone)]
pub(crate) struct Delivery {
    first_delay: Option<Duration>,
    per_event: Option<Duration>,
    cut_after: Option<usize>,
    end_after: Option<usize>,
    stall: Option<(usize, Duration)>,
    /// The index of the event replaced by invalid JSON, and that frame.
    malformed: Option<(usize, Bytes)>,
    /// The number of events sent before the error event, and that frame.
    error_event: Option<(usize, Bytes)>,
    drop_terminator: bool,
}

impl Delivery {
    /// The delivery a stream fault asks for (prompt and complete without one); `frames` makes
    /// the replacement frames the fault needs.
    pub(crate) fn for_fault(fault: Option<StreamFault>, frames: &impl FaultFrames) -> Self {
        let mut d = Delivery::default();
        match fault {
            Some(StreamFault::SlowFirstToken(delay)) => d.first_delay = Some(delay),
            Some(StreamFault::SlowStream(delay)) => d.per_event = Some(delay),
            Some(StreamFault::CutAfter(events)) => d.cut_after = Some(events),
            Some(StreamFault::EndAfter(events)) => d.end_after = Some(events),
            Some(StreamFault::Stall {
                after,
                duration,
                every,
            }) => {
                d.stall = Some((after, duration));
                d.per_event = every;
            }
            Some(StreamFault::MalformedEvent(at)) => d.malformed = Some((at, frames.malformed())),
            Some(StreamFault::ErrorEvent(at)) => {
                d.error_event = Some((at, frames.error_event(at == 0)));
            }
            Some(StreamFault::NoDone) => d.drop_terminator = true,
            None => {}
        }
        d
    }
}

struct State {
    queue: VecDeque<Bytes>,
    total: usize,
    sent: usize,
    terminator: Option<Bytes>,
    delivery: Delivery,
    guard: LogGuard,
    finished: bool,
}

fn cut_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "backstop-mock: stream cut by fault",
    )
}

/// A streaming body that delivers `events` as `delivery` says and records the outcome.
pub(crate) fn body(events: Events, delivery: Delivery, guard: LogGuard) -> Body {
    let total = events.events.len();
    let state = State {
        queue: events.events.into(),
        total,
        sent: 0,
        terminator: events.terminator,
        delivery,
        guard,
        finished: false,
    };
    Body::from_stream(stream::unfold(state, next))
}

async fn next(mut st: State) -> Option<(Result<Bytes, std::io::Error>, State)> {
    if st.finished {
        return None;
    }
    if st.sent == 0 {
        if let Some(delay) = st.delivery.first_delay.take() {
            tokio::time::sleep(delay).await;
        }
    }
    if let Some(n) = st.delivery.cut_after {
        if st.sent >= n || st.queue.is_empty() {
            // Give hyper a pending poll first so that it flushes what was sent before the cut.
            tokio::task::yield_now().await;
            st.guard.finish(format!("cut after {}", st.sent));
            st.finished = true;
            return Some((Err(cut_error()), st));
        }
    }
    if let Some(n) = st.delivery.end_after {
        if st.sent >= n || st.queue.is_empty() {
            st.guard.finish(format!("ended after {}", st.sent));
            st.finished = true;
            return None;
        }
    }
    if let Some((at, frame)) = &st.delivery.error_event {
        if st.sent >= *at || st.queue.is_empty() {
            let frame = frame.clone();
            st.guard.finish(format!("error event after {}", st.sent));
            st.finished = true;
            return Some((Ok(frame), st));
        }
    }
    if let Some((after, duration)) = st.delivery.stall {
        if st.sent == after {
            st.delivery.stall = None;
            tokio::time::sleep(duration).await;
        }
    }
    if let Some(delay) = st.delivery.per_event {
        if !st.queue.is_empty() {
            tokio::time::sleep(delay).await;
        }
    }
    if let Some(event) = st.queue.pop_front() {
        let index = st.sent;
        st.sent += 1;
        let bytes = match &st.delivery.malformed {
            Some((at, frame)) if *at == index => frame.clone(),
            Some(_) | None => event,
        };
        return Some((Ok(bytes), st));
    }
    st.finished = true;
    let outcome = match st.delivery.malformed {
        Some((at, _)) if at < st.total => format!("malformed event at {at}"),
        Some(_) | None if st.delivery.drop_terminator && st.terminator.is_some() => {
            "no terminator".to_owned()
        }
        Some(_) | None => "ok".to_owned(),
    };
    st.guard.finish(outcome);
    match st.terminator.take() {
        Some(done) if !st.delivery.drop_terminator => Some((Ok(done), st)),
        Some(_) | None => None,
    }
}

/// A non-streaming body: `body` after `delay` (headers already sent), or only its first half
/// before the connection drops when `cut` is set.
pub(crate) fn single(body: Bytes, delay: Option<Duration>, cut: bool, mut guard: LogGuard) -> Body {
    let once = async move {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if cut {
            let half = body.slice(..body.len() / 2);
            guard.finish("cut after 0");
            let parts = stream::iter(vec![Ok(half)]);
            let error = stream::once(async {
                // A pending poll lets hyper flush the half body before the connection drops.
                tokio::task::yield_now().await;
                Err(cut_error())
            });
            return futures_util::StreamExt::boxed(futures_util::StreamExt::chain(parts, error));
        }
        guard.finish("ok");
        futures_util::StreamExt::boxed(stream::iter(vec![Ok(body)]))
    };
    Body::from_stream(futures_util::StreamExt::flatten(stream::once(once)))
}
