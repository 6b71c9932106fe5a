//! `POST /v1/embeddings` in OpenAI's shape, served by OpenAI-compatible and Gemini targets with
//! retries, breakers, the retry budget, usage and cost. A model's embeddings fall back only to
//! models of its own `embedding_space` (vectors of different models cannot be compared);
//! a model without one is served by its own targets only. The region policy (the model's, the client key's
//! and `x-backstop-regions`) applies as to chat requests.

mod serve;

use crate::http::{identify_client, read_client_body, ApiError};
use crate::pipeline::Gateway;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use backstop_protocol::Protocol;
use std::sync::Arc;

/// The embeddings route over `gateway`.
pub fn router<S>(gateway: Arc<Gateway>) -> Router<S> {
    Router::new()
        .route("/v1/embeddings", post(create))
        .with_state(gateway)
}

async fn create(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let result = async {
        let (parts, body) = request.into_parts();
        let config = gateway.config();
        let key = identify_client(config.auth.as_ref(), &parts.headers)?;
        let body = read_client_body(&parts.headers, body, &config).await?;
        let parsed =
            backstop_protocol::validate_embeddings(&body).map_err(ApiError::invalid_request)?;
        let tab = gateway
            .governance()
            .admit(gateway.metrics(), key, &parsed.model, Protocol::OpenAi)
            .await?;
        serve::serve(&gateway, &config, &parsed, body, tab, &parts.headers).await
    }
    .await;
    result.unwrap_or_else(|error: ApiError| {
        tracing::warn!(
            status = error.status.as_u16(),
            kind = error.kind.code(),
            "{}",
            error.message
        );
        error.render(Protocol::OpenAi)
    })
}
