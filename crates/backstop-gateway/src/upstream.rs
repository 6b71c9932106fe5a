//! The HTTP client to upstream providers: pooled clients (keep-alive, HTTP/1.1
//! and HTTP/2 by ALPN, rustls), each provider's endpoint and auth headers.
//! It never retries on its own: retries happen in the pipeline's one loop.

use crate::config::Target;
use backstop_protocol::Protocol;
use bytes::Bytes;
use http::HeaderMap;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

/// Client headers that are forwarded upstream when caller and target speak the same protocol.
const FORWARDED_HEADERS: [&str; 2] = ["anthropic-beta", "openai-beta"];

thread_local! {
    /// The connection pool this thread sends through: 0 unless the thread was given its own.
    static POOL: Cell<usize> = const { Cell::new(0) };
}

/// Gives the calling thread connection pool `index` (counted from 1) of every
/// [`UpstreamClient`]. A single-threaded runtime that owns its own pool finds its
/// connections' tasks on its own thread, so a request never waits on another thread.
pub fn use_own_pool(index: usize) {
    POOL.with(|pool| pool.set(index));
}

/// Pooled HTTP clients for every upstream: one shared pool, plus one per thread
/// that asked for its own with [`use_own_pool`].
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    shared: reqwest::Client,
    own: Arc<[reqwest::Client]>,
}

impl UpstreamClient {
    /// Builds the shared client and `threads` own ones, all with the given connect timeout.
    /// Each loads the trusted certificates, so this is done up front rather than on the
    /// first request of each thread.
    pub fn new(connect_timeout: Duration, threads: usize) -> Result<Self, reqwest::Error> {
        Ok(Self {
            shared: Self::build(connect_timeout)?,
            own: (0..threads.max(1))
                .map(|_| Self::build(connect_timeout))
                .collect::<Result<_, _>>()?,
        })
    }

    fn build(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .http2_adaptive_window(true)
            .retry(reqwest::retry::never())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("backstop/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The pool of the calling thread.
    fn http(&self) -> &reqwest::Client {
        match POOL.with(Cell::get) {
            0 => &self.shared,
            index => &self.own[(index - 1) % self.own.len()],
        }
    }

    /// A request to `target` carrying `body`, with the provider's auth and extra headers.
    /// `client_headers` are the caller's headers; only protocol feature flags are forwarded,
    /// and only to a target of the caller's own protocol. Credentials never are.
    pub fn request(
        &self,
        target: &Target,
        stream: bool,
        body: Bytes,
        caller: Protocol,
        client_headers: &HeaderMap,
    ) -> reqwest::RequestBuilder {
        let provider = &target.provider;
        let mut request = self
            .http()
            .post(target.endpoint(stream).clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        if stream {
            request = request.header(http::header::ACCEPT, "text/event-stream");
        }
        request = match (provider.kind, &provider.api_key) {
            (Protocol::OpenAi, Some(key)) => request.bearer_auth(key.expose()),
            (Protocol::Anthropic, Some(key)) => request.header("x-api-key", key.expose()),
            (Protocol::Gemini, Some(key)) => request.header("x-goog-api-key", key.expose()),
            (Protocol::OpenAi | Protocol::Anthropic | Protocol::Gemini, None) => request,
        };
        if provider.kind == Protocol::Anthropic {
            request = request.header("anthropic-version", &provider.anthropic_version);
        }
        if caller == provider.kind {
            for name in FORWARDED_HEADERS {
                if let Some(value) = client_headers.get(name) {
                    request = request.header(name, value);
                }
            }
        }
        for (name, value) in &provider.headers {
            request = request.header(name, value);
        }
        request.body(body)
    }
}
