//! Anthropic Messages responses <-> the canonical response.

use serde_json::{json, Map, Value};

use crate::canonical::{ChatResponse, ContentPart, FinishReason, Usage};
use crate::json::{obj, opt_array, opt_str, opt_u64, parse_object, req_str, response_from, to_vec};
use crate::ProtocolError;

/// Maps an Anthropic `stop_reason` (and `stop_sequence`).
pub(crate) fn finish_from(reason: &str, stop_sequence: Option<&str>) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "stop_sequence" => FinishReason::StopSequence(stop_sequence.map(str::to_owned)),
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The Anthropic `stop_reason` and `stop_sequence` for a canonical reason.
pub(crate) fn finish_to(r: &FinishReason) -> (&'static str, Option<&str>) {
    match r {
        FinishReason::Stop => ("end_turn", None),
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolCalls => ("tool_use", None),
        FinishReason::ContentFilter => ("refusal", None),
        FinishReason::StopSequence(s) => ("stop_sequence", s.as_deref()),
    }
}

/// Reads an Anthropic `usage` object. Anthropic's `input_tokens` excludes cache reads and writes;
/// canonical input counts them.
pub(crate) fn usage_from(u: &Value) -> Result<Usage, ProtocolError> {
    let u = obj(u, "usage")?;
    let read = opt_u64(u, "cache_read_input_tokens", "usage")?;
    let write = opt_u64(u, "cache_creation_input_tokens", "usage")?;
    Ok(Usage {
        input_tokens: opt_u64(u, "input_tokens", "usage")?.unwrap_or(0)
            + read.unwrap_or(0)
            + write.unwrap_or(0),
        output_tokens: opt_u64(u, "output_tokens", "usage")?.unwrap_or(0),
        cache_read_tokens: read,
        cache_write_tokens: write,
    })
}

/// The Anthropic `usage` object for canonical usage.
pub(crate) fn usage_to(u: &Usage) -> Value {
    let read = u.cache_read_tokens.unwrap_or(0);
    let write = u.cache_write_tokens.unwrap_or(0);
    let mut o = Map::new();
    o.insert(
        "input_tokens".into(),
        u.input_tokens.saturating_sub(read + write).into(),
    );
    if let Some(w) = u.cache_write_tokens {
        o.insert("cache_creation_input_tokens".into(), w.into());
    }
    if let Some(r) = u.cache_read_tokens {
        o.insert("cache_read_input_tokens".into(), r.into());
    }
    o.insert("output_tokens".into(), u.output_tokens.into());
    Value::Object(o)
}

/// Decodes an Anthropic Messages response body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProtocolError> {
    let o = parse_object(body)?;
    let mut content = Vec::new();
    for (i, b) in opt_array(&o, "content", "")?.iter().enumerate() {
        let path = format!("content[{i}]");
        let b = obj(b, &path)?;
        match req_str(b, "type", &path)? {
            "text" => content.push(ContentPart::Text(req_str(b, "text", &path)?.to_owned())),
            "tool_use" => content.push(ContentPart::ToolCall {
                id: req_str(b, "id", &path)?.to_owned(),
                name: req_str(b, "name", &path)?.to_owned(),
                arguments: b
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            }),
            // Thinking and server-tool blocks have no equivalent in the other protocols.
            _ => {}
        }
    }
    let finish = match opt_str(&o, "stop_reason", "")? {
        Some(r) => finish_from(r, opt_str(&o, "stop_sequence", "")?),
        None => FinishReason::Stop,
    };
    response_from(&o, content, finish, usage_from)
}

/// Encodes a canonical response as an Anthropic `message` body.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let content: Vec<Value> = resp
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(t) => Some(json!({"type": "text", "text": t})),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({
                "type": "tool_use", "id": id, "name": name,
                "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
            })),
            ContentPart::Image(_) | ContentPart::ToolResult { .. } => None,
        })
        .collect();
    let (stop_reason, stop_sequence) = finish_to(&resp.finish);
    to_vec(&json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_to(&resp.usage),
    }))
}

/// An id Anthropic clients recognise: the upstream's, or `msg_<id>` when it is foreign.
pub(crate) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else if id.is_empty() {
        "msg_backstop".to_owned()
    } else {
        format!("msg_{id}")
    }
}
