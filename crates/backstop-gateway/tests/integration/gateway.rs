//! Integration tests: the gateway in-process on port 0, mock upstreams on port 0.

use crate::common::*;
use futures_util::StreamExt;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn request_id_is_echoed_or_made() {
    let s = setup("").await;
    let given = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .header("x-request-id", "req-123")
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "req-123");
    let made = s.ask("gpt", false).await;
    assert_eq!(made.headers()["x-request-id"].len(), 36);
    let error = s.ask("nope", false).await;
    assert_eq!(error.status(), 404);
    assert!(error.headers().contains_key("x-request-id"));
}

#[tokio::test(start_paused = true)]
async fn upstream_sees_its_own_key_never_the_clients() {
    let s = setup("").await;
    let response = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth("client-secret")
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = s.primary.requests();
    assert_eq!(seen.len(), 1);
    let headers = serde_json::to_string(&seen[0].headers).unwrap();
    assert!(!headers.contains("client-secret"), "{headers}");
    assert_eq!(seen[0].model, "gpt-4o-mini");
}

#[tokio::test(start_paused = true)]
async fn a_server_error_once_is_retried_on_the_same_target() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "status", "status": 500, "count": 1}),
    )
    .await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
    assert_eq!(
        response.headers()["x-backstop-target"],
        "primary/gpt-4o-mini"
    );
    assert_eq!(s.primary.requests().len(), 2);
    assert_eq!(s.secondary.requests().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_returns_at_once_without_fallback() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "status", "status": 422}),
    )
    .await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 422);
    assert_eq!(s.primary.requests().len(), 1);
    assert_eq!(s.secondary.requests().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_chain_is_503_with_retry_after_naming_each_target() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "status", "status": 503}),
    )
    .await;
    fault(
        &s.secondary,
        serde_json::json!({"kind": "status", "status": 502}),
    )
    .await;
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.headers()["x-backstop-attempts"], "6");
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("primary/gpt-4o-mini") && message.contains("secondary/gpt-4o-backup"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn client_disconnect_cancels_the_upstream_stream() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "slow_stream", "delay": "100ms"}),
    )
    .await;
    let mut body = s.ask("gpt", true).await.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert!(!first.is_empty());
    drop(body);
    let ended = eventually(Duration::from_secs(3), || {
        s.primary
            .requests()
            .first()
            .is_some_and(|r| r.outcome.contains("disconnect"))
    })
    .await;
    assert!(
        ended,
        "upstream outcome: {:?}",
        s.primary.requests().first().map(|r| r.outcome.clone())
    );
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_lets_a_stream_finish() {
    let mut s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "slow_stream", "delay": "10ms"}),
    )
    .await;
    let response = s.ask("gpt", true).await;
    s.gw.signal_shutdown();
    let text = response.text().await.expect("whole stream");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut s.gw.task).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))));
    assert!(reqwest::get(s.gw.url("/healthz")).await.is_err());
}

