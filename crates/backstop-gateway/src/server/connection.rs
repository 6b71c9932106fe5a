//! What the server knows of one client connection, and the wrappers that keep it current.
//!
//! A [`Tracker`] is shared by the connection's socket ([`Watched`]), its requests
//! ([`begin_request`](Tracker::begin_request) and the [`RequestGuard`] that ends them when the
//! response body is done) and the worker's sweeper, which asks it whether a deadline has passed
//! ([`Tracker::overdue`]) or whether it may be closed to make room ([`Tracker::evictable`]).
//! Everything is an atomic: the hot path pays a few relaxed loads and stores per request, and no
//! timer is armed per connection.

use crate::http::BodyTimeout;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// The deadlines a connection is held to (from `[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From the connection's start, or the first byte of a later request, to its complete headers.
    pub header: Duration,
    /// For a request's body to arrive, and for a blocked response write to make progress.
    pub body: Duration,
    /// For a kept-alive connection to start its next request.
    pub idle: Duration,
}

/// Why the gateway closed a connection (the `reason` label of `backstop_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No complete request headers within `server.header_timeout`.
    HeaderTimeout,
    /// Kept alive with no new request within `server.idle_timeout`.
    IdleTimeout,
    /// A response write blocked on a client that does not read, past `server.body_timeout`.
    WriteStall,
    /// Closed to make room for a new connection at `server.max_connections`.
    Evicted,
    /// A new connection refused at `server.max_connections` with none to close instead.
    Refused,
}

impl CloseReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WriteStall => "write_stall",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
        }
    }
}

/// Between requests: waiting for (or reading) a request's headers, or kept alive and silent.
const AWAITING_HEAD: u8 = 0;
const IDLE: u8 = 1;

/// The state of one client connection.
#[derive(Debug)]
pub struct Tracker {
    epoch: Instant,
    /// `AWAITING_HEAD` or `IDLE`, meaningful while no request is in flight.
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `epoch`.
    since: AtomicU64,
    /// Requests whose handler runs or whose response body is still being sent.
    active: AtomicU32,
    /// When a write to the client last blocked without progress since, in milliseconds since
    /// `epoch`, plus one; 0 when writes flow.
    write_blocked: AtomicU64,
    /// HTTP/2: frames between requests (pings, window updates) do not start a request.
    multiplexed: AtomicBool,
    closed: AtomicBool,
    close: Notify,
}

impl Tracker {
    /// A connection accepted now, awaiting its first request's headers.
    pub fn new(epoch: Instant) -> Self {
        let tracker = Self {
            epoch,
            phase: AtomicU8::new(AWAITING_HEAD),
            since: AtomicU64::new(0),
            active: AtomicU32::new(0),
            write_blocked: AtomicU64::new(0),
            multiplexed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            close: Notify::new(),
        };
        tracker.since.store(tracker.now(), Relaxed);
        tracker
    }

    fn now(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
    }

    /// A request's headers are complete and its handler starts; `multiplexed` for HTTP/2.
    pub fn begin_request(self: &Arc<Self>, multiplexed: bool) -> RequestGuard {
        if multiplexed {
            self.multiplexed.store(true, Relaxed);
        }
        self.active.fetch_add(1, Relaxed);
        RequestGuard(self.clone())
    }

    fn end_request(&self) {
        if self.active.fetch_sub(1, Relaxed) == 1 {
            self.since.store(self.now(), Relaxed);
            self.phase.store(IDLE, Relaxed);
        }
    }

    /// Bytes arrived from the client.
    fn read_some(&self) {
        if self.phase.load(Relaxed) == IDLE
            && self.active.load(Relaxed) == 0
            && !self.multiplexed.load(Relaxed)
        {
            self.since.store(self.now(), Relaxed);
            self.phase.store(AWAITING_HEAD, Relaxed);
        }
    }

    fn write_blocked(&self) {
        if self.write_blocked.load(Relaxed) == 0 {
            self.write_blocked.store(self.now() + 1, Relaxed);
        }
    }

    fn write_flowed(&self) {
        if self.write_blocked.load(Relaxed) != 0 {
            self.write_blocked.store(0, Relaxed);
        }
    }

    /// The deadline this connection has passed at `now`, if any.
    pub fn overdue(&self, now: Instant, deadlines: &Deadlines) -> Option<CloseReason> {
        let now = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let past =
            |since: u64, limit: Duration| now.saturating_sub(since) > limit.as_millis() as u64;
        if self.active.load(Relaxed) > 0 {
            let blocked = self.write_blocked.load(Relaxed);
            return (blocked != 0 && past(blocked - 1, deadlines.body))
                .then_some(CloseReason::WriteStall);
        }
        let since = self.since.load(Relaxed);
        match self.phase.load(Relaxed) {
            AWAITING_HEAD => past(since, deadlines.header).then_some(CloseReason::HeaderTimeout),
            _ => past(since, deadlines.idle).then_some(CloseReason::IdleTimeout),
        }
    }

