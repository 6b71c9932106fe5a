//! A healthy OTLP/HTTP collector for `bench/telemetry.sh`: takes every POST to `/v1/traces`,
//! counts its bytes and answers 200, on one thread (a real collector runs on another machine;
//! this one takes as little of the gateway's cores as it can). `GET /stats` answers
//! `batches N bytes M`: how many export requests came and how large they were in all.
//!
//! Prints `listening on http://127.0.0.1:PORT` once it accepts connections.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the sink has received so far.
#[derive(Default)]
struct Received {
    batches: AtomicU64,
    bytes: AtomicU64,
}

async fn receive(State(received): State<Arc<Received>>, body: Bytes) -> &'static str {
    received.batches.fetch_add(1, Ordering::Relaxed);
    received
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    ""
}

async fn stats(State(received): State<Arc<Received>>) -> String {
    format!(
        "batches {} bytes {}\n",
        received.batches.load(Ordering::Relaxed),
        received.bytes.load(Ordering::Relaxed)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .route("/stats", get(stats))
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(Arc::<Received>::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
