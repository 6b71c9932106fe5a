//! The acceptor and the workers it hands connections to.
//!
//! The acceptor, on the caller's runtime, hands each new connection to the next worker in turn.
//! `backstop serve` runs one worker per core, each on its own thread with a single-threaded
//! tokio runtime and its own upstream connection pool, so a request is read, forwarded and
//! answered on one thread: no task moves between threads and no thread wakes another. Tests,
//! drills and the demo run one worker on the caller's runtime. Breakers, metrics and the
//! configuration stay shared by all workers.

use super::connections::{Connections, Share};
use super::open_files;
use super::{app, TimerHeartbeat};
use crate::pipeline::Gateway;
use crate::upstream;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// Connections accepted but not yet taken by a worker, per worker. A worker that falls this far
/// behind gets no more until it catches up; when every worker is that far behind, a new
/// connection is refused.
const HANDOVER_QUEUE: usize = 1024;

/// The longest pause of the acceptor after a failed `accept` (out of file descriptors).
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves `gateway` on `listener` with `threads` worker threads until `shutdown` resolves,
/// then stops accepting and lets each worker's in-flight requests finish for at most `grace`.
pub async fn serve_on_threads(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> io::Result<()> {
    let threads = threads.max(1);
    let room = room_for_connections(&gateway);
    let (stop, stopped) = watch::channel(false);
    let workers = (1..=threads)
        .map(|index| {
            Worker::on_thread(
                index,
                Share {
                    workers: threads,
                    room,
                },
                gateway.clone(),
                stopped.clone(),
                grace,
            )
        })
        .collect::<io::Result<Vec<_>>>()?;
    accept_until(listener, workers, shutdown, stop, &gateway).await
}

/// Serves `gateway` on `listener` with one worker on the caller's runtime.
pub async fn serve_on_runtime(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> io::Result<()> {
    let room = room_for_connections(&gateway);
    let (stop, stopped) = watch::channel(false);
    let worker = Worker::on_task(gateway.clone(), room, stopped, grace);
    accept_until(listener, vec![worker], shutdown, stop, &gateway).await
}

/// The client connections the open-file limit leaves room for, with a warning when that is
/// fewer than `server.max_connections`.
fn room_for_connections(gateway: &Gateway) -> usize {
    let room = open_files::connection_room();
    let configured = gateway.config().server.max_connections;
    if (configured as usize) > room {
        tracing::warn!(
            "server.max_connections = {configured} does not fit in the open-file limit: at most {room} client connections will be open (raise it with `ulimit -n`)"
        );
    }
    room
}

/// Accepts connections and hands them to `workers` until `shutdown`, then tells the workers to
/// stop, waits for them, and sends the last spans.
async fn accept_until(
    listener: TcpListener,
    mut workers: Vec<Worker>,
    shutdown: impl Future<Output = ()> + Send,
    stop: watch::Sender<bool>,
    gateway: &Gateway,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    let mut pause = AcceptPause::default();
    let mut next = 0;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    pause.reset();
                    let _ = stream.set_nodelay(true);
                    match stream.into_std() {
                        Ok(stream) => next = hand_over(&mut workers, next, stream, gateway)?,
                        Err(error) => tracing::warn!("cannot hand over a connection: {error}"),
                    }
                }
                Err(error) => pause.after(error).await,
            },
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    drop(listener);
    let _ = stop.send(true);
    let mut result = Ok(());
    for worker in workers {
        if let Err(error) = worker.finished().await {
            result = Err(error);
        }
    }
    if let Some(state) = gateway.state() {
        if let Err(error) = state.store().flush().await {
            tracing::warn!("answers of Idempotency-Keys not written at shutdown: {error}");
        }
    }
    if let Some(telemetry) = gateway.telemetry() {
        telemetry.flush().await;
    }
    result
}

/// The acceptor's pause after a failed `accept`: a connection the peer already gave up on is
/// skipped at once; anything else (out of file descriptors, mostly) pauses the acceptor for a
/// time that doubles while the failures last, logged once per run of failures.
#[derive(Debug, Default)]
struct AcceptPause {
    current: Option<Duration>,
    failures: u64,
}

impl AcceptPause {
    const FIRST: Duration = Duration::from_millis(5);

    async fn after(&mut self, error: io::Error) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            error.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        self.failures += 1;
        let pause = match self.current {
            None => {
                tracing::warn!("accept failed: {error}; pausing new connections while it lasts");
                Self::FIRST
            }
            Some(previous) => (previous * 2).min(MAX_ACCEPT_PAUSE),
        };
        self.current = Some(pause);
        tokio::time::sleep(pause).await;
    }

    fn reset(&mut self) {
        if self.current.take().is_some() {
            tracing::warn!(
                failures = self.failures,
                "accepting connections again after failed accepts"
            );
            self.failures = 0;
        }
    }
}

