//! Shared helpers: a mock upstream and an in-process gateway, both on port 0.

use backstop_gateway::config;
use backstop_gateway::pipeline::Gateway;
use backstop_gateway::server;
use backstop_mock::{MockConfig, MockServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A gateway running in-process.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the shutdown signal (as SIGTERM would).
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a gateway from config text.
pub async fn gateway(config_text: &str) -> TestGateway {
    let config = config::parse(config_text, &|_| None).expect("valid config");
    start(Gateway::new(config).expect("client")).await
}

/// Starts a gateway from a config file, so that it can reload it.
pub async fn gateway_from_file(path: &std::path::Path) -> TestGateway {
    let config = config::load(path).expect("valid config");
    start(Gateway::with_path(config, Some(path.to_path_buf())).expect("client")).await
}

/// Starts a gateway from config text on `threads` worker threads, as `backstop serve` runs.
pub async fn gateway_on_threads(config_text: &str, threads: usize) -> TestGateway {
    let config = config::parse(config_text, &|_| None).expect("valid config");
    start_with(Gateway::new(config).expect("client"), Some(threads)).await
}

/// Starts a gateway from config text with the state store it names opened and attached, as `backstop serve`
/// does; the test keeps a handle on the gateway.
pub async fn gateway_with_state(config_text: &str) -> (Arc<Gateway>, TestGateway) {
    let config = config::parse(config_text, &|_| None).expect("valid config");
    let gateway = Arc::new(Gateway::new(config).expect("client"));
    let state = backstop_gateway::store::open(&gateway.config(), gateway.metrics())
        .await
        .expect("state opens");
    gateway.attach_state(state);
    let served = serve_shared(gateway.clone()).await;
    (gateway, served)
}

async fn start(gateway: Gateway) -> TestGateway {
    start_with(gateway, None).await
}

/// Serves a gateway that the test keeps a handle on (e.g. to call `drain`).
pub async fn serve_shared(gateway: Arc<Gateway>) -> TestGateway {
    start_shared(gateway, None).await
}

/// Serves on the test's runtime, or on `threads` worker threads of their own.
async fn start_with(gateway: Gateway, threads: Option<usize>) -> TestGateway {
    start_shared(Arc::new(gateway), threads).await
}

async fn start_shared(gateway: Arc<Gateway>, threads: Option<usize>) -> TestGateway {
    let grace = gateway.config().server.shutdown_grace;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let task = match threads {
        None => tokio::spawn(server::serve(gateway, listener, stopped, grace)),
        Some(n) => tokio::spawn(server::serve_on_threads(
            gateway, listener, n, stopped, grace,
        )),
    };
    TestGateway {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Starts a mock upstream with the default deterministic answer.
pub async fn mock() -> MockServer {
    MockServer::start(MockConfig::default())
        .await
        .expect("mock")
}

/// The `[timeouts]` of [`two_upstreams`]: short, with a fixed `idle`.
pub const SHORT_TIMEOUTS: &str = "first_byte = \"2s\"\nidle = \"1s\"\ntotal = \"10s\"";

/// Config with one OpenAI-protocol model `gpt` on `primary`, falling back to `backup` on `secondary`.
pub fn two_upstreams(primary: &MockServer, secondary: &MockServer, extra: &str) -> String {
    upstreams_with(primary, secondary, SHORT_TIMEOUTS, extra)
}

/// [`two_upstreams`] with `timeouts` as its `[timeouts]` table.
pub fn upstreams_with(
    primary: &MockServer,
    secondary: &MockServer,
    timeouts: &str,
    extra: &str,
) -> String {
    format!(
        r#"
state = "memory"
[providers.primary]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-primary-secret"
[providers.secondary]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-secondary-secret"
[providers.anth]
kind = "anthropic"
base_url = "{}"
api_key = "sk-anth-secret"
[providers.anth2]
kind = "anthropic"
base_url = "{}"
api_key = "sk-anth2-secret"
[models.gpt]
targets = [{{ provider = "primary", model = "gpt-4o-mini" }}]
fallbacks = ["backup"]
[models.backup]
targets = [{{ provider = "secondary", model = "gpt-4o-backup" }}]
[models.claude]
targets = [{{ provider = "anth", model = "claude-sonnet-4-5" }}]
[retry]
base_delay = "10ms"
max_delay = "100ms"
[timeouts]
{timeouts}
{extra}
"#,
        primary.url(),
        secondary.url(),
        primary.url(),
        secondary.url()
    )
}

/// Adds a fault through the mock's control API.
pub async fn fault(mock: &MockServer, fault: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/_mock/faults", mock.url()))
        .json(&fault)
        .send()
        .await
        .expect("mock control");
    assert!(
        response.status().is_success(),
        "fault rejected: {}",
        response.text().await.unwrap_or_default()
    );
}

/// An OpenAI chat request body.
pub fn chat(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The gateway's `GET /metrics` text.
pub async fn metrics_text(gw: &TestGateway) -> String {
    let response = reqwest::get(gw.url("/metrics")).await.expect("metrics");
    response.text().await.expect("metrics body")
}

/// Waits until `check` holds, polling every 10 ms, for at most `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// Two mock upstreams and a gateway in front of them (see [`two_upstreams`]).
pub struct Setup {
    pub primary: MockServer,
    pub secondary: MockServer,
    pub gw: TestGateway,
}

/// Starts two mocks and a gateway with `extra` config appended.
pub async fn setup(extra: &str) -> Setup {
    setup_with(MockConfig::default(), extra).await
}

/// [`setup`] with the secondary mock started from `secondary` (e.g. another answer).
pub async fn setup_with(secondary: MockConfig, extra: &str) -> Setup {
    let primary = mock().await;
    let secondary = MockServer::start(secondary).await.expect("mock");
    let gw = gateway(&two_upstreams(&primary, &secondary, extra)).await;
    Setup {
        primary,
        secondary,
        gw,
    }
}

impl Setup {
    /// Sends an OpenAI chat request for `model`.
    pub async fn ask(&self, model: &str, stream: bool) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.gw.url("/v1/chat/completions"))
            .json(&chat(model, stream))
            .send()
            .await
            .expect("request")
    }

    /// Sends an OpenAI chat request and reads the whole body as text.
    pub async fn ask_text(&self, model: &str, stream: bool) -> String {
        self.ask(model, stream).await.text().await.expect("body")
    }

    /// GETs a gateway path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.gw.url(path)).await.expect("request")
    }
}

/// A config file in a directory of its own, removed on drop.
pub struct ConfigFile {
    pub directory: PathBuf,
    pub path: PathBuf,
}

impl ConfigFile {
    /// `text` written as `backstop.toml` in a directory named after `name` and this process.
    pub fn new(name: &str, text: &str) -> Self {
        let directory =
            std::env::temp_dir().join(format!("backstop-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("backstop.toml");
        std::fs::write(&path, text).unwrap();
        Self { directory, path }
    }

    /// Replaces the file's text.
    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// POSTs `body` as JSON to `path` on the gateway.
pub async fn post_json(
    gw: &TestGateway,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(path))
        .json(body)
        .send()
        .await
        .expect("request")
}

/// The upstream model of every request `mock` received, in order.
pub fn models_seen(mock: &MockServer) -> Vec<String> {
    mock.requests().into_iter().map(|r| r.model).collect()
}

/// The JSON payloads of an SSE stream's `data:` lines, `[DONE]` and anything that is not JSON
/// left out.
pub fn sse_data(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect()
}
