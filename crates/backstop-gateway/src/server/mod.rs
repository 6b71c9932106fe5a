//! The HTTP server: edge layers (request id, panic catcher), the router, connections held to
//! their deadlines and bounded in number, and graceful shutdown bounded by a grace period, on
//! the caller's runtime or on a single-threaded runtime per core.

mod connection;
mod connections;
mod hangup;
mod open_files;
mod threads;

pub use hangup::reload_on_hangup;
pub use threads::serve_on_threads;

use crate::pipeline::Gateway;
use crate::routes;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http::HeaderValue;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

/// The full application: routes plus edge layers.
pub fn app(gateway: Arc<Gateway>) -> Router {
    routes::router(gateway)
        .layer(middleware::from_fn(request_id))
        .layer(CatchPanicLayer::new())
}

/// Accepts the client's `x-request-id` (if sane) or makes one, and returns it on the response.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .filter(|v| v.len() <= 128 && !v.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&new_request_id()).unwrap_or(HeaderValue::from_static("unknown"))
        });
    request.headers_mut().insert("x-request-id", id.clone());
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or_default());
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert("x-request-id", id);
    response
}

/// A random version-4 UUID from the thread-local generator (no system call per request).
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
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
