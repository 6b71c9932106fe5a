//! The edge driven with `oneshot`: request ids, panics and the direct model routes.

use super::*;
use crate::config;
use axum::routing::get;
use http::StatusCode;
use serde_json::Value;

const CONFIG: &str = r#"
[auth]
client_keys = ["client-key"]
[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[models.gpt]
targets = [{ provider = "up", model = "gpt-4o-mini" }]
"#;

fn gateway() -> Arc<Gateway> {
    Arc::new(Gateway::new(config::parse(CONFIG, &|_| None).unwrap()).unwrap())
}

async fn boom() -> &'static str {
    panic!("boom")
}

async fn later() -> &'static str {
    tokio::task::yield_now().await;
    panic!("{}", String::from("later"))
}

/// An edge in front of a router whose handlers panic, before and after their first await.
fn panicking_edge() -> Edge {
    let router = Router::new()
        .route("/boom", get(boom))
        .route("/later", get(later));
    Edge::new(gateway(), router)
}

async fn send(
    edge: Edge,
    method: &str,
    path: &str,
    id: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let response = edge
        .oneshot(request.body(Body::from("{}")).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        id,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// One test for both, since the panic's log line is one callsite: a test on another thread
/// without the capturing subscriber could leave it cached as disabled.
#[tokio::test]
async fn a_panic_is_a_500_in_openai_form_logged_with_the_request_id() {
    let kept = crate::test_log::Kept::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(kept.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    for (path, id) in [("/boom", "req-early"), ("/later", "req-late")] {
        let (status, echoed, body) = send(panicking_edge(), "GET", path, Some(id)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(echoed.as_deref(), Some(id), "{path}");
        assert_eq!(body["error"]["type"], "api_error", "{path}: {body}");
        let lines = kept.lines();
        let line = lines.iter().rfind(|line| line.contains("panicked"));
        assert!(
            line.is_some_and(|line| line.contains(id)),
            "{path}: {lines:?}"
        );
    }
}

#[tokio::test]
async fn a_sane_client_id_is_kept_and_any_other_replaced_by_a_uuid() {
    let app = || super::super::app(gateway());
    let (status, id, _) = send(app(), "GET", "/healthz", Some("client-id-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(id.as_deref(), Some("client-id-1"));
    let longest = "a".repeat(MAX_REQUEST_ID);
    let (_, id, _) = send(app(), "GET", "/healthz", Some(&longest)).await;
    assert_eq!(id.as_deref(), Some(longest.as_str()));
    for bad in [None, Some(""), Some(&*"a".repeat(MAX_REQUEST_ID + 1))] {
        let (_, id, _) = send(app(), "GET", "/healthz", bad).await;
        let id = id.unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }
}

#[tokio::test]
async fn the_direct_model_routes_answer_in_their_protocol_with_the_id() {
    for (path, anthropic) in [
        ("/v1/chat/completions", false),
        ("/chat/completions", false),
        ("/v1/messages", true),
    ] {
        let (status, id, body) = send(super::super::app(gateway()), "POST", path, Some("x1")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(id.as_deref(), Some("x1"), "{path}");
        assert_eq!(body["error"]["type"], "authentication_error", "{path}");
        assert_eq!(body["type"] == "error", anthropic, "{path}: {body}");
    }
    let (status, id, _) = send(
        super::super::app(gateway()),
        "GET",
        "/v1/chat/completions",
        Some("x2"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(id.as_deref(), Some("x2"));
}