/// A secondary whose answer differs from the primary's: a restart there never matches.
fn another_answer() -> backstop_mock::MockConfig {
    backstop_mock::MockConfig {
        answer: "Another answer, which a restart compares and refuses.".into(),
        ..backstop_mock::MockConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_stalled_mid_answer_ends_with_an_error_event_not_a_success() {
    let s = setup_with(another_answer(), "").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "stall", "after": 10, "for": "3s"}),
    )
    .await;
    let text = s.ask_text("gpt", true).await;
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(!text.contains("\"finish_reason\":\"stop\""));

    let body = serde_json::json!({"model": "claude", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    fault(
        &s.primary,
        serde_json::json!({"route": "anthropic", "kind": "stall", "after": 6, "for": "3s"}),
    )
    .await;
    let response = post_json(&s.gw, "/v1/messages", &body).await;
    let text = response.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"));
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_mid_answer_is_never_a_truncated_success() {
    let s = setup_with(another_answer(), "").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "cut_after", "events": 10}),
    )
    .await;
    let text = s.ask_text("gpt", true).await;
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(!text.contains("\"finish_reason\":\"stop\""));
    let restarts = s.secondary.requests();
    assert_eq!(restarts.len(), 1, "restarted once, compared, not spliced");
    assert_eq!(restarts[0].body["messages"].as_array().unwrap().len(), 1);
    assert!(text.contains("diverged"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_malformed_event_is_dropped_and_the_stream_goes_on() {
    let s = setup("").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "malformed_event", "at": 5}),
    )
    .await;
    let text = s.ask_text("gpt", true).await;
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    for line in text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
    {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "forwarded a malformed event: {line}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_without_its_terminator_is_finished() {
    let s = setup("").await;
    fault(&s.primary, serde_json::json!({"kind": "no_done"})).await;
    let text = s.ask_text("gpt", true).await;
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("\"error\""));
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_fails_over_after_first_byte() {
    let s = setup("").await;
    fault(&s.primary, serde_json::json!({"kind": "hang"})).await;
    let started = tokio::time::Instant::now();
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(
        s.primary.requests().len(),
        1,
        "a silent target is not retried in place"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn stream_usage_is_counted_but_only_sent_to_clients_that_ask() {
    let s = setup("").await;
    let text = s.ask_text("gpt", true).await;
    assert!(
        !text.contains("\"choices\":[]"),
        "an unrequested usage chunk was forwarded: {text}"
    );
    let sent = &s.primary.requests()[0].body;
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "the gateway asks upstream for usage"
    );

    let body = serde_json::json!({"model": "gpt", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let response = post_json(&s.gw, "/v1/chat/completions", &body).await;
    let text = response.text().await.unwrap();
    assert!(text.contains("\"usage\""), "{text}");
}

/// An upstream that records the head (request line and headers, lower-cased names) of every
/// request it receives and answers each with a 400, so nothing is retried. Returns its
/// address and the heads.
async fn recording_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !String::from_utf8_lossy(&request).contains("\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(n @ 1..) => request.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let head = text.split("\r\n\r\n").next().unwrap_or_default();
                let mut lines = head.lines();
                let mut normalised = vec![lines.next().unwrap_or_default().to_string()];
                normalised.extend(lines.map(|line| match line.split_once(':') {
                    Some((name, value)) => {
                        format!("{}: {}", name.to_ascii_lowercase(), value.trim())
                    }
                    None => line.to_string(),
                }));
                recorded.lock().unwrap().push(normalised.join("\n"));
                let body = r#"{"error":{"message":"recorded","type":"invalid_request_error"}}"#;
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn each_provider_kind_is_called_at_its_endpoint_with_its_own_headers() {
    let (addr, heads) = recording_upstream().await;
    let config = format!(
        r#"
state = "memory"
[providers.oa]
kind = "openai"
base_url = "http://{addr}/v1/"
api_key = "k-openai"
[providers.an]
kind = "anthropic"
base_url = "http://{addr}/"
api_key = "k-anthropic"
[providers.an2]
kind = "anthropic"
base_url = "http://{addr}"
api_key = "k-anthropic2"
anthropic_version = "2024-10-22"
[providers.ge]
kind = "gemini"
base_url = "http://{addr}/"
api_key = "k-gemini"
[models.oa]
targets = [{{ provider = "oa", model = "gpt-4o" }}]
[models.an]
targets = [{{ provider = "an", model = "claude-sonnet-4-5" }}]
[models.an2]
targets = [{{ provider = "an2", model = "claude-haiku-4-5" }}]
[models.ge]
targets = [{{ provider = "ge", model = "gemini-2.5-flash" }}]
[retry]
max_attempts = 1
"#
    );
    let gw = gateway(&config).await;
    let client = reqwest::Client::new();
    let send = |path: &str, model: &str, stream: bool| {
        let body = serde_json::json!({"model": model, "stream": stream, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]});
        client
            .post(gw.url(path))
            .header("anthropic-beta", "flag-a")
            .header("openai-beta", "flag-o")
            .json(&body)
            .send()
    };
    let calls = [
        ("/v1/chat/completions", "oa", false),
        ("/v1/chat/completions", "oa", true),
        ("/v1/messages", "an", false),
        ("/v1/messages", "an2", true),
        ("/v1/chat/completions", "an", false),
        ("/v1/chat/completions", "ge", false),
        ("/v1/messages", "ge", true),
    ];
    for (path, model, stream) in calls {
        let response = send(path, model, stream).await.unwrap();
        assert_eq!(response.status(), 400, "{path} {model}");
    }
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), calls.len(), "{heads:#?}");
    let has = |head: &str, line: &str| head.lines().any(|l| l == line);
    let expected: [(&str, &[&str], &[&str]); 7] = [
        (
            "POST /v1/chat/completions HTTP/1.1",
            &["authorization: Bearer k-openai", "openai-beta: flag-o"],
            &["anthropic-beta", "anthropic-version", "x-api-key"],
        ),
        (
            "POST /v1/chat/completions HTTP/1.1",
            &[
                "authorization: Bearer k-openai",
                "accept: text/event-stream",
            ],
            &["anthropic-version"],
        ),
        (
            "POST /v1/messages HTTP/1.1",
            &[
                "x-api-key: k-anthropic",
                "anthropic-version: 2023-06-01",
                "anthropic-beta: flag-a",
            ],
            &["authorization", "openai-beta"],
        ),
        (
            "POST /v1/messages HTTP/1.1",
            &["x-api-key: k-anthropic2", "anthropic-version: 2024-10-22"],
            &["authorization"],
        ),
        (
            "POST /v1/messages HTTP/1.1",
            &["x-api-key: k-anthropic", "anthropic-version: 2023-06-01"],
            &["anthropic-beta", "openai-beta"],
        ),
        (
            "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1",
            &["x-goog-api-key: k-gemini"],
            &["authorization", "anthropic-version", "openai-beta"],
        ),
        (
            "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1",
            &["x-goog-api-key: k-gemini", "accept: text/event-stream"],
            &["x-api-key", "anthropic-version", "anthropic-beta"],
        ),
    ];
    for (head, (request_line, present, absent)) in heads.iter().zip(expected) {
        assert_eq!(head.lines().next(), Some(request_line), "{head}");
        for line in present {
            assert!(has(head, line), "`{line}` missing from:\n{head}");
        }
        for name in absent {
            let prefix = format!("{name}:");
            assert!(
                !head.lines().any(|l| l.starts_with(&prefix)),
                "`{name}` sent in:\n{head}"
            );
        }
    }
}

/// Structured output asked in one protocol reaches a target of another as its native field.
#[tokio::test(start_paused = true)]
async fn structured_output_reaches_each_target_as_its_native_field() {
    let s = setup(
        "[models.gpt_for_claude]\ntargets = [{ provider = \"primary\", model = \"gpt-4o-mini\" }]",
    )
    .await;
    let city = serde_json::json!({"kind": "answer", "text": "{\"city\": \"Paris\"}"});
    fault(&s.primary, city).await;
    let schema = serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    let anthropic_client = serde_json::json!({"model": "gpt_for_claude", "max_tokens": 100,
        "messages": [{"role": "user", "content": "Where?"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}}});
    let response = post_json(&s.gw, "/v1/messages", &anthropic_client).await;
    assert_eq!(response.status(), 200);
    let sent = &s.primary.requests()[0].body;
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);

    let openai_client = serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": "Where?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}});
    let response = post_json(&s.gw, "/v1/chat/completions", &openai_client).await;
    assert_eq!(response.status(), 200);
    let sent = &s.primary.requests()[1].body;
    assert_eq!(sent["output_config"]["format"]["schema"], schema);
    assert!(
        sent.get("system").is_none(),
        "no instruction in place of the field"
    );
}
