//! The floor of the benchmarks, the "bare proxy" row of `bench/direct.sh`: a reverse proxy made
//! of the parts Backstop's request path is made of (hyper's HTTP/1 server, hyper-util's pooled
//! client, one single-threaded tokio runtime per core), forwarding every request to one upstream
//! and its answer back as it comes, and doing nothing else: no parsing, no policy, no metrics,
//! no log. What it costs is what the HTTP stack and the kernel cost; what Backstop costs beyond
//! it is Backstop's own.
//!
//! usage: `bench-proxy UPSTREAM-URL [THREADS]` (threads default to the cores); prints
//! `listening on http://ADDR`.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::TcpListener;
use std::sync::Arc;

type Upstream = Client<HttpConnector, Incoming>;

/// Forwards `request` to `base` (its path and query kept), and the upstream's answer back.
async fn forward(
    client: Upstream,
    base: Arc<Uri>,
    mut request: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path);
    *request.uri_mut() = Uri::from_parts(parts)?;
    request.headers_mut().remove(http::header::HOST);
    Ok(client.request(request).await?)
}

/// One worker: its own runtime, its own pool, accepting on its own handle of the listener.
fn worker(listener: TcpListener, base: Arc<Uri>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            // A failed accept (a connection reset before it was taken, no file descriptor
            // left) ends that connection, not the proxy.
            let Ok((socket, _)) = listener.accept().await else {
                tokio::task::yield_now().await;
                continue;
            };
            if socket.set_nodelay(true).is_err() {
                continue;
            }
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let service =
                    service_fn(move |request| forward(client.clone(), base.clone(), request));
                // A client that goes away mid-request is no concern of a benchmark proxy.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    })
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let base: Uri = args
        .next()
        .and_then(|url| url.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: bench-proxy UPSTREAM-URL [THREADS]"))?;
    let threads = match args.next() {
        Some(n) => n.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
            std::io::Error::other(format!("THREADS must be a positive number, not {n:?}"))
        })?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    println!("listening on http://{}", listener.local_addr()?);
    let base = Arc::new(base);
    let workers = (0..threads)
        .map(|_| {
            let (listener, base) = (listener.try_clone()?, base.clone());
            Ok(std::thread::spawn(move || worker(listener, base)))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    for worker in workers {
        worker
            .join()
            .map_err(|_| std::io::Error::other("a worker panicked"))??;
    }
    Ok(())
}
