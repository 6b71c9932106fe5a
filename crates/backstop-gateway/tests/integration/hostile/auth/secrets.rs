//! Secrets kept out of what the gateway answers and logs, and log lines that no request
//! can forge: against the real binary with its stderr captured.

use super::process::Served;
use super::ConfigFile;
use crate::common::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_KEY: &str = "sk-echo-secret-0123456789";
const HEADER_SECRET: &str = "org-secret-778899";

/// An upstream that rejects every request with a 401 whose message echoes the
/// credentials it received, as some providers do. Returns its base URL.
async fn echoing_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !String::from_utf8_lossy(&request).contains("\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(n @ 1..) => request.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let mut text = String::from_utf8_lossy(&request).to_string();
                let header = |text: &str, name: &str| {
                    text.lines()
                        .find_map(|line| {
                            let (key, value) = line.split_once(':')?;
                            key.eq_ignore_ascii_case(name)
                                .then(|| value.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header(&text, "content-length").parse().unwrap_or(0);
                while request.len() < text.find("\r\n\r\n").unwrap_or(0) + 4 + length {
                    match socket.read(&mut chunk).await {
                        Ok(n @ 1..) => request.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                text = String::from_utf8_lossy(&request).to_string();
                // A bad request is the caller's own fault and goes back to it as is;
                // a bad key is the target's and ends in the failure summary.
                let (status, message, code) = if text.contains("\"bad-request\"") {
                    ("400 Bad Request", "Malformed request", "invalid_request")
                } else {
                    (
                        "401 Unauthorized",
                        "Incorrect API key provided",
                        "invalid_api_key",
                    )
                };
                let message = format!(
                    "{message}: sent with credentials {} (organization {})",
                    header(&text, "authorization"),
                    header(&text, "x-org-token")
                );
                let body = json!({"error": {"message": message, "type": "invalid_request_error", "code": code}})
                    .to_string();
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn an_upstream_echoing_its_credentials_leaks_them_nowhere() {
    let base_url = echoing_upstream().await;
    let config = format!(
        "state = \"memory\"\n[providers.echo]\nkind = \"openai\"\nbase_url = \"{base_url}\"\napi_key = \"{API_KEY}\"\n\
         headers = {{ \"x-org-token\" = \"{HEADER_SECRET}\" }}\n\
         [models.gpt]\ntargets = [{{ provider = \"echo\", model = \"gpt-4o-mini\" }}]\n\
         [models.bad]\ntargets = [{{ provider = \"echo\", model = \"bad-request\" }}]\n[retry]\nmax_attempts = 1\n"
    );
    let file = ConfigFile::new("echo", &config);
    let served = Served::start(&["--config", file.path.to_str().unwrap()], &file.directory);
    let client = reqwest::Client::new();
    let openai = client
        .post(served.url("/v1/chat/completions"))
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(openai.status(), 503, "a rejected key fails the target");
    let openai = openai.text().await.unwrap();
    let passed_on = client
        .post(served.url("/v1/chat/completions"))
        .json(&chat("bad", false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        passed_on.status(),
        400,
        "the upstream's own answer, passed on"
    );
    let passed_on = passed_on.text().await.unwrap();
    let anthropic = client
        .post(served.url("/v1/messages"))
        .json(&json!({"model": "bad", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for answer in [&openai, &passed_on, &anthropic] {
        assert!(answer.contains("sent with credentials"), "{answer}");
        assert!(
            !answer.contains(API_KEY) && !answer.contains(HEADER_SECRET),
            "{answer}"
        );
    }
    let logged = eventually(Duration::from_secs(10), || {
        served.stderr().matches("sent with credentials").count() >= 2
    })
    .await;
    let stderr = served.stderr();
    assert!(logged, "the failures were not logged:\n{stderr}");
    assert!(
        !stderr.contains(API_KEY) && !stderr.contains(HEADER_SECRET),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_model_name_cannot_forge_a_log_line_nor_colour_a_piped_log() {
    let upstream = mock().await;
    let config = format!(
        "state = \"memory\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\
         [models.gpt]\ntargets = [{{ provider = \"p\", model = \"gpt-4o-mini\" }}]\n",
        upstream.url()
    );
    let file = ConfigFile::new("forge", &config);
    let served = Served::start(&["--config", file.path.to_str().unwrap()], &file.directory);
    let answer = reqwest::Client::new()
        .post(served.url("/v1/chat/completions"))
        .json(&chat("x\nFORGED line\r\u{1b}[31mred", false))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let stderr = served.stderr_once_it_says("does not exist").await;
    assert!(
        !stderr.lines().any(|line| line.starts_with("FORGED")),
        "a forged line:\n{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a piped log:\n{stderr:?}"
    );
    assert!(
        stderr.contains("x\\nFORGED line\\r\\u{1b}[31mred"),
        "{stderr}"
    );
}
