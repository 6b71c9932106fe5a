//! The HTTP client the chat and embeddings calls go through: hyper-util's pooled client with
//! rustls (ALPN h2 and http/1.1), and the small request, response and error types around it.

use super::connect::Connector;
use crate::pipeline::OutgoingBody;
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A request to an upstream: its method, URI, headers and body.
pub type UpstreamRequest = http::Request<OutgoingBody>;

/// A pool of connections to every upstream.
pub type HttpClient = Client<Connector, OutgoingBody>;

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the upstream client's TLS: {0}")]
pub struct ClientBuildError(#[from] rustls::Error);

/// Builds a pool: connect timeout, TCP nodelay and keepalive, idle connections kept 90 s and
/// up to 1,024 per host, HTTP/2 by ALPN with an adaptive window, through `proxies` where they
/// say. No redirects are followed.
pub fn build(
    connect_timeout: Duration,
    proxies: Option<Arc<Matcher>>,
) -> Result<HttpClient, ClientBuildError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(30)));
    let mut tls = crate::client::tls_config()?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = Connector::new(http, tls, proxies);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .http2_adaptive_window(true)
        .build(connector))
}

/// What kind of transport failure happened, for its description and class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No connection could be made (refused, unresolvable, TLS handshake rejected).
    Connect,
    /// An operation took longer than its limit.
    Timeout,
    /// The response body broke off.
    Body,
    /// The connection failed around the request, before a response.
    Request,
    /// Anything else (a request that could not be built).
    Other,
}

/// A transport error: its kind and its cause, never the URL (which may carry a key).
#[derive(Debug)]
pub struct TransportError {
    kind: TransportKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl TransportError {
    /// An error of `kind` caused by `source`.
    pub fn new(
        kind: TransportKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    fn sending(error: hyper_util::client::legacy::Error) -> Self {
        let kind = if error.is_connect() {
            if timed_out(&error) {
                TransportKind::Timeout
            } else {
                TransportKind::Connect
            }
        } else {
            TransportKind::Request
        };
        Self::new(kind, error)
    }

    fn body(error: hyper::Error) -> Self {
        let kind = if error.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Body
        };
        Self::new(kind, error)
    }
}

/// Whether an `io::Error` of kind `TimedOut` is in `error`'s chain (a connect timeout).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

impl From<reqwest::Error> for TransportError {
    fn from(error: reqwest::Error) -> Self {
        let kind = if error.is_connect() {
            TransportKind::Connect
        } else if error.is_timeout() {
            TransportKind::Timeout
        } else if error.is_body() || error.is_decode() {
            TransportKind::Body
        } else if error.is_request() {
            TransportKind::Request
        } else {
            TransportKind::Other
        };
        Self::new(kind, error.without_url())
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Sends `request` through `client`.
pub fn send(
    client: &HttpClient,
    request: UpstreamRequest,
) -> impl Future<Output = Result<UpstreamResponse, TransportError>> + Send + 'static {
    let response = client.request(request);
    async move {
        let response = response.await.map_err(TransportError::sending)?;
        Ok(UpstreamResponse(response))
    }
}

/// An upstream's answer: status, headers, and a body read as a stream of `Bytes`.
#[derive(Debug)]
pub struct UpstreamResponse(http::Response<Incoming>);

impl UpstreamResponse {
    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    /// Its headers.
    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    /// The body's length, when the upstream announced it.
    pub fn content_length(&self) -> Option<u64> {
        http_body::Body::size_hint(self.0.body()).exact()
    }

    /// The next piece of the body, `None` at its end (trailers are skipped).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        next_data(self.0.body_mut()).await
    }

    /// The body as a stream of pieces.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, TransportError>> + Send + Unpin {
        let body = self.0.into_body();
        Box::pin(stream::unfold(body, |mut body| async move {
            next_data(&mut body)
                .await
                .transpose()
                .map(|item| (item, body))
        }))
    }
}

/// The next data frame of `body`, skipping any other frame.
async fn next_data(body: &mut Incoming) -> Result<Option<Bytes>, TransportError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(error)) => return Err(TransportError::body(error)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}
