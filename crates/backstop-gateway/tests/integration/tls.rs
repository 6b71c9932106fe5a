//! TLS to upstreams, end to end: the real `backstop` binary in front of HTTPS mocks whose
//! certificate comes from a private CA, trusted through `SSL_CERT_FILE` (set for the child only).
//! HTTP/2 is negotiated by ALPN when offered, HTTP/1.1 otherwise; an untrusted certificate is a
//! clean error in the caller's protocol.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstop_gateway::upstream::PROXY_VARIABLES;
use backstop_mock::{MockConfig, MockServer, TestCerts, DEFAULT_ANSWER};
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The gateway process; killed and reaped when dropped, whatever the test did.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    // Kept open so that the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts `backstop serve` on port 0 and reads its `listening on http://ADDR` line.
    /// `ca` becomes the child's `SSL_CERT_FILE`; without it the child has only the system store.
    /// `env` is set for the child, and no proxy variable but those it names.
    async fn start(config: &Path, ca: Option<&Path>, env: &[(&str, &str)]) -> Gateway {
        let mut command = Command::new(env!("CARGO_BIN_EXE_backstop"));
        // No proxy variable but those the test names.
        for name in PROXY_VARIABLES.into_iter().chain(["NO_PROXY", "no_proxy"]) {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(ca) = ca {
            command.env("SSL_CERT_FILE", ca);
        }
        let mut child = command.spawn().expect("the backstop binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let read = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).map(|_| (reader, line))
        });
        let outcome = tokio::time::timeout(Duration::from_secs(30), read).await;
        let (reader, line) = match outcome {
            Ok(Ok(Ok(read))) => read,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no `listening on` line from backstop serve: {other:?}");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Gateway {
            child,
            addr,
            _stdout: reader,
        }
    }
}

/// A per-test directory holding the config and the CA certificate.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backstop-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An OpenAI-kind and an Anthropic-kind provider on the same HTTPS mock, addressed as
/// `localhost` so that the certificate's DNS name is what is checked.
fn config(mock: &MockServer) -> String {
    let port = mock.addr().port();
    format!(
        r#"
state = "memory"
[providers.vllm]
kind = "openai"
base_url = "https://localhost:{port}/v1"
api_key = "sk-vllm-secret"
[providers.anth]
kind = "anthropic"
base_url = "https://localhost:{port}"
api_key = "sk-anth-secret"
[models.gpt]
targets = [{{ provider = "vllm", model = "served-model" }}]
[models.claude]
targets = [{{ provider = "anth", model = "claude-sonnet-4-5" }}]
[retry]
base_delay = "10ms"
max_delay = "100ms"
[timeouts]
connect = "2s"
first_byte = "5s"
idle = "5s"
total = "15s"
"#
    )
}

/// Starts an HTTPS mock (`http1_only`: ALPN offers only `http/1.1`), writes the config and the
/// CA, and starts the gateway, trusting the CA when `trust` is set.
async fn setup(name: &str, http1_only: bool, trust: bool) -> (MockServer, Gateway) {
    setup_with(name, http1_only, trust, &[]).await
}

/// [`setup`] with the environment variables `env` set for the gateway.
async fn setup_with(
    name: &str,
    http1_only: bool,
    trust: bool,
    env: &[(&str, &str)],
) -> (MockServer, Gateway) {
    let certs = TestCerts::generate().unwrap();
    let mock = certs
        .start_mock(MockConfig::default(), http1_only)
        .await
        .unwrap();
    let dir = scratch(name);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    let config_path = dir.join("backstop.toml");
    std::fs::write(&config_path, config(&mock)).unwrap();
    let gateway = Gateway::start(&config_path, trust.then_some(ca.as_path()), env).await;
    (mock, gateway)
}

/// Asserts that `gpt` answers whole and `streamed` answers as a stream, both in full.
async fn answers_whole_and_streamed(gateway: &Gateway, streamed: &str) {
    assert_eq!(
        answer(ask(gateway, "gpt", false).await).await,
        DEFAULT_ANSWER
    );
    assert_eq!(
        streamed_answer(ask(gateway, streamed, true).await).await,
        DEFAULT_ANSWER
    );
}

async fn ask(gateway: &Gateway, model: &str, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello"}],
        }))
        .send()
        .await
        .unwrap()
}

/// The text of a non-streaming OpenAI answer.
async fn answer(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {body}"))
        .to_owned()
}

