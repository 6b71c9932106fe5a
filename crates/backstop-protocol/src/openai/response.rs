//! OpenAI Chat Completions responses <-> the canonical response.

use serde_json::{json, Map, Value};

use crate::canonical::{join_text, ChatResponse, ContentPart, FinishReason, Usage};
use crate::json::{
    obj, opt_array, opt_str, opt_u64, parse_object, req_str, response_from, to_vec, unix_now,
};
use crate::ProtocolError;

/// Maps an OpenAI `finish_reason`.
pub(crate) fn finish_from(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The OpenAI `finish_reason` for a canonical reason.
pub(crate) fn finish_to(r: &FinishReason) -> &'static str {
    match r {
        FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Reads an OpenAI `usage` object.
pub(crate) fn usage_from(u: &Value) -> Result<Usage, ProtocolError> {
    let u = obj(u, "usage")?;
    let cached = match u.get("prompt_tokens_details") {
        Some(d @ Value::Object(_)) => opt_u64(
            obj(d, "usage.prompt_tokens_details")?,
            "cached_tokens",
            "usage.prompt_tokens_details",
        )?,
        _ => None,
    };
    Ok(Usage {
        input_tokens: opt_u64(u, "prompt_tokens", "usage")?.unwrap_or(0),
        output_tokens: opt_u64(u, "completion_tokens", "usage")?.unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: None,
    })
}

/// The OpenAI `usage` object for canonical usage.
pub(crate) fn usage_to(u: &Usage) -> Value {
    let mut o = Map::new();
    o.insert("prompt_tokens".into(), u.input_tokens.into());
    o.insert("completion_tokens".into(), u.output_tokens.into());
    o.insert(
        "total_tokens".into(),
        (u.input_tokens + u.output_tokens).into(),
    );
    if let Some(c) = u.cache_read_tokens {
        o.insert("prompt_tokens_details".into(), json!({"cached_tokens": c}));
    }
    Value::Object(o)
}

/// Decodes an OpenAI Chat Completions response body (first choice).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProtocolError> {
    let o = parse_object(body)?;
    let choices = opt_array(&o, "choices", "")?;
    let choice = obj(
        choices
            .first()
            .ok_or(ProtocolError::MissingField("choices"))?,
        "choices[0]",
    )?;
    let msg = obj(
        choice
            .get("message")
            .ok_or(ProtocolError::MissingField("choices[0].message"))?,
        "choices[0].message",
    )?;
    let mut content = Vec::new();
    match msg.get("content") {
        Some(Value::String(s)) if !s.is_empty() => content.push(ContentPart::Text(s.clone())),
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    content.push(ContentPart::Text(t.to_owned()));
                }
            }
        }
        _ => {}
    }
    if let Some(r) = opt_str(msg, "refusal", "choices[0].message")? {
        content.push(ContentPart::Text(r.to_owned()));
    }
    for (i, c) in opt_array(msg, "tool_calls", "choices[0].message")?
        .iter()
        .enumerate()
    {
        let p = format!("choices[0].message.tool_calls[{i}]");
        let c = obj(c, &p)?;
        let fp = format!("{p}.function");
        let f = obj(c.get("function").unwrap_or(&Value::Null), &fp)?;
        content.push(ContentPart::ToolCall {
            id: req_str(c, "id", &p)?.to_owned(),
            name: req_str(f, "name", &fp)?.to_owned(),
            arguments: opt_str(f, "arguments", &fp)?.unwrap_or("").to_owned(),
        });
    }
    let finish =
        opt_str(choice, "finish_reason", "choices[0]")?.map_or(FinishReason::Stop, finish_from);
    response_from(&o, content, finish, usage_from)
}

/// The tool calls among `content`, as an assistant message's OpenAI `tool_calls`.
pub(crate) fn tool_calls(content: &[ContentPart]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|p| match p {
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": arguments}
            })),
            ContentPart::Text(_) | ContentPart::Image(_) | ContentPart::ToolResult { .. } => None,
        })
        .collect()
}

/// Encodes a canonical response as an OpenAI `chat.completion` body.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let text = join_text(&resp.content);
    let calls = tool_calls(&resp.content);
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            text.into()
        },
    );
    message.insert("refusal".into(), Value::Null);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let body = json!({
        "id": response_id(&resp.id),
        "object": "chat.completion",
        "created": unix_now(),
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_to(&resp.finish),
        }],
        "usage": usage_to(&resp.usage),
    });
    to_vec(&body)
}

/// An id OpenAI clients recognise: the upstream's, or `chatcmpl-<id>` when it is foreign.
pub(crate) fn response_id(id: &str) -> String {
    if id.starts_with("chatcmpl") {
        id.to_owned()
    } else if id.is_empty() {
        "chatcmpl-backstop".to_owned()
    } else {
        format!("chatcmpl-{id}")
    }
}
