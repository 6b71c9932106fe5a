//! The cloud channels through the gateway, against the mock's Azure OpenAI, Bedrock and
//! Vertex AI: answers and streams in either client protocol, each cloud's errors classified,
//! and one model failing over from the Anthropic API to Bedrock to Vertex.

use crate::common::*;
use backstop_mock::{MockServer, BEDROCK_SECRET_ACCESS_KEY};
use serde_json::{json, Value};

const CLAUDE_ON_BEDROCK: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const CLAUDE_ON_VERTEX: &str = "claude-sonnet-4-5@20250929";

fn service_account_file() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vertex-service-account.json"
    )
    .to_string()
}

/// Every channel on one mock; `secret` is the Bedrock secret access key the gateway signs
/// with; `claude` lists the providers of the public model `claude`.
fn config(mock: &MockServer, secret: &str, claude: &[&str], extra: &str) -> String {
    let url = mock.url();
    let targets: Vec<String> = claude
        .iter()
        .map(|provider| {
            let model = match *provider {
                "bedrock" => CLAUDE_ON_BEDROCK,
                "vertex" | "vertex_sa" => CLAUDE_ON_VERTEX,
                _ => "claude-sonnet-4-5-20250929",
            };
            format!(r#"{{ provider = "{provider}", model = "{model}" }}"#)
        })
        .collect();
    let targets = targets.join(", ");
    let file = service_account_file();
    format!(
        r#"
state = "memory"
[providers.anthropic]
kind = "anthropic"
base_url = "{url}"
api_key = "sk-ant-secret"
[providers.bedrock]
kind = "bedrock"
base_url = "{url}"
region = "us-east-1"
access_key_id = "AKIDBACKSTOPTEST"
secret_access_key = "{secret}"
session_token = "session-token-secret"
[providers.vertex]
kind = "vertex"
base_url = "{url}"
project = "backstop-test"
location = "us-east5"
access_token = "ya29.given-token-secret"
[providers.vertex_sa]
kind = "vertex"
base_url = "{url}"
project = "backstop-test"
location = "us-east5"
credentials_file = "{file}"
token_url = "{url}/token"
[providers.azure]
kind = "azure"
base_url = "{url}"
api_key = "azure-key-secret"
api_version = "2024-10-21"
[providers.openai]
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-openai-secret"
[models.claude]
targets = [{targets}]
[models.gemini]
targets = [{{ provider = "vertex", model = "gemini-2.5-flash" }}]
[models.gpt]
targets = [{{ provider = "azure", model = "gpt4o-prod" }}]
fallbacks = ["gpt-openai"]
[models.gpt-openai]
targets = [{{ provider = "openai", model = "gpt-4o" }}]
[retry]
base_delay = "10ms"
max_delay = "50ms"
[circuit_breaker]
failure_threshold = 50
[timeouts]
first_byte = "2s"
idle = "1s"
total = "10s"
{extra}
"#
    )
}

async fn start(claude: &[&str], secret: &str, extra: &str) -> (MockServer, TestGateway) {
    let mock = mock().await;
    let gw = gateway(&config(&mock, secret, claude, extra)).await;
    (mock, gw)
}

fn anthropic_body(stream: bool) -> Value {
    json!({
        "model": "claude", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}]
    })
}

/// The one request the mock saw, with its path, headers and body.
fn only_request(mock: &MockServer) -> backstop_mock::RecordedRequest {
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.into_iter().next().unwrap()
}

