//! How the upstream client reaches a host: directly, or through the proxy the environment
//! names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and their lower-case forms, minus the hosts
//! of `NO_PROXY`, as curl and reqwest read them). An https upstream is reached through a
//! `CONNECT` tunnel, with TLS to the upstream inside it; a plain http one by handing the proxy
//! the whole URL.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The variables a proxy is named by (`NO_PROXY`/`no_proxy` list the hosts reached directly).
pub const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The proxies the environment names, or `None` when it names none.
pub fn proxies_from_env() -> Option<Arc<Matcher>> {
    PROXY_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
        .then(|| Arc::new(Matcher::from_env()))
}

/// Adds the proxy's credentials to a plain http `request` that goes to a proxy as a whole
/// URL (a tunnel carries them in its `CONNECT` instead).
pub fn authorize_plain<B>(proxies: &Matcher, request: &mut http::Request<B>) {
    if request.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
        return;
    }
    let auth = proxies
        .intercept(request.uri())
        .and_then(|proxy| proxy.basic_auth().cloned());
    if let Some(mut auth) = auth {
        auth.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::PROXY_AUTHORIZATION, auth);
    }
}

/// What any connection to an upstream or a proxy is.
trait Io: Read + Write + Connection + Send + Unpin + 'static {}

impl<T: Read + Write + Connection + Send + Unpin + 'static> Io for T {}

/// A connection to an upstream, marked when it goes to a proxy that takes whole URLs.
pub struct Conn {
    io: Box<dyn Io>,
    proxied: bool,
}

impl Conn {
    fn new(io: impl Io, proxied: bool) -> Self {
        Self {
            io: Box::new(io),
            proxied,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// Connects to upstreams, through a proxy where the environment names one.
#[derive(Clone, Debug)]
pub struct Connector {
    /// TCP, then TLS with ALPN h2 and http/1.1 for an https URI.
    direct: HttpsConnector<HttpConnector>,
    /// TCP to a proxy, with TLS (http/1.1 only: `CONNECT` is an HTTP/1 request) for an https one.
    to_proxy: HttpsConnector<HttpConnector>,
    /// The TLS of the upstream, inside a tunnel.
    tls: Arc<rustls::ClientConfig>,
    proxies: Option<Arc<Matcher>>,
}

impl Connector {
    /// A connector over `tcp` with `tls` (whose ALPN it keeps for upstreams), through `proxies`.
    pub fn new(
        tcp: HttpConnector,
        tls: rustls::ClientConfig,
        proxies: Option<Arc<Matcher>>,
    ) -> Self {
        let mut proxy_tls = tls.clone();
        proxy_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            direct: HttpsConnector::from((tcp.clone(), tls.clone())),
            to_proxy: HttpsConnector::from((tcp, proxy_tls)),
            tls: Arc::new(tls),
            proxies,
        }
    }
}

impl Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        let proxy = self
            .proxies
            .as_ref()
            .and_then(|proxies| proxies.intercept(&dst));
        let Some(proxy) = proxy else {
            let connecting = self.direct.call(dst);
            return Box::pin(async move { Ok(Conn::new(connecting.await?, false)) });
        };
        if dst.scheme() == Some(&http::uri::Scheme::HTTPS) {
            let mut tunnel = Tunnel::new(proxy.uri().clone(), self.to_proxy.clone());
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let connecting = HttpsConnector::from((tunnel, self.tls.clone())).call(dst);
            Box::pin(async move { Ok(Conn::new(connecting.await?, false)) })
        } else {
            let connecting = self.to_proxy.call(proxy.uri().clone());
            Box::pin(async move { Ok(Conn::new(connecting.await?, true)) })
        }
    }
}