    /// Whether the connection may be closed to make room for another: `Some(true)` when it
    /// has not completed its request's headers (the first to go), `Some(false)` when it is
    /// kept alive between requests, `None` while it serves a request.
    pub fn evictable(&self) -> Option<bool> {
        (self.active.load(Relaxed) == 0).then(|| self.phase.load(Relaxed) == AWAITING_HEAD)
    }

    /// Asks the connection's task to close it now.
    pub fn close(&self) {
        self.close.notify_one();
    }

    /// Resolves when [`close`](Self::close) has been called.
    pub async fn closing(&self) {
        self.close.notified().await;
    }

    /// The connection's task has ended.
    pub fn set_closed(&self) {
        self.closed.store(true, Relaxed);
    }

    /// Whether the connection's task has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

/// One request in flight on a connection; dropped with the response body (or the handler,
/// when the connection goes first).
#[derive(Debug)]
pub struct RequestGuard(Arc<Tracker>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A client socket that tells its [`Tracker`] when bytes arrive and when writes block.
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    tracker: Arc<Tracker>,
}

impl<T> Watched<T> {
    /// Wraps `io`.
    pub fn new(io: T, tracker: Arc<Tracker>) -> Self {
        Self { io, tracker }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.tracker.read_some();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn watch_write(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &poll {
            Poll::Pending => self.tracker.write_blocked(),
            Poll::Ready(_) => self.tracker.write_flowed(),
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch_write(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch_write(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
pub struct Guarded<B> {
    body: B,
    _guard: RequestGuard,
}

impl<B> Guarded<B> {
    /// `body`, holding `guard`.
    pub fn new(body: B, guard: RequestGuard) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails with [`BodyTimeout`] when it is not complete by its deadline.
/// The timer is armed only if the body is not already there when first read.
pub struct Deadlined<B> {
    body: B,
    deadline: Instant,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadlined<B> {
    /// `body`, due within `limit` from now.
    pub fn new(body: B, limit: Duration) -> Self {
        Self {
            body,
            deadline: Instant::now() + limit,
            limit,
            timer: None,
        }
    }
}

impl<B> Body for Deadlined<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        header: Duration::from_secs(10),
        body: Duration::from_secs(30),
        idle: Duration::from_secs(60),
    };

    fn at(tracker: &Tracker, secs: u64) -> Option<CloseReason> {
        tracker.overdue(tracker.epoch + Duration::from_secs(secs), &DEADLINES)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_is_due_at_the_header_timeout() {
        let tracker = Tracker::new(Instant::now());
        assert_eq!(at(&tracker, 10), None);
        assert_eq!(at(&tracker, 11), Some(CloseReason::HeaderTimeout));
        assert_eq!(tracker.evictable(), Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_due_unless_its_writes_block() {
        let tracker = Arc::new(Tracker::new(Instant::now()));
        let guard = tracker.begin_request(false);
        assert_eq!(at(&tracker, 3600), None);
        assert_eq!(tracker.evictable(), None);
        tracker.write_blocked();
        tokio::time::advance(Duration::from_secs(5)).await;
        tracker.write_blocked();
        assert_eq!(at(&tracker, 30), None);
        assert_eq!(at(&tracker, 31), Some(CloseReason::WriteStall));
        tracker.write_flowed();
        assert_eq!(at(&tracker, 31), None);
        drop(guard);
        assert_eq!(tracker.evictable(), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn kept_alive_it_waits_the_idle_timeout_then_the_header_timeout_from_its_first_byte() {
        let tracker = Arc::new(Tracker::new(Instant::now()));
        drop(tracker.begin_request(false));
        assert_eq!(at(&tracker, 60), None);
        assert_eq!(at(&tracker, 61), Some(CloseReason::IdleTimeout));
        tokio::time::advance(Duration::from_secs(20)).await;
        tracker.read_some();
        assert_eq!(tracker.evictable(), Some(true));
        assert_eq!(at(&tracker, 30), None);
        assert_eq!(at(&tracker, 31), Some(CloseReason::HeaderTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_do_not_start_the_header_timeout() {
        let tracker = Arc::new(Tracker::new(Instant::now()));
        drop(tracker.begin_request(true));
        tokio::time::advance(Duration::from_secs(20)).await;
        tracker.read_some();
        assert_eq!(at(&tracker, 59), None);
        assert_eq!(at(&tracker, 61), Some(CloseReason::IdleTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_fails_at_its_deadline() {
        use http_body_util::{BodyExt, StreamBody};
        let (_sender, receiver) =
            tokio::sync::mpsc::channel::<Result<Frame<bytes::Bytes>, io::Error>>(1);
        let stream = tokio_stream_from(receiver);
        let body = Deadlined::new(StreamBody::new(stream), Duration::from_secs(30));
        let started = Instant::now();
        let error = body.collect().await.err().unwrap();
        assert!(error.is::<BodyTimeout>());
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut receiver: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            receiver.poll_recv(cx)
        }))
    }
}
