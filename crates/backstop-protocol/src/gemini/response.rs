//! Gemini `GenerateContentResponse` <-> the canonical response.

use serde_json::{json, Map, Value};

use crate::canonical::{ChatResponse, ContentPart, FinishReason, Usage};
use crate::json::{parse_object, to_vec};
use crate::ProtocolError;

/// Maps a Gemini `finishReason`; `STOP` after function calls means the model waits for them.
pub(crate) fn finish_from(reason: &str, called_tools: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => FinishReason::ContentFilter,
        _ if called_tools => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// The Gemini `finishReason` for a canonical reason.
pub(crate) fn finish_to(r: &FinishReason) -> &'static str {
    match r {
        FinishReason::Stop | FinishReason::ToolCalls | FinishReason::StopSequence(_) => "STOP",
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
    }
}

/// Reads `usageMetadata` (thinking tokens count as output).
pub(crate) fn usage_from(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    Usage {
        input_tokens: n("promptTokenCount").unwrap_or(0),
        output_tokens: n("candidatesTokenCount").unwrap_or(0)
            + n("thoughtsTokenCount").unwrap_or(0),
        cache_read_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: None,
    }
}

/// The Gemini `usageMetadata` for canonical usage.
pub(crate) fn usage_to(u: &Usage) -> Value {
    let mut o = Map::new();
    o.insert("promptTokenCount".into(), u.input_tokens.into());
    o.insert("candidatesTokenCount".into(), u.output_tokens.into());
    o.insert(
        "totalTokenCount".into(),
        (u.input_tokens + u.output_tokens).into(),
    );
    if let Some(c) = u.cache_read_tokens {
        o.insert("cachedContentTokenCount".into(), c.into());
    }
    Value::Object(o)
}

/// Appends the content of one candidate's parts; `calls` numbers tool calls across a stream.
pub(crate) fn parts_to_content(parts: &[Value], calls: &mut u32, out: &mut Vec<ContentPart>) {
    for p in parts {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !t.is_empty() {
                out.push(ContentPart::Text(t.to_owned()));
            }
        } else if let Some(f) = p.get("functionCall") {
            let id = f
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(crate::call_id::fresh_call_id, str::to_owned);
            *calls += 1;
            out.push(ContentPart::ToolCall {
                id,
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: f
                    .get("args")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            });
        }
    }
}

/// Decodes a Gemini `generateContent` response (first candidate). A prompt blocked by safety
/// filters (no candidates, `promptFeedback.blockReason`) decodes as an empty content-filter answer.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProtocolError> {
    let o = Value::Object(parse_object(body)?);
    let mut content = Vec::new();
    let mut calls = 0;
    let cand = o.pointer("/candidates/0");
    if let Some(parts) = cand
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
    {
        parts_to_content(parts, &mut calls, &mut content);
    }
    let finish = match cand
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
    {
        Some(r) => finish_from(r, calls > 0),
        None if o.pointer("/promptFeedback/blockReason").is_some() => FinishReason::ContentFilter,
        None if calls > 0 => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    if cand.is_none() && finish != FinishReason::ContentFilter {
        return Err(ProtocolError::MissingField("candidates"));
    }
    Ok(ChatResponse {
        id: o
            .get("responseId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        model: o
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        content,
        finish,
        usage: o.get("usageMetadata").map(usage_from).unwrap_or_default(),
    })
}

/// Converts canonical content into Gemini parts.
pub(crate) fn content_to_parts(content: &[ContentPart]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(t) => Some(json!({"text": t})),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({"functionCall": {
                "id": id, "name": name,
                "args": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
            }})),
            ContentPart::Image(_) | ContentPart::ToolResult { .. } => None,
        })
        .collect()
}

/// Encodes a canonical response as a Gemini `generateContent` body (for the mock provider).
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    to_vec(&json!({
        "candidates": [{
            "content": {"role": "model", "parts": content_to_parts(&resp.content)},
            "finishReason": finish_to(&resp.finish),
            "index": 0,
        }],
        "usageMetadata": usage_to(&resp.usage),
        "modelVersion": resp.model,
        "responseId": resp.id,
    }))
}
