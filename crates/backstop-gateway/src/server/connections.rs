//! Serving the connections one worker is handed: HTTP/1.1 and HTTP/2 by hyper, each connection
//! watched by a [`Tracker`], all of them held to their deadlines by one sweeper, and their number
//! bounded.
//!
//! hyper's own header-read timeout also runs while a kept-alive connection waits for its next
//! request, so it cannot tell a slow client from an idle one; the sweeper keeps the two apart
//! (`server.header_timeout` and `server.idle_timeout`) and adds the write stall. It visits every
//! connection a few times a second, which costs far less than a timer per connection.
//!
//! At `server.max_connections` (shared evenly among the workers) a new connection makes room by
//! closing, first, the oldest connection that has not completed its request's headers, then the
//! oldest kept-alive one; a connection serving a request is never closed for another. So a slow
//! attacker holding thousands of half-open connections cannot crowd out clients that send whole
//! requests: theirs are the connections that go.

use super::connection::{CloseReason, Deadlined, Deadlines, Guarded, Tracker, Watched};
use super::sniff::{sniff, Builders, Sniffed};
use super::Edge;
use crate::config::ServerSettings;
use crate::pipeline::Gateway;
use http::Version;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How often the sweeper visits every connection: the precision of the connection deadlines.
const SWEEP_PERIOD: Duration = Duration::from_millis(250);

/// How long after the shutdown grace the connections are closed, so that the streams cut at
/// the grace can send their closing error event.
const DRAIN_MARGIN: Duration = Duration::from_millis(250);

/// Concurrent HTTP/2 streams per connection.
pub const HTTP2_MAX_STREAMS: u32 = 128;

/// The largest header list an HTTP/2 client may send (HTTP/1.1 is bounded by hyper's read buffer).
pub const HTTP2_MAX_HEADER_LIST: u32 = 64 << 10;

/// How the workers divide the connections among themselves.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    /// The number of workers, each taking an equal part of the limit.
    pub workers: usize,
    /// The connections the open-file limit leaves room for, in all (see [`super::open_files`]).
    pub room: usize,
}

/// The connections of one worker.
pub struct Connections {
    gateway: Arc<Gateway>,
    app: Edge,
    builders: Arc<Builders>,
    graceful: GracefulShutdown,
    /// Set when the worker stops: connections still waiting for their first bytes close.
    stopping: watch::Sender<bool>,
    /// In the order they were accepted; closed ones are pruned as the sweeper and eviction pass.
    trackers: VecDeque<Arc<Tracker>>,
    open: Arc<AtomicUsize>,
    share: Share,
    epoch: Instant,
}

impl Connections {
    /// The connections of one worker serving `app` for `gateway`, with its `share` of them.
    pub fn new(gateway: Arc<Gateway>, app: Edge, share: Share) -> Self {
        Self {
            gateway,
            app,
            builders: Arc::new(http_builders()),
            graceful: GracefulShutdown::new(),
            stopping: watch::Sender::new(false),
            trackers: VecDeque::new(),
            open: Arc::new(AtomicUsize::new(0)),
            share,
            epoch: Instant::now(),
        }
    }

    /// Serves connections from `incoming` until `stop` resolves, then lets them finish for at
    /// most `grace` and closes what is left.
    pub async fn run(
        mut self,
        mut incoming: mpsc::Receiver<std::net::TcpStream>,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) {
        let mut sweep = tokio::time::interval(SWEEP_PERIOD);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        let mut accepting = true;
        loop {
            tokio::select! {
                () = &mut stop => break,
                accepted = incoming.recv(), if accepting => match accepted.map(TcpStream::from_std) {
                    Some(Ok(stream)) => self.admit(stream),
                    Some(Err(error)) => tracing::warn!("cannot serve a connection: {error}"),
                    // The acceptor is gone: only `stop` ends this worker now.
                    None => accepting = false,
                },
                _ = sweep.tick() => self.sweep(),
            }
        }
        // Streams still running at the end of the grace end with an error event that says
        // why; the connections close a moment later, once those events are written.
        let stopped = Instant::now();
        self.stopping.send_replace(true);
        self.gateway.drain(stopped + grace);
        let trackers = std::mem::take(&mut self.trackers);
        let settings = self.gateway.config().server.clone();
        let drained = self.graceful.shutdown();
        tokio::pin!(drained);
        let over = tokio::time::sleep_until(stopped + grace + DRAIN_MARGIN);
        tokio::pin!(over);
        loop {
            tokio::select! {
                () = &mut drained => return,
                () = &mut over => break,
                _ = sweep.tick() => sweep_all(&trackers, &deadlines(&settings), &self.gateway),
            }
        }
        tracing::warn!("shutdown grace period of {grace:?} over: closing remaining connections");
        for tracker in &trackers {
            tracker.close();
        }
    }

