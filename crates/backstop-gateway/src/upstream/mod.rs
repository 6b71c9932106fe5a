//! The HTTP client to upstream providers: pooled clients (keep-alive, HTTP/1.1
//! and HTTP/2 by ALPN, rustls), each provider's endpoint and auth headers.
//! It never retries on its own: retries happen in the pipeline's one loop.

mod connect;
pub use connect::PROXY_VARIABLES;
mod transport;

pub use transport::{
    ClientBuildError, TransportError, TransportKind, UpstreamRequest, UpstreamResponse,
};

use crate::config::{Provider, Target};
use crate::pipeline::OutgoingBody;
use backstop_protocol::{Protocol, ProviderSpec};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use transport::HttpClient;

/// The user-agent of every upstream request.
const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("backstop/", env!("CARGO_PKG_VERSION")));

/// Tells [`UpstreamClient`]s apart, for the per-thread pools.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Whether this thread sends through a pool of its own.
    static WANTS_OWN_POOL: Cell<bool> = const { Cell::new(false) };
    /// This thread's own pool, and the id of the [`UpstreamClient`] it was built for.
    static OWN_POOL: RefCell<Option<(u64, HttpClient)>> = const { RefCell::new(None) };
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
    shared: HttpClient,
    /// The proxies the environment named when this client was built.
    proxies: Option<Arc<Matcher>>,
}

impl UpstreamClient {
    /// Builds the client with the given connect timeout.
    pub fn new(connect_timeout: Duration) -> Result<Self, ClientBuildError> {
        let proxies = connect::proxies_from_env();
        Ok(Self {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
            shared: transport::build(connect_timeout, proxies.clone())?,
            proxies,
        })
    }

    /// Runs `f` on the pool of the calling thread: its own one if it asked for it (built the
    /// first time, and again after a reload replaced this client), else the shared one.
    fn with_http<R>(&self, f: impl FnOnce(&HttpClient) -> R) -> R {
        if !WANTS_OWN_POOL.with(Cell::get) {
            return f(&self.shared);
        }
        OWN_POOL.with_borrow_mut(|own| {
            if own.as_ref().is_some_and(|(id, _)| *id != self.id) {
                *own = None;
            }
            let (_, client) = own.get_or_insert_with(|| {
                let client = transport::build(self.connect_timeout, self.proxies.clone())
                    .unwrap_or_else(|error| {
                        tracing::warn!(
                            "cannot build a worker's own upstream pool, sharing: {error}"
                        );
                        self.shared.clone()
                    });
                (self.id, client)
            });
            f(client)
        })
    }

    /// Sends a request built by [`UpstreamClient::request`] or [`UpstreamClient::post`] (and
    /// signed, where its channel signs), with the gateway's user-agent, and the proxy's
    /// credentials when it goes to a proxy as a whole URL. It is never retried and a redirect
    /// is returned as it is.
    ///
    /// The request is handed to the pool before the future is returned, so the future holds
    /// the pool's (boxed) answer and nothing else: it is awaited inside every request's
    /// handler, whose size it adds to.
    pub fn execute(
        &self,
        mut request: UpstreamRequest,
    ) -> impl Future<Output = Result<UpstreamResponse, TransportError>> + Send + 'static {
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, USER_AGENT);
        if let Some(proxies) = &self.proxies {
            connect::authorize_plain(proxies, &mut request);
        }
        self.with_http(|client| transport::send(client, request))
    }

    /// A POST of `body` to `url` with no headers yet (a token endpoint's, a chat endpoint's).
    pub fn post(
        url: &str,
        body: impl Into<OutgoingBody>,
    ) -> Result<UpstreamRequest, TransportError> {
        Ok(Self::post_to(Self::uri(url)?, body))
    }

    /// `url` as the URI of a request: parsed as a URL first, so that it is normalized as
    /// the configuration's URLs are.
    pub fn uri(url: &str) -> Result<Uri, TransportError> {
        let parsed = url::Url::parse(url)
            .map_err(|error| TransportError::new(TransportKind::Other, error))?;
        Uri::try_from(parsed.as_str())
            .map_err(|error| TransportError::new(TransportKind::Other, error))
    }

    /// A POST of `body` to `uri` with no headers yet.
    fn post_to(uri: Uri, body: impl Into<OutgoingBody>) -> UpstreamRequest {
        let mut request = http::Request::new(body.into());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        request
    }

    /// A request to `target` carrying `body`, with the provider's auth and extra headers.
    /// `client_headers` are the caller's headers; only the feature flags its kind names
    /// (`anthropic-beta`, `openai-beta`) are forwarded, and only to a target of the caller's
    /// own protocol. Credentials never are.
    pub fn request(
        target: &Target,
        stream: bool,
        body: impl Into<OutgoingBody>,
        caller: Protocol,
        client_headers: &HeaderMap,
    ) -> Result<UpstreamRequest, TransportError> {
        let provider = &target.provider;
        let spec = target.spec();
        let uri = target.uri(stream).clone();
        let mut request = Self::post_json(provider, spec, uri, body)?;
        let headers = request.headers_mut();
        if stream {
            headers.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        if caller == spec.protocol {
            for &name in spec.forwarded_headers {
                if let Some(value) = client_headers.get(name) {
                    headers.insert(name, value.clone());
                }
            }
        }
        Ok(request)
    }

    /// A JSON POST of `body` to `uri` at `provider`, with its auth (as `spec` says), version and
    /// extra headers. A header the configuration gives that is not a valid header is an error.
    pub fn post_json(
        provider: &Provider,
        spec: &ProviderSpec,
        uri: Uri,
        body: impl Into<OutgoingBody>,
    ) -> Result<UpstreamRequest, TransportError> {
        let mut request = Self::post_to(uri, body);
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = &provider.api_key {
            let (name, value) = spec.auth_header(key.expose());
            let mut value = header_value(&value)?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if let Some((name, value)) = &provider.version_header {
            headers.append(*name, header_value(value)?);
        }
        for (name, value) in &provider.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|error| TransportError::new(TransportKind::Other, error))?;
            headers.append(name, header_value(value)?);
        }
        Ok(request)
    }
}

/// `value` as a header value, or the error of one that is not (never showing the value).
fn header_value(value: &str) -> Result<HeaderValue, TransportError> {
    HeaderValue::from_str(value).map_err(|error| TransportError::new(TransportKind::Other, error))
}
