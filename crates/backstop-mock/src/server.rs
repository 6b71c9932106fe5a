//! Running the mock: [`MockServer`] for tests and embedding, [`run`] for the command line.
//!
//! The accept loop is our own (hyper-util's auto HTTP/1 + HTTP/2 builder) rather than
//! `axum::serve`, because two faults live below HTTP: a TCP reset needs the socket itself
//! (`SO_LINGER` 0, then close), and a shutdown must drop hung connections at once. Each
//! connection keeps a duplicate of its socket handle and a [`Notify`] that a handler can fire to
//! have the connection reset. Over TLS the same loop runs the handshake first (bounded, and
//! dropped at shutdown like any hung connection), then serves the decrypted stream; the reset
//! still acts on the TCP socket underneath.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::{answer_chunks, MockConfig, MockError};
use crate::fault::Fault;
use crate::handler::{ConnReset, ConnectionNo, Shared};
use crate::log::{RecordedRequest, RequestLog};
use crate::registry::Faults;
use crate::reply::Script;
use crate::routes::router;
use crate::tls::MockTls;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running mock provider. Dropping it stops it too; [`MockServer::shutdown`] also waits.
pub struct MockServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts a mock on `127.0.0.1` with an OS-assigned port.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, config).await
    }

    /// Starts a mock on a listener the caller bound.
    pub async fn start_on(
        listener: TcpListener,
        config: MockConfig,
    ) -> std::io::Result<MockServer> {
        Self::launch(listener, config, None)
    }

    /// Starts an HTTPS mock on `127.0.0.1` with an OS-assigned port: ALPN offers what `tls`
    /// says (`h2` and `http/1.1` unless [`MockTls::http1_only`]).
    pub async fn start_tls(config: MockConfig, tls: MockTls) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_tls_on(listener, config, tls).await
    }

    /// Starts an HTTPS mock on a listener the caller bound.
    pub async fn start_tls_on(
        listener: TcpListener,
        config: MockConfig,
        tls: MockTls,
    ) -> std::io::Result<MockServer> {
        Self::launch(listener, config, Some(tls))
    }

    fn launch(
        listener: TcpListener,
        config: MockConfig,
        tls: Option<MockTls>,
    ) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let script = Script {
            chunks: answer_chunks(&config),
            answer: config.answer,
            tool_arguments: serde_json::to_string(&config.tool_arguments)
                .unwrap_or_else(|_| "{}".to_owned()),
        };
        let shared = Arc::new(Shared {
            script,
            faults: Faults::new(config.seed, config.faults, now),
            log: Arc::new(RequestLog::new(config.log_capacity, now)),
            serial: AtomicU64::new(0),
            status: Default::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let app = router(Arc::clone(&shared));
        let secure = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, app, tls, stopped));
        Ok(MockServer {
            addr,
            tls: secure,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` over TLS), the base URL for OpenAI (`{url}/v1`),
    /// Anthropic and Gemini clients.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the mock serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Adds a fault at the end of the list; its window (if any) starts now.
    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.add(fault, Instant::now());
    }

    /// Sets the indicator of the status page at `/api/v2/status.json` (`none`, `minor`,
    /// `major` or `critical`); `false` for another word.
    pub fn set_status_indicator(&self, indicator: &str) -> bool {
        self.shared.status.set(indicator)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Every recorded request, in arrival order (what `GET /_mock/requests` returns).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.list()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Stops accepting, drops every open connection (hung ones included) and waits for the
    /// accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<MockTls>,
    mut stopped: watch::Receiver<bool>,
) {
    let acceptor = tls.as_ref().map(MockTls::acceptor);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    let mut accepted_count = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                accepted_count += 1;
                tokio::spawn(serve_connection(
                    stream,
                    ConnectionNo(accepted_count),
                    app.clone(),
                    builder.clone(),
                    acceptor.clone(),
                    stopped.clone(),
                ));
            }
            Err(err) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %err, "backstop-mock: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    number: ConnectionNo,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // A second handle on the same socket, so that a reset can set SO_LINGER 0 and close it
    // after hyper has been dropped.
    let (stream, twin) = match stream.into_std().and_then(|s| Ok((s.try_clone()?, s))) {
        Ok((std_stream, twin)) => match TcpStream::from_std(std_stream) {
            Ok(stream) => (stream, twin),
            Err(_) => return,
        },
        Err(_) => return,
    };
    let reset = Arc::new(Notify::new());
    let handle = ConnReset(Arc::clone(&reset));
    let served = async {
        match acceptor {
            None => serve_http(stream, app, builder, handle, number).await,
            Some(acceptor) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        serve_http(tls_stream, app, builder, handle, number).await
                    }
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, "backstop-mock: TLS handshake failed");
                    }
                    Err(_) => tracing::debug!("backstop-mock: TLS handshake timed out"),
                }
            }
        }
    };
    tokio::select! {
        _ = served => {}
        _ = reset.notified() => {
            let _ = socket2::SockRef::from(&twin).set_linger(Some(Duration::ZERO));
        }
        _ = stopped.changed() => {}
    }
    drop(twin);
}

/// Serves HTTP/1.1 or HTTP/2 (by the client's preface; over TLS that follows ALPN) on `io`.
async fn serve_http<I>(
    io: I,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    reset: ConnReset,
    number: ConnectionNo,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(reset.clone());
        request.extensions_mut().insert(number);
        app.clone().oneshot(request)
    });
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await;
}

/// Runs the mock until SIGINT or SIGTERM: loads `script` (TOML, or JSON for `.json`), binds
/// `listen`, and prints `listening on http://ADDR` as the first line of stdout.
pub async fn run(listen: SocketAddr, script: Option<PathBuf>) -> Result<(), MockError> {
    run_with(listen, script, None).await
}

/// [`run`], over HTTPS when `tls` is given (the first line then says `https://ADDR`).
pub async fn run_with(
    listen: SocketAddr,
    script: Option<PathBuf>,
    tls: Option<MockTls>,
) -> Result<(), MockError> {
    let config = match script {
        Some(path) => MockConfig::from_script_file(path)?,
        None => MockConfig::default(),
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| MockError::Io {
            context: format!("cannot listen on {listen}"),
            source,
        })?;
    let started = match tls {
        Some(tls) => MockServer::start_tls_on(listener, config, tls).await,
        None => MockServer::start_on(listener, config).await,
    };
    let server = started.map_err(|source| MockError::Io {
        context: "cannot start the mock".to_owned(),
        source,
    })?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.url());
        let _ = out.flush();
    }
    wait_for_signal().await;
    server.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
