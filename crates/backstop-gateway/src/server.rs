//! The HTTP server: edge layers (request id, panic catcher), the router, and
//! graceful shutdown bounded by a grace period.

use crate::pipeline::Gateway;
use crate::routes;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use http::HeaderValue;
use std::future::{Future, IntoFuture};
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

/// Serves `gateway` on `listener` until `shutdown` resolves, then lets in-flight
/// requests and streams finish for at most `grace`.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let stopping = Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app(gateway)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        notify.notify_one();
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace period of {grace:?} over: closing remaining connections");
            Ok(())
        }
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