/// The text of a streaming OpenAI answer: its deltas joined, after checking `[DONE]`.
async fn streamed_answer(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data.iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_behind_a_private_ca_are_reached_over_http2() {
    let (mock, gateway) = setup("h2", false, true).await;

    answers_whole_and_streamed(&gateway, "gpt").await;
    let translated = ask(&gateway, "claude", false).await;
    assert_eq!(
        translated.headers()["x-backstop-target"],
        "anth/claude-sonnet-4-5"
    );
    assert_eq!(answer(translated).await, DEFAULT_ANSWER);
    assert_eq!(
        streamed_answer(ask(&gateway, "claude", true).await).await,
        DEFAULT_ANSWER
    );

    let log = mock.requests();
    let seen: Vec<(&str, &str, bool)> = log
        .iter()
        .map(|r| (r.path.as_str(), r.version.as_str(), r.stream))
        .collect();
    assert_eq!(
        seen,
        [
            ("/v1/chat/completions", "HTTP/2.0", false),
            ("/v1/chat/completions", "HTTP/2.0", true),
            ("/v1/messages", "HTTP/2.0", false),
            ("/v1/messages", "HTTP/2.0", true),
        ]
    );
    assert_eq!(log[0].headers["authorization"], "***");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_offering_only_http1_is_reached_over_http1() {
    let (mock, gateway) = setup("h1", true, true).await;
    answers_whole_and_streamed(&gateway, "claude").await;
    let versions: Vec<String> = mock.requests().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["HTTP/1.1", "HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_clean_error_in_the_callers_protocol() {
    let (mock, gateway) = setup("untrusted", false, false).await;
    let started = Instant::now();
    let response = ask(&gateway, "gpt", false).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let attempts = response.headers()["x-backstop-attempts"].clone();
    let body: Value = response.json().await.unwrap();
    // An untrusted certificate will not fix itself: one attempt, and the target's breaker opens
    // at once, as for a rejected key.
    assert_eq!(status, 503, "{body}");
    assert_eq!(attempts, "1");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("vllm/served-model"), "{body}");
    assert!(message.contains("connection failed"), "{body}");
    assert!(message.to_lowercase().contains("certificate"), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    // The handshake failed, so no HTTP request reached the mock.
    assert!(mock.requests().is_empty());
    let targets: Value = reqwest::get(gateway.url("/admin/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let broken = targets["targets"]
        .as_array()
        .and_then(|all| all.iter().find(|t| t["target"] == "vllm/served-model"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(broken["state"], "open", "{targets}");

    // An Anthropic caller gets the Anthropic error shape.
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("anth/claude-sonnet-4-5"));
}

/// A forward proxy that takes only `CONNECT`: it records each request head and tunnels the
/// connection to the host it names.
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                seen.lock().unwrap().push(head.clone());
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_reached_through_the_proxy_the_environment_names() {
    let (proxy, heads) = connect_proxy().await;
    let proxy_url = format!("http://user:pa55@{proxy}");
    let (mock, gateway) =
        setup_with("proxy", false, true, &[("HTTPS_PROXY", proxy_url.as_str())]).await;

    answers_whole_and_streamed(&gateway, "claude").await;

    // A tunnel to the mock per worker's pool (one or two), each with the proxy's credentials;
    // HTTP/2 negotiated inside it.
    let port = mock.addr().port();
    let credentials = base64::engine::general_purpose::STANDARD.encode("user:pa55");
    let heads = heads.lock().unwrap().clone();
    assert!((1..=2).contains(&heads.len()), "{heads:?}");
    for head in &heads {
        assert!(
            head.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
            "{heads:?}"
        );
        assert!(
            head.to_lowercase()
                .contains(&format!("proxy-authorization: basic {credentials}").to_lowercase()),
            "{heads:?}"
        );
    }
    let versions: Vec<String> = mock.requests().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["HTTP/2.0", "HTTP/2.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_in_no_proxy_is_reached_directly() {
    let (proxy, heads) = connect_proxy().await;
    let proxy_url = format!("http://{proxy}");
    let env = [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("NO_PROXY", "localhost"),
    ];
    let (mock, gateway) = setup_with("no-proxy", false, true, &env).await;
    assert_eq!(
        answer(ask(&gateway, "gpt", false).await).await,
        DEFAULT_ANSWER
    );
    assert!(heads.lock().unwrap().is_empty());
    assert_eq!(mock.requests().len(), 1);
}
