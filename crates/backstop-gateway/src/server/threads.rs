//! Serving on a single-threaded runtime per core.
//!
//! The acceptor, on the caller's runtime, hands each new connection to the next worker thread
//! in turn. Each worker runs its own single-threaded tokio runtime and sends upstream through
//! its own connection pool, so a request is read, forwarded and answered on one thread: no
//! task moves between threads and no thread wakes another. Breakers, metrics and the
//! configuration stay shared by all workers.

use super::serve_on;
use crate::pipeline::Gateway;
use crate::upstream;
use axum::serve::Listener;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// Serves `gateway` on `listener` with `threads` worker threads until `shutdown` resolves,
/// then stops accepting and lets each worker's in-flight requests finish for at most `grace`.
pub async fn serve_on_threads(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let mut workers = (1..=threads.max(1))
        .map(|index| Worker::start(index, gateway.clone(), address, stopped.clone(), grace))
        .collect::<io::Result<Vec<_>>>()?;
    tokio::pin!(shutdown);
    let mut next = 0;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match stream.into_std() {
                        Ok(stream) => next = hand_over(&mut workers, next, stream, peer)?,
                        Err(error) => tracing::warn!("cannot hand over a connection: {error}"),
                    }
                }
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let mut result = Ok(());
    for worker in workers {
        if let Err(error) = worker.finished().await {
            result = Err(error);
        }
    }
    result
}

/// Hands `stream` to worker `next`, or the first live one after it, and returns where to
/// start next time. A worker whose thread has died leaves the rotation; an error when none
/// is left.
fn hand_over(
    workers: &mut Vec<Worker>,
    next: usize,
    mut stream: std::net::TcpStream,
    peer: SocketAddr,
) -> io::Result<usize> {
    let mut index = next;
    while !workers.is_empty() {
        index %= workers.len();
        match workers[index].connections.send((stream, peer)) {
            Ok(()) => return Ok(index + 1),
            Err(mpsc::error::SendError((returned, _))) => {
                tracing::error!("a worker thread has stopped: serving on the others");
                workers.remove(index);
                stream = returned;
            }
        }
    }
    Err(io::Error::other("every worker thread has stopped"))
}

/// One worker thread and the way to reach it.
struct Worker {
    connections: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    done: oneshot::Receiver<io::Result<()>>,
}

impl Worker {
    fn start(
        index: usize,
        gateway: Arc<Gateway>,
        address: SocketAddr,
        mut stopped: watch::Receiver<bool>,
        grace: Duration,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (connections, incoming) = mpsc::unbounded_channel();
        let (finish, done) = oneshot::channel();
        let listener = Handover { incoming, address };
        let stop = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        std::thread::Builder::new()
            .name(format!("backstop-worker-{index}"))
            .spawn(move || {
                upstream::use_own_pool();
                let result = runtime.block_on(serve_on(gateway, listener, stop, grace));
                let _ = finish.send(result);
            })?;
        Ok(Self { connections, done })
    }

    async fn finished(self) -> io::Result<()> {
        drop(self.connections);
        self.done
            .await
            .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")))
    }
}

/// The listener a worker serves: the connections the acceptor hands over to it.
struct Handover {
    incoming: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    address: SocketAddr,
}

impl Listener for Handover {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.incoming.recv().await else {
                // The acceptor is gone: only shutdown ends this worker now.
                return std::future::pending().await;
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(error) => tracing::warn!("cannot serve the connection from {peer}: {error}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Incoming = mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>;

    fn worker() -> (Worker, Incoming) {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (_finish, done) = oneshot::channel();
        (Worker { connections, done }, incoming)
    }

    fn connection(listener: &std::net::TcpListener) -> (std::net::TcpStream, SocketAddr) {
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let peer = stream.local_addr().unwrap();
        (stream, peer)
    }

    #[test]
    fn connections_go_round_and_a_dead_worker_leaves_the_rotation() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ((a, mut a_in), (b, b_in), (c, mut c_in)) = (worker(), worker(), worker());
        drop(b_in);
        let mut workers = vec![a, b, c];
        let mut next = 0;
        for _ in 0..4 {
            let (stream, peer) = connection(&listener);
            next = hand_over(&mut workers, next, stream, peer).unwrap();
        }
        assert_eq!(workers.len(), 2);
        let count =
            |incoming: &mut Incoming| std::iter::from_fn(|| incoming.try_recv().ok()).count();
        assert_eq!((count(&mut a_in), count(&mut c_in)), (2, 2));
        drop((a_in, c_in));
        let (stream, peer) = connection(&listener);
        assert!(hand_over(&mut workers, next, stream, peer).is_err());
        assert!(workers.is_empty());
    }
}
