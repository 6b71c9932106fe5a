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
    let workers = (1..=threads.max(1))
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
                        Ok(stream) => {
                            workers[next].hand_over(stream, peer);
                            next = (next + 1) % workers.len();
                        }
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
                upstream::use_own_pool(index);
                let result = runtime.block_on(serve_on(gateway, listener, stop, grace));
                let _ = finish.send(result);
            })?;
        Ok(Self { connections, done })
    }

    fn hand_over(&self, stream: std::net::TcpStream, peer: SocketAddr) {
        if self.connections.send((stream, peer)).is_err() {
            tracing::error!("a worker thread has stopped: connection from {peer} dropped");
        }
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