    /// Takes a new connection, making room for it at the limit.
    fn admit(&mut self, stream: TcpStream) {
        let metrics = self.gateway.metrics().clone();
        let configured = self.gateway.config().server.max_connections as usize;
        let limit = configured
            .min(self.share.room)
            .div_ceil(self.share.workers.max(1));
        if self.open.load(Relaxed) >= limit && !self.evict_one() {
            metrics.connection_closed(CloseReason::Refused.label());
            return;
        }
        let tracker = Arc::new(Tracker::new(self.epoch));
        self.trackers.push_back(tracker.clone());
        self.open.fetch_add(1, Relaxed);
        metrics.connections_open(1);
        let watched = tracker.clone();
        let body_timeout = self.gateway.config().server.body_timeout;
        let app = self.app.clone();
        let requests = tracker.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let guard = requests.begin_request(request.version() == Version::HTTP_2);
            let request =
                request.map(|body| axum::body::Body::new(Deadlined::new(body, body_timeout)));
            // Boxed: hyper keeps the box it puts this future in (emptied) for as long as the
            // connection is open, so the handler goes in a box of its own, freed once it
            // answers; a connection that streams its answer then holds a few words for it.
            let response = Box::pin(app.clone().oneshot(request));
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Guarded::new(body, guard)))
            }
        });
        let watcher = self.graceful.watcher();
        let builders = self.builders.clone();
        let mut stopping = self.stopping.subscribe();
        let open = self.open.clone();
        tokio::spawn(async move {
            let serve = async {
                let sniffed = tokio::select! {
                    sniffed = sniff(&stream) => sniffed,
                    _ = stopping.wait_for(|stopping| *stopping) => return,
                };
                let io = TokioIo::new(Watched::new(stream, watched));
                if sniffed == Sniffed::Http1 {
                    let connection = builders.http1().serve_connection(io, service);
                    let _ = watcher.watch(connection).await;
                } else {
                    // Boxed: the automatic connection has room for HTTP/2's state, which the
                    // HTTP/1.1 connections (most of them) need not carry.
                    let connection = builders
                        .other(sniffed)
                        .serve_connection(io, service)
                        .into_owned();
                    let _ = Box::pin(watcher.watch(connection)).await;
                }
            };
            tokio::select! {
                () = serve => {}
                () = tracker.closing() => {}
            }
            tracker.set_closed();
            open.fetch_sub(1, Relaxed);
            metrics.connections_open(-1);
        });
    }

    /// Closes the connection that matters least to make room for a new one; false when every
    /// connection is serving a request.
    fn evict_one(&mut self) -> bool {
        while self.trackers.front().is_some_and(|t| t.is_closed()) {
            self.trackers.pop_front();
        }
        let pick = |headless: bool| {
            self.trackers
                .iter()
                .position(|t| !t.is_closed() && t.evictable() == Some(headless))
        };
        let Some(index) = pick(true).or_else(|| pick(false)) else {
            return false;
        };
        if let Some(tracker) = self.trackers.remove(index) {
            close(&tracker, CloseReason::Evicted, &self.gateway);
        }
        true
    }

    /// Closes every connection past its deadline and forgets the closed ones.
    fn sweep(&mut self) {
        let deadlines = deadlines(&self.gateway.config().server);
        sweep_all(&self.trackers, &deadlines, &self.gateway);
        self.trackers.retain(|tracker| !tracker.is_closed());
    }
}

fn sweep_all<'a>(
    trackers: impl IntoIterator<Item = &'a Arc<Tracker>>,
    deadlines: &Deadlines,
    gateway: &Gateway,
) {
    let now = Instant::now();
    for tracker in trackers {
        if tracker.is_closed() {
            continue;
        }
        if let Some(reason) = tracker.overdue(now, deadlines) {
            close(tracker, reason, gateway);
        }
    }
}

fn close(tracker: &Tracker, reason: CloseReason, gateway: &Gateway) {
    tracker.set_closed();
    tracker.close();
    gateway.metrics().connection_closed(reason.label());
}

fn deadlines(settings: &ServerSettings) -> Deadlines {
    Deadlines {
        header: settings.header_timeout,
        body: settings.body_timeout,
        idle: settings.idle_timeout,
    }
}

/// hyper's HTTP/1.1 and HTTP/2 servers with the gateway's limits. Header and idle deadlines
/// are the sweeper's (see the module documentation), so hyper's own header timer is off.
fn http_builders() -> Builders {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(None);
    Builders::new(http1, auto_builder())
}

/// The automatic builder: HTTP/1.1 with the settings of [`http_builders`]'s own, and HTTP/2.
fn auto_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256));
    builder
}
