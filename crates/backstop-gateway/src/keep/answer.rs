//! Answers kept in the state layer, in no particular protocol, and answers given from
//! them (or from the static text) in the caller's protocol, whole or as a stream.

use crate::http::ServedMeta;
use axum::body::Body;
use axum::response::Response;
use backstop_protocol::{ChatResponse, ContentPart, FinishReason, Protocol, StreamEncoder, Usage};
use http::{header, HeaderValue};
use serde_json::{json, Value};

/// `answer` as stored: JSON with its text and tool calls, finish reason and usage.
pub fn to_json(answer: &ChatResponse) -> Value {
    let content: Vec<Value> = answer
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text(text) => Some(json!({"text": text})),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({"tool_call": {"id": id, "name": name, "arguments": arguments}})),
            ContentPart::Image(_) | ContentPart::ToolResult { .. } => None,
        })
        .collect();
    let (finish, sequence) = match &answer.finish {
        FinishReason::Stop => ("stop", None),
        FinishReason::Length => ("length", None),
        FinishReason::ToolCalls => ("tool_calls", None),
        FinishReason::ContentFilter => ("content_filter", None),
        FinishReason::StopSequence(sequence) => ("stop_sequence", sequence.clone()),
    };
    json!({
        "id": answer.id,
        "model": answer.model,
        "content": content,
        "finish": finish,
        "stop_sequence": sequence,
        "usage": {"input": answer.usage.input_tokens, "output": answer.usage.output_tokens},
    })
}

/// An answer read back from [`to_json`]; `None` if it is not one.
pub fn from_json(value: &Value) -> Option<ChatResponse> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let mut content = Vec::new();
    for part in value.get("content")?.as_array()? {
        if let Some(t) = text(part, "text") {
            content.push(ContentPart::Text(t));
        } else {
            let call = part.get("tool_call")?;
            content.push(ContentPart::ToolCall {
                id: text(call, "id")?,
                name: text(call, "name")?,
                arguments: text(call, "arguments")?,
            });
        }
    }
    let finish = match value.get("finish")?.as_str()? {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        "stop_sequence" => FinishReason::StopSequence(text(value, "stop_sequence")),
        _ => return None,
    };
    let tokens = |key: &str| {
        value
            .pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
    };
    Some(ChatResponse {
        id: text(value, "id")?,
        model: text(value, "model")?,
        content,
        finish,
        usage: Usage {
            input_tokens: tokens("input").unwrap_or(0),
            output_tokens: tokens("output").unwrap_or(0),
            ..Usage::default()
        },
    })
}

/// How an answer given from what Backstop holds is rendered.
pub struct Rendering {
    /// The caller's protocol.
    pub protocol: Protocol,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Whether an OpenAI streaming caller asked for a usage chunk.
    pub include_usage: bool,
}

impl Rendering {
    /// How `request` wants its answer.
    pub fn of(request: &crate::pipeline::ClientRequest) -> Self {
        Self {
            protocol: request.protocol,
            stream: request.envelope.stream,
            include_usage: request.envelope.include_usage,
        }
    }
}

/// `answer` as a response in the caller's protocol (a stream when it asked for one), with
/// the `x-backstop-*` headers of `meta`.
pub fn respond(rendering: &Rendering, answer: &ChatResponse, meta: &ServedMeta) -> Response {
    let (body, content_type) = if rendering.stream {
        let stream =
            StreamEncoder::encode_whole(rendering.protocol, rendering.include_usage, answer);
        (Body::from(stream.freeze()), "text/event-stream")
    } else {
        let body = backstop_protocol::encode_response(rendering.protocol, answer);
        (Body::from(body), "application/json")
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if rendering.stream {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    meta.apply(headers);
    response
}

/// The names of the tools `answer` calls.
pub fn tool_calls(answer: &ChatResponse) -> impl Iterator<Item = &str> {
    answer.content.iter().filter_map(|part| match part {
        ContentPart::ToolCall { name, .. } => Some(name.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_round_trips_through_its_stored_form() {
        let answer = ChatResponse {
            id: "msg_1".into(),
            model: "m".into(),
            content: vec![
                ContentPart::Text("hello".into()),
                ContentPart::ToolCall {
                    id: "c1".into(),
                    name: "send_email".into(),
                    arguments: "{\"to\":\"a@b\"}".into(),
                },
            ],
            finish: FinishReason::StopSequence(Some("END".into())),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
        };
        let stored = to_json(&answer).to_string();
        let back = from_json(&serde_json::from_str(&stored).unwrap()).unwrap();
        assert_eq!(back, answer);
        assert_eq!(tool_calls(&back).collect::<Vec<_>>(), ["send_email"]);
        assert!(from_json(&json!({"id": "x"})).is_none());
    }
}
