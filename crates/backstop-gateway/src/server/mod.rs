//! The HTTP server: the edge (request id, panic guard, the model routes), the router, connections held to
//! their deadlines and bounded in number, and graceful shutdown bounded by a grace period, on
//! the caller's runtime or on a single-threaded runtime per core.

mod connection;
mod connections;
mod edge;
mod hangup;
mod open_files;
mod sniff;
mod threads;

pub use crate::http::REQUEST_ID;
pub use edge::{Edge, EdgeFuture};
pub use hangup::reload_on_hangup;
pub use threads::serve_on_threads;

use crate::pipeline::Gateway;
use crate::routes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The full application: the router behind the edge (request id, span, panic guard).
pub fn app(gateway: Arc<Gateway>) -> Edge {
    Edge::new(gateway.clone(), routes::router(gateway))
}

/// Serves `gateway` on `listener`, on the caller's runtime, until `shutdown` resolves, then
/// lets in-flight requests and streams finish for at most `grace`.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    threads::serve_on_runtime(gateway, listener, shutdown, grace).await
}

/// A task that keeps a timer due within the next second, for as long as it lives.
///
/// Every request arms deadlines (`first_byte`, `idle`, `total`) of many seconds. When such a
/// deadline is earlier than every timer the runtime is sleeping on, tokio wakes its timer
/// driver to re-arm it, which costs a system call and, on the multi-threaded runtime, often
/// moves the request to another worker thread. With a timer always due sooner, a new deadline
/// never is the earliest, and a request goes from client to upstream on one thread.
pub(super) struct TimerHeartbeat(tokio::task::JoinHandle<()>);

impl TimerHeartbeat {
    const PERIOD: Duration = Duration::from_secs(1);

    pub(super) fn start() -> Self {
        Self(tokio::spawn(async {
            let mut ticks = tokio::time::interval(Self::PERIOD);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
            }
        }))
    }
}

impl Drop for TimerHeartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