/// Hands `stream` to worker `next`, or the first after it with room, and returns where to start
/// next time. A worker that has stopped leaves the rotation; an error when none is left. When
/// every worker's queue is full the connection is refused (closed).
fn hand_over(
    workers: &mut Vec<Worker>,
    next: usize,
    mut stream: std::net::TcpStream,
    gateway: &Gateway,
) -> io::Result<usize> {
    let mut index = next;
    let mut tried = 0;
    while !workers.is_empty() && tried < workers.len() {
        index %= workers.len();
        match workers[index].connections.try_send(stream) {
            Ok(()) => return Ok(index + 1),
            Err(mpsc::error::TrySendError::Full(returned)) => {
                stream = returned;
                index += 1;
                tried += 1;
            }
            Err(mpsc::error::TrySendError::Closed(returned)) => {
                tracing::error!("a worker has stopped: serving on the others");
                workers.remove(index);
                stream = returned;
            }
        }
    }
    if workers.is_empty() {
        return Err(io::Error::other("every worker has stopped"));
    }
    drop(stream);
    gateway
        .metrics()
        .connection_closed(super::connection::CloseReason::Refused.label());
    Ok(index)
}

/// One worker and the way to reach it.
struct Worker {
    connections: mpsc::Sender<std::net::TcpStream>,
    done: oneshot::Receiver<()>,
}

impl Worker {
    /// Worker `index`, with its `share` of the connections, on a thread of its own.
    fn on_thread(
        index: usize,
        share: Share,
        gateway: Arc<Gateway>,
        stopped: watch::Receiver<bool>,
        grace: Duration,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (connections, incoming) = mpsc::channel(HANDOVER_QUEUE);
        let (finish, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("backstop-worker-{index}"))
            .spawn(move || {
                upstream::use_own_pool();
                runtime.block_on(work(gateway, share, incoming, stopped, grace));
                let _ = finish.send(());
            })?;
        Ok(Self { connections, done })
    }

    /// The only worker, on the caller's runtime.
    fn on_task(
        gateway: Arc<Gateway>,
        room: usize,
        stopped: watch::Receiver<bool>,
        grace: Duration,
    ) -> Self {
        let (connections, incoming) = mpsc::channel(HANDOVER_QUEUE);
        let (finish, done) = oneshot::channel();
        tokio::spawn(async move {
            work(
                gateway,
                Share { workers: 1, room },
                incoming,
                stopped,
                grace,
            )
            .await;
            let _ = finish.send(());
        });
        Self { connections, done }
    }

    async fn finished(self) -> io::Result<()> {
        drop(self.connections);
        self.done
            .await
            .map_err(|_| io::Error::other("a worker thread panicked"))
    }
}

/// A worker's life: serve what it is handed until told to stop.
async fn work(
    gateway: Arc<Gateway>,
    share: Share,
    incoming: mpsc::Receiver<std::net::TcpStream>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) {
    let _heartbeat = TimerHeartbeat::start();
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    Connections::new(gateway.clone(), app(gateway), share)
        .run(incoming, stop, grace)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    type Incoming = mpsc::Receiver<std::net::TcpStream>;

    fn worker(queue: usize) -> (Worker, Incoming) {
        let (connections, incoming) = mpsc::channel(queue);
        let (_finish, done) = oneshot::channel();
        (Worker { connections, done }, incoming)
    }

    fn connection(listener: &std::net::TcpListener) -> std::net::TcpStream {
        std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap()
    }

    fn gateway() -> Gateway {
        let config = crate::config::parse("", &|_| None).unwrap();
        Gateway::new(config).unwrap()
    }

    fn count(incoming: &mut Incoming) -> usize {
        std::iter::from_fn(|| incoming.try_recv().ok()).count()
    }

    #[test]
    fn connections_go_round_and_a_dead_worker_leaves_the_rotation() {
        let gateway = gateway();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ((a, mut a_in), (b, b_in), (c, mut c_in)) = (worker(8), worker(8), worker(8));
        drop(b_in);
        let mut workers = vec![a, b, c];
        let mut next = 0;
        for _ in 0..4 {
            next = hand_over(&mut workers, next, connection(&listener), &gateway).unwrap();
        }
        assert_eq!(workers.len(), 2);
        assert_eq!((count(&mut a_in), count(&mut c_in)), (2, 2));
        drop((a_in, c_in));
        assert!(hand_over(&mut workers, next, connection(&listener), &gateway).is_err());
        assert!(workers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_pause_the_acceptor_longer_each_time_up_to_a_second() {
        let mut pause = AcceptPause::default();
        let out_of_files = || io::Error::from_raw_os_error(24);
        let mut pauses = Vec::new();
        for _ in 0..10 {
            let started = tokio::time::Instant::now();
            pause.after(out_of_files()).await;
            pauses.push(started.elapsed().as_millis());
        }
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        let started = tokio::time::Instant::now();
        pause.after(io::ErrorKind::ConnectionAborted.into()).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        pause.reset();
        pause.after(out_of_files()).await;
        assert_eq!(pause.current, Some(AcceptPause::FIRST));
    }

    #[test]
    fn a_full_worker_is_passed_over_and_when_all_are_full_the_connection_is_refused() {
        let gateway = gateway();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ((a, mut a_in), (b, mut b_in)) = (worker(1), worker(3));
        let mut workers = vec![a, b];
        let mut next = 0;
        for _ in 0..5 {
            next = hand_over(&mut workers, next, connection(&listener), &gateway).unwrap();
        }
        assert_eq!((count(&mut a_in), count(&mut b_in)), (1, 3));
        assert_eq!(workers.len(), 2);
        assert!(gateway
            .metrics()
            .render()
            .contains("backstop_connections_closed_total{reason=\"refused\"} 1"));
    }
}
