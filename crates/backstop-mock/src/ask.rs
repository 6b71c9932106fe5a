//! Reading what a request asks for, in each provider's request format.
//!
//! The mock reads only what shapes its answer: model, stream flag, token limit, whether the
//! conversation ends in an assistant prefill or is due a tool call, and a token estimate of the
//! input. Everything else in the body is accepted as is (and kept in the request log).

use serde_json::Value;

/// What one request asks for, independent of its wire format.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Ask {
    pub(crate) model: String,
    pub(crate) stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub(crate) include_usage: bool,
    pub(crate) max_tokens: Option<u64>,
    /// Text of a trailing assistant message.
    pub(crate) prefill: Option<String>,
    /// The tool to call when a tool call is due (tools given, last message not a tool result).
    pub(crate) tool: Option<String>,
    /// That tool's parameter schema.
    pub(crate) tool_schema: Option<Value>,
    /// The JSON schema a structured answer must match (`{"type": "object"}` for plain JSON mode).
    pub(crate) format: Option<Value>,
    pub(crate) input_tokens: u64,
}

/// The schema of a JSON-mode answer that names none: any object.
fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

/// Deterministic input-token estimate: characters of message text / 4, at least 1.
pub(crate) fn estimate(chars: usize) -> u64 {
    ((chars / 4) as u64).max(1)
}

/// Characters of text in a content value: a string, or blocks/parts with `text` (nested
/// `content` of tool results included).
pub(crate) fn text_chars(content: &Value) -> usize {
    match content {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(map) => {
            map.get("text").map_or(0, text_chars) + map.get("content").map_or(0, text_chars)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// Concatenated text of a content value (for prefill detection).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect(),
        Value::Object(map) => map.get("text").map(text_of).unwrap_or_default(),
        Value::Null | Value::Bool(_) | Value::Number(_) => String::new(),
    }
}

fn model_of(body: &Value) -> Result<String, String> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(_) => Err("model: Input should be a valid string".to_owned()),
        None => Err("you must provide a model parameter".to_owned()),
    }
}

fn messages_of(body: &Value) -> Result<&Vec<Value>, String> {
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => Ok(m),
        Some(Value::Array(_)) => Err("messages: at least one message is required".to_owned()),
        Some(_) => Err("messages: Input should be a valid list".to_owned()),
        None => Err("messages: Field required".to_owned()),
    }
}

fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

fn uint(body: &Value, key: &str) -> Option<u64> {
    body.get(key).and_then(Value::as_u64)
}

/// `POST /v1/chat/completions`.
pub(crate) fn openai(body: &Value) -> Result<Ask, String> {
    let model = model_of(body)?;
    let messages = messages_of(body)?;
    let last = messages.last().map(role).unwrap_or("");
    let chars: usize = messages
        .iter()
        .map(|m| m.get("content").map_or(0, text_chars))
        .sum();
    let tools_off = body.get("tool_choice").and_then(Value::as_str) == Some("none");
    let tool = body
        .get("tools")
        .and_then(|t| t.get(0))
        .and_then(|t| t.pointer("/function/name"))
        .and_then(Value::as_str)
        .filter(|_| last != "tool" && !tools_off)
        .map(str::to_owned);
    Ok(Ask {
        model,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        max_tokens: uint(body, "max_completion_tokens").or_else(|| uint(body, "max_tokens")),
        prefill: messages
            .last()
            .filter(|_| last == "assistant")
            .map(|m| m.get("content").map(text_of).unwrap_or_default()),
        tool,
        tool_schema: body.pointer("/tools/0/function/parameters").cloned(),
        format: match body
            .pointer("/response_format/type")
            .and_then(Value::as_str)
        {
            Some("json_schema") => body.pointer("/response_format/json_schema/schema").cloned(),
            Some("json_object") => Some(any_object()),
            _ => None,
        },
        input_tokens: estimate(chars),
    })
}

/// Anthropic's rules for `tool_use` ids: each of the pattern `^[a-zA-Z0-9_-]+$` and unique
/// in the request, or the whole request is refused, with the API's own messages.
fn check_tool_use_ids(messages: &[Value]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, m) in messages.iter().enumerate() {
        let Some(blocks) = m.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, b) in blocks.iter().enumerate() {
            if b.get("type").and_then(Value::as_str) != Some("tool_use") {
                continue;
            }
            let id = b.get("id").and_then(Value::as_str).unwrap_or("");
            let valid = !id.is_empty()
                && id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !valid {
                return Err(format!(
                    "messages.{i}.content.{j}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                ));
            }
            if !seen.insert(id) {
                return Err(format!(
                    "messages.{i}.content.{j}: `tool_use` ids must be unique"
                ));
            }
        }
    }
    Ok(())
}

