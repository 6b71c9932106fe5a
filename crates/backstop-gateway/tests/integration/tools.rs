//! Tool APIs behind the gateway (`[tools.NAME]` at `/tools/NAME/{path}`): a real HTTP tool
//! upstream on port 0 whose answers the test scripts, and the gateway in front of it.

use crate::common::*;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the tool upstream received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    authorization: Option<String>,
    custom: Option<String>,
    traceparent: Option<String>,
    body: String,
}

/// A tool API that answers with the scripted statuses first, then 200 with an echo.
#[derive(Default)]
struct ToolState {
    script: Mutex<VecDeque<u16>>,
    always: Mutex<Option<u16>>,
    body_size: Mutex<usize>,
    seen: Mutex<Vec<Seen>>,
}

struct ToolServer {
    url: String,
    state: Arc<ToolState>,
}

impl ToolServer {
    async fn start() -> Self {
        let state = Arc::new(ToolState::default());
        let app = axum::Router::new()
            .fallback(tool_answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn fail_always(&self, status: Option<u16>) {
        *self.state.always.lock().unwrap() = status;
    }

    fn fail_next(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn tool_answer(State(state): State<Arc<ToolState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        authorization: header("authorization"),
        custom: header("x-custom"),
        traceparent: header("traceparent"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or(*state.always.lock().unwrap());
    if let Some(status) = status {
        let status = http::StatusCode::from_u16(status).unwrap();
        return (
            status,
            axum::Json(serde_json::json!({"error": "tool says no"})),
        )
            .into_response();
    }
    let padding = "x".repeat(*state.body_size.lock().unwrap());
    axum::Json(serde_json::json!({"results": ["one", "two"], "uri": parts.uri.to_string(), "padding": padding}))
        .into_response()
}

const CLIENT_KEY: &str = "client-key-123";
const TOOL_SECRET: &str = "Bearer tool-secret-xyz";

fn config(tool: &ToolServer, backup: Option<&ToolServer>, extra: &str) -> String {
    let backup = backup.map_or(String::new(), |b| {
        format!("[tools.backup]\nbase_url = \"{}\"\n", b.url)
    });
    format!(
        r#"
state = "memory"
[auth]
client_keys = ["{CLIENT_KEY}"]
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[models.m]
targets = [{{ provider = "p", model = "x" }}]
[tools.search]
base_url = "{}/api"
headers = {{ Authorization = "{TOOL_SECRET}" }}
retry = {{ max_attempts = 3, base_delay = "10ms", max_delay = "100ms" }}
circuit_breaker = {{ failure_threshold = 3, open_for = "60s" }}
timeouts = {{ first_byte = "2s", total = "10s" }}
{extra}
{backup}
"#,
        tool.url
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(gw: &TestGateway, method: reqwest::Method, path: &str) -> reqwest::Response {
    client()
        .request(method, gw.url(path))
        .bearer_auth(CLIENT_KEY)
        .header("x-custom", "kept")
        .body("{\"q\": \"rust\"}")
        .send()
        .await
        .unwrap()
}

async fn metrics(gw: &TestGateway) -> String {
    client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_call_is_proxied_with_the_tools_own_credentials() {
    let tool = ToolServer::start().await;
    let gw = gateway(&config(&tool, None, "")).await;
    let response = call(
        &gw,
        reqwest::Method::GET,
        "/tools/search/v1/find?q=rust&n=2",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-tool"], "search");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["results"][0], "one");
    let seen = tool.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].uri, "/api/v1/find?q=rust&n=2");
    assert_eq!(seen[0].authorization.as_deref(), Some(TOOL_SECRET));
    assert_eq!(seen[0].custom.as_deref(), Some("kept"));
    assert_eq!(seen[0].body, "{\"q\": \"rust\"}");
    let encoded = call(
        &gw,
        reqwest::Method::DELETE,
        "/tools/search/items/a%2Fb%20c",
    )
    .await;
    assert_eq!(encoded.status(), 200);
    let root = call(&gw, reqwest::Method::GET, "/tools/search?x=1").await;
    assert_eq!(root.status(), 200);
    let seen = tool.seen();
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(
        seen[1].uri, "/api/items/a%2Fb%20c",
        "the path is sent as written"
    );
    assert_eq!(seen[2].uri, "/api?x=1");
    let text = metrics(&gw).await;
    assert!(
        text.contains(
            "backstop_tool_calls_total{tool=\"search\",outcome=\"success\",class=\"none\"} 3"
        ),
        "{text}"
    );
    assert!(
        !text.contains("tool-secret"),
        "the tool's secret leaked into metrics"
    );
}

#[tokio::test]
async fn the_clients_auth_applies_and_fails_closed() {
    let tool = ToolServer::start().await;
    let gw = gateway(&config(&tool, None, "")).await;
    let anonymous = client()
        .get(gw.url("/tools/search/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client()
        .get(gw.url("/tools/search/x"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        tool.seen().is_empty(),
        "the tool was called without a client key"
    );
    let unknown = call(&gw, reqwest::Method::GET, "/tools/nothing/x").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("known tools: search"));
}

#[tokio::test(start_paused = true)]
async fn a_503ing_tool_is_retried_then_its_breaker_opens_then_text_answers_come_at_once() {
    let tool = ToolServer::start().await;
    let gw = gateway(&config(&tool, None, "on_failure = \"text\"\n")).await;
    tool.fail_always(Some(503));
    let first = call(&gw, reqwest::Method::GET, "/tools/search/find").await;
    assert_eq!(first.status(), 200, "a text failure is a 200");
    assert_eq!(first.headers()["x-backstop-attempts"], "3");
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert_eq!(body["tool"], "search");
    assert_eq!(body["error"], "transient: status 503");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "search is unavailable (transient: status 503). Proceed with the information you have"
        ),
        "{message}"
    );
    assert_eq!(tool.seen().len(), 3, "three attempts of an idempotent GET");

    let started = tokio::time::Instant::now();
    let second = call(&gw, reqwest::Method::GET, "/tools/search/find").await;
    assert!(started.elapsed() < Duration::from_millis(50));
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().unwrap().starts_with("circuit open"),
        "{body}"
    );
    assert_eq!(
        tool.seen().len(),
        3,
        "an open breaker does not call the tool"
    );

    let text = metrics(&gw).await;
    for line in [
        "backstop_tool_calls_total{tool=\"search\",outcome=\"failure\",class=\"transient\"} 3",
        "backstop_tool_calls_total{tool=\"search\",outcome=\"rejected\",class=\"breaker_open\"} 1",
        "backstop_circuit_state{target=\"search\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    let status: serde_json::Value = client()
        .get(gw.url("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["tools"]["search"]["state"], "open");
}

#[tokio::test(start_paused = true)]
async fn a_post_is_retried_only_with_an_idempotency_key_or_retry_post() {
    let tool = ToolServer::start().await;
    let gw = gateway(&config(&tool, None, "")).await;
    tool.fail_next(&[503, 503]);
    let post = call(&gw, reqwest::Method::POST, "/tools/search/run").await;
    assert_eq!(
        post.status(),
        503,
        "on_failure = \"error\" answers the tool's status"
    );
    assert_eq!(
        post.json::<serde_json::Value>().await.unwrap()["error"],
        "tool says no"
    );
    assert_eq!(tool.seen().len(), 1, "a POST is not retried by default");

    let keyed = client()
        .post(gw.url("/tools/search/run"))
        .bearer_auth(CLIENT_KEY)
        .header("idempotency-key", "k-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    assert_eq!(keyed.headers()["x-backstop-attempts"], "2");
    assert_eq!(tool.seen().len(), 3);

    let tool2 = ToolServer::start().await;
    let gw2 = gateway(&config(&tool2, None, "").replace(
        "max_delay = \"100ms\" }",
        "max_delay = \"100ms\", post = true }",
    ))
    .await;
    tool2.fail_next(&[500]);
    let post = call(&gw2, reqwest::Method::POST, "/tools/search/run").await;
    assert_eq!(post.status(), 200);
    assert_eq!(tool2.seen().len(), 2, "retry.post = true retries a POST");
}

#[tokio::test(start_paused = true)]
async fn a_failing_tool_falls_back_to_another_and_a_bad_request_is_returned_as_is() {
    let tool = ToolServer::start().await;
    let backup = ToolServer::start().await;
    let gw = gateway(&config(&tool, Some(&backup), "fallbacks = [\"backup\"]\n")).await;
    tool.fail_next(&[422]);
    let invalid = call(&gw, reqwest::Method::GET, "/tools/search/find").await;
    assert_eq!(
        invalid.status(),
        422,
        "the request's own fault is returned, not retried"
    );
    assert!(
        backup.seen().is_empty(),
        "no fallback for a permanent error"
    );
    assert_eq!(tool.seen().len(), 1);

    tool.fail_always(Some(502));
    let response = call(&gw, reqwest::Method::GET, "/tools/search/find?q=1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-tool"], "backup");
    assert_eq!(backup.seen()[0].uri, "/find?q=1");
    assert_eq!(
        backup.seen()[0].authorization,
        None,
        "search's credentials are not sent to another tool"
    );
}

#[tokio::test]
async fn an_answer_over_max_response_bytes_is_refused() {
    let tool = ToolServer::start().await;
    let gw = gateway(&config(&tool, None, "max_response_bytes = \"4KB\"\n")).await;
    *tool.state.body_size.lock().unwrap() = 10_000;
    let response = call(&gw, reqwest::Method::GET, "/tools/search/big").await;
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(text.contains("max_response_bytes"), "{text}");
    assert_eq!(tool.seen().len(), 1, "too large is not retried");
}

#[tokio::test]
async fn a_tool_that_does_not_answer_in_time_is_a_timeout() {
    let gw = gateway(
        r#"
state = "memory"
[tools.dead]
base_url = "http://127.0.0.1:9"
retry = { max_attempts = 2, base_delay = "10ms", max_delay = "20ms" }
on_failure = "text"
message = "The {tool} tool failed: {error}."
"#,
    )
    .await;
    let response = client().get(gw.url("/tools/dead/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The dead tool failed: transient: cannot connect"),
        "{message}"
    );
}

#[tokio::test]
async fn a_traced_tool_call_is_a_span_with_one_child_per_attempt_carried_to_the_tool() {
    use crate::telemetry::{attribute, collector, hex, CLIENT_SPAN, CLIENT_TRACE};
    let tool = ToolServer::start().await;
    tool.fail_next(&[503]);
    let collector = collector().await;
    let telemetry = format!("[telemetry]\notlp_endpoint = \"{}\"\n", collector.url);
    let gw = gateway(&config(&tool, None, &telemetry)).await;
    let response = client()
        .get(gw.url("/tools/search/q"))
        .bearer_auth(CLIENT_KEY)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let arrived = eventually(Duration::from_secs(10), || {
        collector.spans.lock().unwrap().len() >= 3
    })
    .await;
    assert!(arrived, "{:?}", collector.spans.lock().unwrap());
    let spans: Vec<_> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(_, span)| span.clone())
        .collect();
    let call = spans.iter().find(|s| s.name == "tool search").unwrap();
    assert_eq!(hex(&call.trace_id), CLIENT_TRACE);
    assert_eq!(hex(&call.parent_span_id), CLIENT_SPAN);
    assert_eq!(
        attribute(call, "http.response.status_code").as_deref(),
        Some("200")
    );
    let mut attempts: Vec<_> = spans.iter().filter(|s| s.name == "call search").collect();
    attempts.sort_by_key(|s| attribute(s, "backstop.attempt"));
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|s| s.parent_span_id == call.span_id));
    assert_eq!(
        attribute(attempts[0], "backstop.outcome").as_deref(),
        Some("failed")
    );
    assert_eq!(
        attribute(attempts[0], "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(
        attribute(attempts[1], "backstop.outcome").as_deref(),
        Some("answered")
    );
    // Each attempt reached the tool as the parent of what the tool does.
    let carried: Vec<String> = tool
        .seen()
        .into_iter()
        .filter_map(|s| s.traceparent)
        .collect();
    let expected: Vec<String> = attempts
        .iter()
        .map(|s| format!("00-{CLIENT_TRACE}-{}-01", hex(&s.span_id)))
        .collect();
    assert_eq!(carried, expected);
}