#[tokio::test]
async fn bedrock_serves_claude_signed_with_the_version_in_the_body() {
    let (mock, gw) = start(&["bedrock"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    let response = post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-backstop-target"],
        format!("bedrock/{CLAUDE_ON_BEDROCK}")
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert!(answer["content"][0]["text"].as_str().unwrap().len() > 3);
    let request = only_request(&mock);
    assert_eq!(
        request.path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    );
    let body = &request.body;
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none());
    // The mock verified the signature; the log shows that one was sent, not its value.
    assert_eq!(request.headers["authorization"], "***");
    assert_eq!(request.headers["x-amz-security-token"], "***");
    assert!(request.headers.contains_key("x-amz-date"));
}

#[tokio::test]
async fn a_bedrock_event_stream_reaches_an_openai_client_as_sse() {
    let (mock, gw) = start(&["bedrock"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    let response = post_json(&gw, "/v1/chat/completions", &chat("claude", true)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let words: String = sse_data(&text)
        .into_iter()
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(words, backstop_mock::DEFAULT_ANSWER);
    assert!(only_request(&mock)
        .path
        .ends_with("/invoke-with-response-stream"));
}

#[tokio::test]
async fn a_bad_bedrock_secret_is_refused_and_opens_the_breaker_at_once() {
    let (mock, gw) = start(&["bedrock", "vertex"], "not-the-secret", "").await;
    fault(
        &mock,
        json!({"route": "vertex", "kind": "status", "status": 503}),
    )
    .await;
    let first = post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
    let text = first.text().await.unwrap();
    assert!(
        text.contains("signature we calculated does not match"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret") && !text.contains("session-token-secret"));
    let bedrock_calls = || {
        mock.requests()
            .iter()
            .filter(|r| r.path.starts_with("/model/"))
            .count()
    };
    assert_eq!(bedrock_calls(), 1, "a bad signature is never retried");
    let status: Value = reqwest::get(gw.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = status.to_string();
    assert!(text.contains("open"), "{text}");
    post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
    assert_eq!(bedrock_calls(), 1, "the open breaker keeps Bedrock out");
}

#[tokio::test]
async fn bedrock_errors_are_classified() {
    let (mock, gw) = start(&["bedrock"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    // Throttled twice, then served: a transient error, retried on the same target.
    fault(
        &mock,
        json!({"route": "bedrock", "kind": "rate_limit", "count": 2}),
    )
    .await;
    let response = post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-attempts"], "3");
    mock.clear_requests();
    // Input too long: no retry of that target.
    fault(
        &mock,
        json!({"route": "bedrock", "kind": "context_length", "count": 1}),
    )
    .await;
    let response = post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too long"),
        "{body}"
    );
    assert_eq!(mock.requests().len(), 1);
    mock.clear_requests();
    // A stream broken by an exception after its 200 ends in an error event, not a clean end.
    fault(
        &mock,
        json!({"route": "bedrock", "kind": "error_event", "at": 3, "count": 1}),
    )
    .await;
    let text = post_json(&gw, "/v1/messages", &anthropic_body(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
}

#[tokio::test]
async fn vertex_serves_claude_and_gemini_with_the_given_token() {
    let (mock, gw) = start(&["vertex"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    let response = post_json(&gw, "/v1/messages", &anthropic_body(true)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    let request = only_request(&mock);
    assert_eq!(
        request.path,
        "/v1/projects/backstop-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    );
    assert_eq!(request.headers["authorization"], "***");
    let body = &request.body;
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none());
    mock.clear_requests();
    let response = post_json(&gw, "/v1/chat/completions", &chat("gemini", false)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        backstop_mock::DEFAULT_ANSWER,
        "{answer}"
    );
    assert_eq!(
        only_request(&mock).path,
        "/v1/projects/backstop-test/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent"
    );
}

#[tokio::test]
async fn a_vertex_service_account_token_is_fetched_once_and_reused() {
    let (mock, gw) = start(&["vertex_sa"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    for _ in 0..3 {
        let response = post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
        assert_eq!(response.status(), 200);
    }
    let requests = mock.requests();
    let tokens: Vec<_> = requests.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(tokens.len(), 1, "{requests:?}");
    let form = tokens[0].body.as_str().unwrap();
    assert!(
        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{form}"
    );
    // The mock accepts only Google access tokens (`ya29.`): every prediction carried the one
    // the token endpoint issued.
    let predictions: Vec<_> = requests.iter().filter(|r| r.path != "/token").collect();
    assert_eq!(predictions.len(), 3);
    assert!(predictions.iter().all(|r| r.status == Some(200)));
}

#[tokio::test]
async fn vertex_errors_in_both_formats_are_classified() {
    let (mock, gw) = start(&["vertex", "anthropic"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    // Quota (Google's format) is transient: retried, then served by the other target.
    fault(&mock, json!({"route": "vertex", "kind": "rate_limit"})).await;
    for _ in 0..3 {
        let response = post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-backstop-target"],
            "anthropic/claude-sonnet-4-5-20250929"
        );
    }
    mock.clear_faults();
    mock.clear_requests();
    // Permission denied (Google's format): the target is broken, its breaker opens.
    fault(&mock, json!({"route": "vertex", "kind": "forbidden"})).await;
    let vertex_calls = || {
        mock.requests()
            .iter()
            .filter(|r| r.path.contains("/publishers/"))
            .count()
    };
    // The two targets share the traffic at random: go on until Vertex was tried (2^-32 odds
    // of missing it), then a few more.
    for _ in 0..32 {
        post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
        if vertex_calls() > 0 {
            break;
        }
    }
    for _ in 0..4 {
        post_json(&gw, "/v1/messages", &anthropic_body(false)).await;
    }
    assert_eq!(vertex_calls(), 1, "a broken target is not called again");
}

/// A streamed tool call for `claude`, in Anthropic's protocol.
fn weather_call() -> Value {
    json!({
        "model": "claude", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    })
}

/// Asks `claude` for the tool call and checks that `served` answered it, stream intact.
async fn tool_call_served_by(gw: &TestGateway, served: &str) {
    let response = post_json(gw, "/v1/messages", &weather_call()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], served);
    assert_eq!(response.headers()["x-backstop-fallback"], "false");
    let text = response.text().await.unwrap();
    assert!(text.contains("\"tool_use\""), "{text}");
    assert!(text.contains("input_json_delta"), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
}

#[tokio::test]
async fn claude_fails_over_from_anthropic_to_bedrock_to_vertex_with_stream_and_tools() {
    let (mock, gw) = start(
        &["anthropic", "bedrock", "vertex"],
        BEDROCK_SECRET_ACCESS_KEY,
        "",
    )
    .await;
    // The Anthropic API down (and Vertex too): Claude on Bedrock takes over.
    fault(
        &mock,
        json!({"route": "anthropic", "kind": "status", "status": 503}),
    )
    .await;
    fault(
        &mock,
        json!({"route": "vertex", "kind": "status", "status": 503}),
    )
    .await;
    tool_call_served_by(&gw, &format!("bedrock/{CLAUDE_ON_BEDROCK}")).await;
    // The Anthropic API down and Bedrock throttled: Claude on Vertex takes over.
    mock.clear_faults();
    fault(
        &mock,
        json!({"route": "anthropic", "kind": "status", "status": 503}),
    )
    .await;
    fault(&mock, json!({"route": "bedrock", "kind": "rate_limit"})).await;
    tool_call_served_by(&gw, &format!("vertex/{CLAUDE_ON_VERTEX}")).await;
}

#[tokio::test]
async fn a_stream_cut_on_bedrock_is_continued_on_vertex() {
    let extra = format!(
        r#"
[models.claude-b]
targets = [{{ provider = "bedrock", model = "{CLAUDE_ON_BEDROCK}" }}]
fallbacks = ["claude-v"]
[models.claude-v]
targets = [{{ provider = "vertex", model = "{CLAUDE_ON_VERTEX}" }}]
"#
    );
    let (mock, gw) = start(&["anthropic"], BEDROCK_SECRET_ACCESS_KEY, &extra).await;
    fault(
        &mock,
        json!({"route": "bedrock", "kind": "cut_after", "events": 6}),
    )
    .await;
    let mut body = anthropic_body(true);
    body["model"] = json!("claude-b");
    let text = post_json(&gw, "/v1/messages", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    let words: String = sse_data(&text)
        .into_iter()
        .filter_map(|event| event["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert!(words.starts_with("Backstop mock provider"), "{words}");
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].outcome, "cut after 6");
    // Vertex continued from what Bedrock had delivered, as an assistant prefill.
    let continuation = &requests[1].body;
    assert_eq!(continuation["anthropic_version"], "vertex-2023-10-16");
    let last = continuation["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "assistant", "{continuation}");
}

#[tokio::test]
async fn azure_serves_a_deployment_and_its_content_filter_falls_back() {
    let (mock, gw) = start(&["anthropic"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    let response = post_json(&gw, "/v1/chat/completions", &chat("gpt", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], "azure/gpt4o-prod");
    let text = response.text().await.unwrap();
    assert!(text.contains("\"usage\""), "{text}");
    let request = only_request(&mock);
    assert_eq!(
        request.path,
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.headers["api-key"], "***");
    assert!(!request.headers.contains_key("authorization"));
    mock.clear_requests();
    fault(
        &mock,
        json!({"route": "azure", "kind": "content_filter", "count": 1}),
    )
    .await;
    let response = post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-fallback"], "true");
    assert_eq!(response.headers()["x-backstop-target"], "openai/gpt-4o");
    assert_eq!(
        mock.requests().len(),
        2,
        "the filtered target is not retried"
    );
}

#[tokio::test]
async fn azure_rate_limits_wait_what_retry_after_ms_says() {
    let (mock, gw) = start(&["anthropic"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    fault(
        &mock,
        json!({"route": "azure", "kind": "rate_limit", "retry_after": "0", "count": 1}),
    )
    .await;
    let response = post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], "azure/gpt4o-prod");
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
}

/// The routes the mock saw, in order.
fn routes_seen(mock: &MockServer) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|request| request.route.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn azures_output_filter_on_a_200_fails_over_to_openai_streamed_or_not() {
    let (mock, gw) = start(&["anthropic"], BEDROCK_SECRET_ACCESS_KEY, "").await;
    fault(
        &mock,
        json!({"route": "azure", "kind": "output_filter", "count": 2}),
    )
    .await;
    let response = post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], "openai/gpt-4o");
    assert_eq!(response.headers()["x-backstop-fallback"], "true");
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|text| text.starts_with("Backstop mock provider")));
    assert_eq!(routes_seen(&mock), ["azure", "openai"], "no retry on Azure");

    mock.clear_requests();
    let response = post_json(&gw, "/v1/chat/completions", &chat("gpt", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], "openai/gpt-4o");
    let text = response.text().await.unwrap();
    assert!(!text.contains("content_filter"), "{text}");
    assert_eq!(text.matches("\"role\":\"assistant\"").count(), 1, "{text}");
    assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(routes_seen(&mock), ["azure", "openai"]);
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.lines().any(|line| line.starts_with(
            "backstop_upstream_attempts_total{target=\"azure/gpt4o-prod\",outcome=\"failure\",class=\"content_filter\"} 2"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn azures_output_filter_is_returned_when_the_model_says_so() {
    let strict = r#"
[models.gpt-strict]
targets = [{ provider = "azure", model = "gpt4o-prod" }]
fallbacks = ["gpt-openai"]
on_content_filter = "return"
"#;
    let (mock, gw) = start(&["anthropic"], BEDROCK_SECRET_ACCESS_KEY, strict).await;
    fault(
        &mock,
        json!({"route": "azure", "kind": "output_filter", "count": 2}),
    )
    .await;
    for stream in [false, true] {
        mock.clear_requests();
        let response = post_json(&gw, "/v1/chat/completions", &chat("gpt-strict", stream)).await;
        assert_eq!(response.status(), 400, "stream {stream}");
        assert_eq!(response.headers()["x-backstop-attempts"], "1");
        assert_eq!(response.headers()["x-backstop-target"], "azure/gpt4o-prod");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("content filter"), "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(routes_seen(&mock), ["azure"], "no fallback");
    }
}
