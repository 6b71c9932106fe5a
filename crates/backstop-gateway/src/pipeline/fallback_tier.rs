//! The static tier: when every target and fallback of a model has failed for reasons of their
//! own (not the request's), a model with `static_response` answers with that text, as a
//! normal answer in the caller's protocol (finish reason `stop`, streamed when the request
//! streams), marked `x-backstop-tier: static`.

use super::request::ClientRequest;
use crate::config::Model;
use crate::http::ServedMeta;
use axum::body::Body;
use axum::response::Response;
use backstop_protocol::{
    ChatResponse, ContentPart, FinishReason, StreamEncoder, StreamEvent, Usage,
};
use bytes::BytesMut;
use http::{header, HeaderValue};

/// The static answer of `model` to `request`, if it has one; `calls` upstream calls were made.
pub fn static_answer(request: &ClientRequest, model: &Model, calls: u32) -> Option<Response> {
    let text = model.static_response.as_deref()?;
    let id = format!("backstop-static-{}", request.request_id());
    let (body, content_type) = if request.envelope.stream {
        let mut encoder = StreamEncoder::new(request.protocol, request.envelope.include_usage);
        let mut out = BytesMut::new();
        for event in [
            StreamEvent::Start {
                id,
                model: model.name.clone(),
            },
            StreamEvent::TextDelta {
                text: text.to_string(),
            },
            StreamEvent::Finish {
                reason: FinishReason::Stop,
            },
            StreamEvent::Usage(Usage::default()),
            StreamEvent::Done,
        ] {
            encoder.encode(&event, &mut out);
        }
        (Body::from(out.freeze()), "text/event-stream")
    } else {
        let answer = ChatResponse {
            id,
            model: model.name.clone(),
            content: vec![ContentPart::Text(text.to_string())],
            finish: FinishReason::Stop,
            usage: Usage::default(),
        };
        let body = backstop_protocol::encode_response(request.protocol, &answer);
        (Body::from(body), "application/json")
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    ServedMeta {
        model: model.name.clone(),
        target: None,
        attempts: calls,
        fallback: false,
        degraded: Some("static"),
    }
    .apply(headers);
    tracing::warn!(model = %model.name, "every target failed: answered with the model's static_response");
    Some(response)
}