/// `POST /v1/messages`.
pub(crate) fn anthropic(body: &Value) -> Result<Ask, String> {
    let model = model_of(body).map_err(|_| "model: Field required".to_owned())?;
    let messages = messages_of(body)?;
    let max_tokens = match body.get("max_tokens") {
        Some(v) => Some(
            v.as_u64()
                .ok_or("max_tokens: Input should be a valid integer")?,
        ),
        None => return Err("max_tokens: Field required".to_owned()),
    };
    check_tool_use_ids(messages)?;
    let last = messages.last();
    let last_is_tool_result = last
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
    let tools_off = body.pointer("/tool_choice/type").and_then(Value::as_str) == Some("none");
    let tool = body
        .get("tools")
        .and_then(|t| t.get(0))
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .filter(|_| !last_is_tool_result && !tools_off)
        .map(str::to_owned);
    let chars = body.get("system").map_or(0, text_chars)
        + messages
            .iter()
            .map(|m| m.get("content").map_or(0, text_chars))
            .sum::<usize>();
    Ok(Ask {
        model,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: false,
        max_tokens,
        prefill: last
            .filter(|m| role(m) == "assistant")
            .map(|m| m.get("content").map(text_of).unwrap_or_default()),
        tool,
        tool_schema: body.pointer("/tools/0/input_schema").cloned(),
        format: body
            .pointer("/output_config/format")
            .or_else(|| body.get("output_format"))
            .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
            .and_then(|f| f.get("schema"))
            .cloned(),
        input_tokens: estimate(chars),
    })
}

/// `POST /v1beta/models/{model}:generateContent` (model and stream come from the path).
pub(crate) fn gemini(model: &str, stream: bool, body: &Value) -> Result<Ask, String> {
    let contents = match body.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        Some(_) => {
            return Err("* GenerateContentRequest.contents: contents is not specified".to_owned())
        }
        None => {
            return Err("* GenerateContentRequest.contents: contents is not specified".to_owned())
        }
    };
    let parts_of = |c: &Value| {
        c.get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let last = contents.last();
    let last_is_tool_result = last.is_some_and(|c| {
        parts_of(c)
            .iter()
            .any(|p| p.get("functionResponse").is_some())
    });
    let tool = body
        .pointer("/tools/0/functionDeclarations/0/name")
        .and_then(Value::as_str)
        .filter(|_| !last_is_tool_result)
        .filter(|_| {
            body.pointer("/toolConfig/functionCallingConfig/mode")
                .and_then(Value::as_str)
                != Some("NONE")
        })
        .map(str::to_owned);
    let chars = body
        .pointer("/systemInstruction/parts")
        .map_or(0, text_chars)
        + contents
            .iter()
            .map(|c| c.get("parts").map_or(0, text_chars))
            .sum::<usize>();
    Ok(Ask {
        model: model.to_owned(),
        stream,
        include_usage: true,
        max_tokens: body
            .pointer("/generationConfig/maxOutputTokens")
            .and_then(Value::as_u64),
        prefill: last
            .filter(|c| role(c) == "model")
            .map(|c| c.get("parts").map(text_of).unwrap_or_default()),
        tool,
        tool_schema: body
            .pointer("/tools/0/functionDeclarations/0/parameters")
            .or_else(|| body.pointer("/tools/0/functionDeclarations/0/parametersJsonSchema"))
            .cloned(),
        format: body
            .pointer("/generationConfig/responseJsonSchema")
            .or_else(|| body.pointer("/generationConfig/responseSchema"))
            .cloned()
            .or_else(|| {
                let mime = body.pointer("/generationConfig/responseMimeType");
                (mime.and_then(Value::as_str) == Some("application/json")).then(any_object)
            }),
        input_tokens: estimate(chars),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn openai_reads_stream_usage_tools_and_prefill() {
        let body = json!({
            "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 5,
            "messages": [{"role": "user", "content": "0123456789abcdef"}, {"role": "assistant", "content": "Back"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
        });
        let ask = openai(&body).unwrap();
        assert_eq!(ask.model, "gpt-4o");
        assert!(ask.stream && ask.include_usage);
        assert_eq!(ask.max_tokens, Some(5));
        assert_eq!(ask.prefill.as_deref(), Some("Back"));
        assert_eq!(ask.tool.as_deref(), Some("get_weather"));
        assert_eq!(ask.input_tokens, 5);
        let after_tool = json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": "18C"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]});
        assert_eq!(openai(&after_tool).unwrap().tool, None);
        assert_eq!(openai(&after_tool).unwrap().input_tokens, 1);
    }

    #[test]
    fn anthropic_requires_max_tokens_and_sees_tool_results() {
        let err =
            anthropic(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
                .unwrap_err();
        assert_eq!(err, "max_tokens: Field required");
        let body = json!({"model": "claude", "max_tokens": 100, "tools": [{"name": "lookup", "input_schema": {}}],
            "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]});
        assert_eq!(anthropic(&body).unwrap().tool, None);
    }

    #[test]
    fn gemini_reads_path_and_function_declarations() {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello world!"}]}],
            "tools": [{"functionDeclarations": [{"name": "find"}]}], "generationConfig": {"maxOutputTokens": 3}});
        let ask = gemini("gemini-2.0-flash", true, &body).unwrap();
        assert_eq!(ask.tool.as_deref(), Some("find"));
        assert_eq!(ask.max_tokens, Some(3));
        assert_eq!(ask.input_tokens, 3);
        assert!(gemini("g", false, &json!({})).is_err());
    }
}
