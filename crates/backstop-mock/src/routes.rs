//! The HTTP surface: provider endpoints, model lists, the control API, and a 404 for the rest.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::control;
use crate::errors::{self, Context};
use crate::fault::Route;
use crate::handler::{serve, ConnectionNo, Incoming, Shared, Target};
use crate::log::Draft;

/// Models listed by `GET /v1/models` (any name is accepted in requests).
const MODELS: [(&str, &str); 6] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5-20250929", "anthropic"),
    ("claude-haiku-4-5-20251001", "anthropic"),
    ("gemini-2.0-flash", "google"),
    ("gemini-2.5-pro", "google"),
];

/// Builds the router over shared state.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/responses", post(openai_responses))
        .route("/v1/messages", post(anthropic))
        .route("/v1beta/models/{call}", post(gemini))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure),
        )
        .route("/model/{model}/{action}", post(bedrock))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{call}",
            post(vertex),
        )
        .route("/token", post(token))
        .route("/v1/models", get(models))
        .route("/v1beta/models", get(models))
        .route(
            "/_mock/faults",
            get(control::list_faults)
                .post(control::post_faults)
                .delete(control::delete_faults),
        )
        .route("/api/v2/status.json", get(crate::status_page::status_json))
        .route("/_mock/status", post(crate::status_page::set_status))
        .route(
            "/_mock/requests",
            get(control::list_requests).delete(control::delete_requests),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(shared)
}

async fn openai(State(s): State<Arc<Shared>>, parts: Parts, body: Bytes) -> Response {
    serve(s, Incoming::new(Target::Openai, parts, body)).await
}

async fn openai_embeddings(State(s): State<Arc<Shared>>, parts: Parts, body: Bytes) -> Response {
    serve(s, Incoming::new(Target::OpenaiEmbeddings, parts, body)).await
}

async fn openai_responses(State(s): State<Arc<Shared>>, parts: Parts, body: Bytes) -> Response {
    serve(s, Incoming::new(Target::OpenaiResponses, parts, body)).await
}

async fn anthropic(State(s): State<Arc<Shared>>, parts: Parts, body: Bytes) -> Response {
    serve(s, Incoming::new(Target::Anthropic, parts, body)).await
}

async fn gemini(
    State(s): State<Arc<Shared>>,
    Path(call): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let Some((model, action)) = call.rsplit_once(':') else {
        return not_found(parts.uri).await;
    };
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        "batchEmbedContents" => {
            let target = Target::GeminiEmbeddings {
                model: model.to_owned(),
            };
            return serve(s, Incoming::new(target, parts, body)).await;
        }
        _ => return not_found(parts.uri).await,
    };
    let sse = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    let target = Target::Gemini {
        model: model.to_owned(),
        stream,
        sse,
    };
    serve(s, Incoming::new(target, parts, body)).await
}

async fn azure(
    State(s): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    serve(s, Incoming::new(Target::Azure { deployment }, parts, body)).await
}

async fn bedrock(
    State(s): State<Arc<Shared>>,
    Path((model, action)): Path<(String, String)>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let stream = match action.as_str() {
        "invoke" => false,
        "invoke-with-response-stream" => true,
        _ => return not_found(parts.uri).await,
    };
    serve(
        s,
        Incoming::new(Target::Bedrock { model, stream }, parts, body),
    )
    .await
}

async fn vertex(
    State(s): State<Arc<Shared>>,
    Path((_project, _location, publisher, call)): Path<(String, String, String, String)>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let Some((model, action)) = call.rsplit_once(':') else {
        return not_found(parts.uri).await;
    };
    let stream = match (publisher.as_str(), action) {
        ("anthropic", "rawPredict") | ("google", "generateContent") => false,
        ("anthropic", "streamRawPredict") | ("google", "streamGenerateContent") => true,
        _ => return not_found(parts.uri).await,
    };
    let sse = publisher == "anthropic"
        || parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    let target = Target::Vertex {
        publisher,
        model: model.to_owned(),
        stream,
        sse,
    };
    serve(s, Incoming::new(target, parts, body)).await
}

/// `POST /token`: the OAuth token endpoint of Vertex's service accounts, recorded in the
/// request log under route `vertex`.
async fn token(State(s): State<Arc<Shared>>, parts: Parts, body: Bytes) -> Response {
    let mut guard = s.log.begin(Draft {
        route: Route::Vertex,
        method: parts.method.to_string(),
        version: format!("{:?}", parts.version),
        connection: ConnectionNo::of(&parts.extensions),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let (status, answer) = crate::cloud::token(&String::from_utf8_lossy(&body));
    guard.set_status(status);
    guard.finish(if status == 200 { "ok" } else { "refused" });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(answer)).into_response()
}

/// `GET /v1/models` (OpenAI list, or Anthropic's when `anthropic-version` is sent) and
/// `GET /v1beta/models` (Gemini's). Error faults on route `models` apply here.
async fn models(State(s): State<Arc<Shared>>, parts: Parts) -> Response {
    let headers = &parts.headers;
    let mut guard = s.log.begin(Draft {
        route: Route::Models,
        method: parts.method.to_string(),
        version: format!("{:?}", parts.version),
        connection: ConnectionNo::of(&parts.extensions),
        path: parts.uri.path().to_owned(),
        headers: headers.clone(),
        body: Bytes::new(),
    });
    let fault = s.faults.pick(Route::Models, "", Instant::now(), |kind| {
        kind.models_error().is_some()
    });
    if let Some((kind, case)) = fault.and_then(|kind| Some((kind.name(), kind.models_error()?))) {
        guard.set_fault(kind);
        let rendered = errors::render(
            Route::Models,
            case,
            &Context {
                model: "",
                retry_after: None,
                input_tokens: 0,
            },
        );
        guard.set_status(rendered.status);
        guard.finish(format!("status {}", rendered.status));
        let status =
            StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(rendered.body)).into_response();
    }
    guard.set_status(200);
    guard.finish("ok");
    let body = if parts.uri.path().starts_with("/v1beta") {
        gemini_models()
    } else if headers.contains_key("anthropic-version") {
        anthropic_models()
    } else {
        openai_models()
    };
    Json(body).into_response()
}

fn openai_models() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, owner)| json!({ "id": id, "object": "model", "created": 1_715_367_049, "owned_by": owner }))
        .collect();
    json!({ "object": "list", "data": data })
}

fn anthropic_models() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .filter(|(_, owner)| *owner == "anthropic")
        .map(|(id, _)| json!({ "type": "model", "id": id, "display_name": id, "created_at": "2025-09-29T00:00:00Z" }))
        .collect();
    let first = data.first().map(|m| m["id"].clone());
    let last = data.last().map(|m| m["id"].clone());
    json!({ "data": data, "has_more": false, "first_id": first, "last_id": last })
}

fn gemini_models() -> Value {
    let models: Vec<Value> = MODELS
        .iter()
        .filter(|(_, owner)| *owner == "google")
        .map(|(id, _)| {
            json!({
                "name": format!("models/{id}"), "displayName": id, "inputTokenLimit": 1_048_576,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]
            })
        })
        .collect();
    json!({ "models": models })
}

async fn not_found(uri: Uri) -> Response {
    let message = format!(
        "backstop-mock has no endpoint {}; it serves POST /v1/chat/completions, POST /v1/responses, POST /v1/messages, \
         POST /v1beta/models/MODEL:generateContent, GET /v1/models and /_mock/faults, /_mock/requests",
        uri.path()
    );
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "type": "not_found", "message": message } })),
    )
        .into_response()
}
