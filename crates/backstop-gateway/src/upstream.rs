//! The HTTP client to upstream providers: one pooled client (keep-alive, HTTP/1.1
//! and HTTP/2 by ALPN, rustls), each provider's endpoint and auth headers.
//! It never retries on its own: retries happen in the pipeline's one loop.

use crate::config::{Provider, Target};
use backstop_protocol::Protocol;
use bytes::Bytes;
use http::HeaderMap;
use std::time::Duration;

/// Client headers that are forwarded upstream when caller and target speak the same protocol.
const FORWARDED_HEADERS: [&str; 2] = ["anthropic-beta", "openai-beta"];

/// A pooled HTTP client for every upstream.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    http: reqwest::Client,
}

impl UpstreamClient {
    /// Builds the client with the given connect timeout.
    pub fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .http2_adaptive_window(true)
            .retry(reqwest::retry::never())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("backstop/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
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
            .http
            .post(endpoint(provider, &target.model, stream))
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

/// The URL a chat request for `model` goes to.
pub fn endpoint(provider: &Provider, model: &str, stream: bool) -> String {
    let base = &provider.base_url;
    match provider.kind {
        Protocol::OpenAi => format!("{base}/chat/completions"),
        Protocol::Anthropic => format!("{base}/v1/messages"),
        Protocol::Gemini if stream => {
            format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse")
        }
        Protocol::Gemini => format!("{base}/v1beta/models/{model}:generateContent"),
    }
}
