//! The edge without sockets: the whole app driven with `Router::oneshot`. Everything here is
//! answered before any upstream call (the one provider points at a closed port).

use crate::config;
use crate::pipeline::Gateway;
use crate::server::app;
use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const CONFIG: &str = r#"
[auth]
client_keys = ["client-key"]
protect_metrics = true
[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[models.gpt]
targets = [{ provider = "up", model = "gpt-4o-mini" }]
[server]
max_body_size = "1KB"
"#;

fn gateway(text: &str) -> Arc<Gateway> {
    Arc::new(Gateway::new(config::parse(text, &|_| None).unwrap()).unwrap())
}

/// Sends `method path` with `body` and `headers`; the status and the body as JSON.
async fn call(
    gateway: &Arc<Gateway>,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app(gateway.clone())
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const OPENAI: (&str, &str) = ("POST", "/v1/chat/completions");
const ANTHROPIC: (&str, &str) = ("POST", "/v1/messages");
const KEY: (&str, &str) = ("authorization", "Bearer client-key");

fn chat(model: &str) -> String {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// The error's type, checking the body has the shape of `route`'s protocol.
fn error_type(route: (&str, &str), body: &Value) -> String {
    if route == ANTHROPIC {
        assert_eq!(body["type"], "error", "{body}");
    }
    body["error"]["type"]
        .as_str()
        .unwrap_or_else(|| panic!("no error type in {body}"))
        .to_string()
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_401_in_the_callers_protocol() {
    let gw = gateway(CONFIG);
    for route in [OPENAI, ANTHROPIC] {
        let (status, body) = call(&gw, route, &[], chat("gpt")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_type(route, &body), "authentication_error");
        let wrong = [("x-api-key", "nope")];
        let (status, body) = call(&gw, route, &wrong, chat("gpt")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid"));
    }
}

#[tokio::test]
async fn the_key_passes_in_either_header_and_any_scheme_case() {
    let gw = gateway(CONFIG);
    for key in [
        ("authorization", "BEARER client-key"),
        ("authorization", "bearer   client-key"),
        ("x-api-key", "client-key"),
    ] {
        // Past authentication, an unknown model is the next thing to fail.
        let (status, body) = call(&gw, OPENAI, &[key], chat("nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{key:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("gpt"));
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_and_malformed_json_a_400_in_both_protocols() {
    let gw = gateway(CONFIG);
    let large =
        json!({"model": "gpt", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    for route in [OPENAI, ANTHROPIC] {
        let (status, body) = call(&gw, route, &[KEY], large.to_string()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_body_size"));
        let (status, body) = call(&gw, route, &[KEY], "{\"model\": ").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_type(route, &body), "invalid_request_error");
    }
}

#[tokio::test]
async fn metrics_and_status_need_a_key_when_protected_and_health_never_does() {
    let gw = gateway(CONFIG);
    for path in ["/metrics", "/status"] {
        let (status, _) = call(&gw, ("GET", path), &[], Body::empty()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = call(&gw, ("GET", path), &[KEY], Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, body) = call(&gw, ("GET", "/healthz"), &[], Body::empty()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn the_admin_api_is_disabled_with_client_keys_and_no_admin_key() {
    let gw = gateway(CONFIG);
    let (status, body) = call(&gw, ("GET", "/admin/targets"), &[KEY], Body::empty()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin_key"));
}

#[tokio::test]
async fn an_unknown_route_is_a_404_and_the_model_list_needs_the_key() {
    let gw = gateway(CONFIG);
    let (status, body) = call(&gw, ("GET", "/v2/nothing"), &[KEY], Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v2/nothing"));
    let (status, _) = call(&gw, ("GET", "/v1/models"), &[], Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&gw, ("GET", "/v1/models"), &[KEY], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], "gpt");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_with_allow_and_an_error_in_the_paths_protocol() {
    let gateway = gateway(CONFIG);
    for (path, anthropic) in [
        ("/v1/chat/completions", false),
        ("/v1/messages", true),
        ("/v1/models", false),
    ] {
        let request = Request::builder()
            .method("PUT")
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app(gateway.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = response.headers()[http::header::ALLOW].to_str().unwrap();
        assert!(
            allow.contains("POST") || allow.contains("GET"),
            "{path}: {allow}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["type"] == "error", anthropic, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("does not take PUT"), "{path}: {body}");
    }
}

/// Every request's future is allocated and moved once at the edge: an upstream call, its largest part, is held
/// in it once (not once per place the engine and the tracing await it, which made it 57 KB).
#[test]
fn a_request_future_stays_small() {
    let gateway = gateway(CONFIG);
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .body(Body::empty())
        .unwrap();
    let future =
        crate::routes::model_request(&gateway, backstop_protocol::Protocol::OpenAi, request);
    let size = std::mem::size_of_val(&future);
    assert!(
        size < 16 * 1024,
        "the future of a request takes {size} bytes"
    );
}
