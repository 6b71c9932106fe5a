//! The HTTP client to upstream providers: pooled clients (keep-alive, HTTP/1.1
//! and HTTP/2 by ALPN, rustls), each provider's endpoint and auth headers.
//! It never retries on its own: retries happen in the pipeline's one loop.

use crate::config::{Provider, Target};
use backstop_protocol::{Protocol, ProviderSpec};
use http::HeaderMap;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tells [`UpstreamClient`]s apart, for the per-thread pools.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Whether this thread sends through a pool of its own.
    static WANTS_OWN_POOL: Cell<bool> = const { Cell::new(false) };
    /// This thread's own pool, and the id of the [`UpstreamClient`] it was built for.
    static OWN_POOL: RefCell<Option<(u64, reqwest::Client)>> = const { RefCell::new(None) };
}

/// Makes every [`UpstreamClient`] send the calling thread's requests through a connection
/// pool of that thread's own. A single-threaded runtime with its own pool finds its
/// connections' tasks on its own thread, so a request never waits on another thread.
pub fn use_own_pool() {
    WANTS_OWN_POOL.with(|wants| wants.set(true));
}

/// Pooled HTTP clients for every upstream: one shared pool, plus one per thread that asked
/// for its own with [`use_own_pool`], built on that thread's first request.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    id: u64,
    connect_timeout: Duration,
    shared: reqwest::Client,
}

impl UpstreamClient {
    /// Builds the client with the given connect timeout.
    pub fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
            shared: Self::build(connect_timeout)?,
        })
    }

    fn build(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        crate::client::builder()
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

    /// The pool of the calling thread: its own one if it asked for it (built the first time,
    /// and again after a reload replaced this client), else the shared one.
    fn http(&self) -> reqwest::Client {
        if !WANTS_OWN_POOL.with(Cell::get) {
            return self.shared.clone();
        }
        OWN_POOL.with_borrow_mut(|own| match own {
            Some((id, client)) if *id == self.id => client.clone(),
            _ => {
                let client = Self::build(self.connect_timeout).unwrap_or_else(|error| {
                    tracing::warn!("cannot build a worker's own upstream pool, sharing: {error}");
                    self.shared.clone()
                });
                *own = Some((self.id, client.clone()));
                client
            }
        })
    }

    /// Sends a request built by [`UpstreamClient::request`] (and signed, where its channel
    /// signs).
    pub async fn execute(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        self.http().execute(request).await
    }

    /// A POST to `url` outside the chat endpoints (a token endpoint), through the same pool.
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.http().post(url)
    }

    /// A request to `target` carrying `body`, with the provider's auth and extra headers.
    /// `client_headers` are the caller's headers; only the feature flags its kind names
    /// (`anthropic-beta`, `openai-beta`) are forwarded, and only to a target of the caller's
    /// own protocol. Credentials never are.
    pub fn request(
        &self,
        target: &Target,
        stream: bool,
        body: impl Into<reqwest::Body>,
        caller: Protocol,
        client_headers: &HeaderMap,
    ) -> reqwest::RequestBuilder {
        let provider = &target.provider;
        let spec = target.spec();
        let mut request = self.post_json(provider, spec, target.endpoint(stream).clone(), body);
        if stream {
            request = request.header(http::header::ACCEPT, "text/event-stream");
        }
        if caller == spec.protocol {
            for &name in spec.forwarded_headers {
                if let Some(value) = client_headers.get(name) {
                    request = request.header(name, value);
                }
            }
        }
        request
    }

    /// A JSON POST of `body` to `url` at `provider`, with its auth (as `spec` says), version and
    /// extra headers.
    pub fn post_json(
        &self,
        provider: &Provider,
        spec: &ProviderSpec,
        url: impl reqwest::IntoUrl,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http()
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &provider.api_key {
            let (name, value) = spec.auth_header(key.expose());
            request = secret_header(request, name, value);
        }
        if let Some((name, value)) = &provider.version_header {
            request = request.header(*name, value);
        }
        for (name, value) in &provider.headers {
            request = request.header(name, value);
        }
        request.body(body)
    }
}

/// `request` with the header `name: value` marked sensitive, so that no debug output of the
/// request shows it. A value that is not a valid header is handed to reqwest as it is: the
/// request then fails to send, with reqwest's error.
fn secret_header(
    request: reqwest::RequestBuilder,
    name: &'static str,
    value: String,
) -> reqwest::RequestBuilder {
    match reqwest::header::HeaderValue::from_str(&value) {
        Ok(mut header) => {
            header.set_sensitive(true);
            request.header(name, header)
        }
        Err(_) => request.header(name, value),
    }
}
