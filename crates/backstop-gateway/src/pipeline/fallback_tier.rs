//! The static tier: when every target and fallback of a model has failed for reasons of their
//! own (not the request's), and no cached answer can be given, a model with `static_response`
//! answers with that text, as a normal answer in the caller's protocol (finish reason `stop`,
//! streamed when the request streams), marked `x-backstop-tier: static`.

use super::request::ClientRequest;
use crate::config::Model;
use crate::http::ServedMeta;
use crate::keep::answer::{respond, Rendering};
use axum::response::Response;
use backstop_protocol::{ChatResponse, ContentPart, FinishReason, Usage};

/// The static answer of `model` to `request`, if it has one; `calls` upstream calls were made.
pub fn static_answer(request: &ClientRequest, model: &Model, calls: u32) -> Option<Response> {
    let text = model.static_response.as_deref()?;
    let answer = ChatResponse {
        id: format!("backstop-static-{}", request.request_id()),
        model: model.name.clone(),
        content: vec![ContentPart::Text(text.to_string())],
        finish: FinishReason::Stop,
        usage: Usage::default(),
    };
    let meta = ServedMeta {
        model: model.name.clone(),
        target: None,
        attempts: calls,
        fallback: false,
        degraded: Some("static"),
    };
    tracing::warn!(model = %model.name, "every target failed: answered with the model's static_response");
    Some(respond(&Rendering::of(request), &answer, &meta))
}
