//! OpenAI Responses API requests -> the canonical request.
//!
//! `instructions` become the system prompt; `input` (a string, or a list of items: messages,
//! `function_call`, `function_call_output`) becomes the conversation; function tools, `tool_choice`,
//! `text.format`, `max_output_tokens`, `temperature`, `top_p`, `parallel_tool_calls`, `user` map onto
//! their canonical fields. Parameters that only OpenAI's own servers can honour (hosted tools,
//! background runs, server-side conversations, prompt templates) are refused with an error naming
//! them, never dropped in silence. Bookkeeping fields with no effect on the answer (`store`,
//! `metadata`, `include`, `truncation`, ...) are accepted and left to the gateway.

use serde_json::{json, Value};

use crate::canonical::{ChatRequest, ContentPart, ImageSource, Message, Role, Tool, ToolChoice};
use crate::json::{
    invalid, obj, opt_array, opt_bool, opt_f64, opt_str, opt_u64, req_str, server_side, Obj,
};
use crate::{Protocol, ProtocolError};

/// Top-level keys refused because only OpenAI's own servers can honour them.
const SERVER_SIDE: &[(&str, &str)] = &[
    ("background", "background runs"),
    ("conversation", "server-side conversations"),
    ("prompt", "stored prompt templates"),
];

/// Top-level keys accepted and not sent upstream (they do not change the answer, or the
/// gateway handles them itself).
const BOOKKEEPING: &[&str] = &[
    "store",
    "metadata",
    "include",
    "truncation",
    "service_tier",
    "stream_options",
    "prompt_cache_key",
    "safety_identifier",
    "previous_response_id",
    "reasoning",
    "top_logprobs",
];

/// Decodes an OpenAI Responses API request body (`POST /v1/responses`).
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ProtocolError> {
    let o = crate::json::parse_object(body)?;
    decode_object(&o)
}

/// Decodes a parsed Responses API request.
pub(crate) fn decode_object(o: &Obj) -> Result<ChatRequest, ProtocolError> {
    let model = opt_str(o, "model", "")?.ok_or(ProtocolError::MissingField("model"))?;
    let mut req = ChatRequest::new(Protocol::Responses, model);
    for (key, what) in SERVER_SIDE {
        if o.get(*key)
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
        {
            return Err(server_side(
                key,
                &format!("asks for {what}, which only OpenAI's own servers provide: only a target that speaks the Responses API natively can serve it"),
            ));
        }
    }
    if let Some(instructions) = opt_str(o, "instructions", "")? {
        if !instructions.is_empty() {
            req.system.push(ContentPart::Text(instructions.to_owned()));
        }
    }
    match o.get("input") {
        None | Some(Value::Null) => return Err(ProtocolError::MissingField("input")),
        Some(Value::String(s)) => push(&mut req, Role::User, vec![ContentPart::Text(s.clone())]),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                decode_item(&mut req, item, &format!("input[{i}]"))?;
            }
        }
        Some(_) => return Err(invalid("input", "must be a string or an array of items")),
    }
    if req.messages.is_empty() {
        return Err(invalid(
            "input",
            "must hold at least one user or assistant item",
        ));
    }
    for (i, t) in opt_array(o, "tools", "")?.iter().enumerate() {
        req.tools.push(decode_tool(t, &format!("tools[{i}]"))?);
    }
    req.tool_choice = decode_tool_choice(o.get("tool_choice"))?;
    req.parallel_tool_calls = opt_bool(o, "parallel_tool_calls", "")?;
    req.max_tokens = opt_u64(o, "max_output_tokens", "")?;
    if req.max_tokens == Some(0) {
        return Err(invalid("max_output_tokens", "must be at least 1"));
    }
    req.temperature = opt_f64(o, "temperature", "")?;
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(invalid("temperature", "must be between 0 and 2"));
    }
    req.top_p = opt_f64(o, "top_p", "")?;
    if req.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err(invalid("top_p", "must be between 0 and 1"));
    }
    req.stream = opt_bool(o, "stream", "")?.unwrap_or(false);
    req.include_usage = true;
    req.user = opt_str(o, "user", "")?.map(str::to_owned);
    req.response_format = decode_text_format(o.get("text"))?;
    if let Some(m) = o.get("metadata").filter(|v| !v.is_null()) {
        check_metadata(m)?;
    }
    opt_bool(o, "store", "")?;
    opt_str(o, "previous_response_id", "")?;
    for (k, v) in o {
        let known = matches!(
            k.as_str(),
            "model"
                | "input"
                | "instructions"
                | "tools"
                | "tool_choice"
                | "parallel_tool_calls"
                | "max_output_tokens"
                | "temperature"
                | "top_p"
                | "stream"
                | "user"
                | "text"
        ) || BOOKKEEPING.contains(&k.as_str());
        if !known && !v.is_null() {
            req.extra.insert(k.clone(), v.clone());
        }
    }
    Ok(req)
}

/// Appends `content` to the conversation, merging it into the last turn when the role repeats.
fn push(req: &mut ChatRequest, role: Role, content: Vec<ContentPart>) {
    match req.messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => req.messages.push(Message { role, content }),
    }
}

/// Decodes one input item.
fn decode_item(req: &mut ChatRequest, item: &Value, path: &str) -> Result<(), ProtocolError> {
    let it = obj(item, path)?;
    let kind = match opt_str(it, "type", path)? {
        Some(kind) => kind,
        None if it.contains_key("role") => "message",
        None => return Err(invalid(&format!("{path}.type"), "is required")),
    };
    match kind {
        "message" => decode_message(req, it, path),
        "function_call" => {
            let call = ContentPart::ToolCall {
                id: req_str(it, "call_id", path)?.to_owned(),
                name: req_str(it, "name", path)?.to_owned(),
                arguments: req_str(it, "arguments", path)?.to_owned(),
            };
            push(req, Role::Assistant, vec![call]);
            Ok(())
        }
        "function_call_output" => {
            let output_path = format!("{path}.output");
            let content = match it.get("output") {
                Some(Value::String(s)) => vec![ContentPart::Text(s.clone())],
                Some(Value::Array(_)) => decode_parts(it.get("output"), &output_path)?,
                _ => return Err(invalid(&output_path, "must be a string or an array of parts")),
            };
            let result = ContentPart::ToolResult {
                call_id: req_str(it, "call_id", path)?.to_owned(),
                content,
                is_error: false,
            };
            push(req, Role::User, vec![result]);
            Ok(())
        }
        // The model's own reasoning, sent back by clients that replay a whole turn: it has no
        // meaning for another model and is not part of the conversation text.
        "reasoning" => Ok(()),
        "item_reference" => Err(invalid(
            path,
            "is an `item_reference`; Backstop rebuilds stored conversations from `previous_response_id` and does not resolve single item references",
        )),
        other => Err(server_side(
            &format!("{path}.type"),
            &format!("`{other}` items belong to OpenAI's server-side tools: only a target that speaks the Responses API natively can take them"),
        )),
    }
}

fn decode_message(req: &mut ChatRequest, it: &Obj, path: &str) -> Result<(), ProtocolError> {
    let content = decode_parts(it.get("content"), &format!("{path}.content"))?;
    match req_str(it, "role", path)? {
        "system" | "developer" => req.system.extend(content),
        "user" => push(req, Role::User, content),
        "assistant" => push(req, Role::Assistant, content),
        other => {
            return Err(invalid(
                &format!("{path}.role"),
                &format!(
                    "has unknown value `{other}` (expected user, assistant, system or developer)"
                ),
            ))
        }
    }
    Ok(())
}

/// Decodes message content: a string or an array of input/output parts.
fn decode_parts(v: Option<&Value>, path: &str) -> Result<Vec<ContentPart>, ProtocolError> {
    let parts = match v {
        Some(Value::String(s)) => return Ok(vec![ContentPart::Text(s.clone())]),
        Some(Value::Array(parts)) => parts,
        None | Some(Value::Null) => return Err(invalid(path, "is required")),
        Some(_) => return Err(invalid(path, "must be a string or an array of parts")),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let p = obj(p, &path)?;
        match req_str(p, "type", &path)? {
            "input_text" | "output_text" | "text" => {
                out.push(ContentPart::Text(req_str(p, "text", &path)?.to_owned()))
            }
            "refusal" => out.push(ContentPart::Text(req_str(p, "refusal", &path)?.to_owned())),
            "input_image" => match opt_str(p, "image_url", &path)? {
                Some(url) => out.push(ContentPart::Image(ImageSource::from_url(url))),
                None => {
                    return Err(invalid(
                        &format!("{path}.image_url"),
                        "is required (images by `file_id` live in OpenAI's file store and are not supported)",
                    ))
                }
            },
            other => {
                return Err(invalid(
                    &format!("{path}.type"),
                    &format!("`{other}` content is not supported (expected input_text, output_text, refusal or input_image)"),
                ))
            }
        }
    }
    Ok(out)
}

fn decode_tool(t: &Value, path: &str) -> Result<Tool, ProtocolError> {
    let t = obj(t, path)?;
    let kind = req_str(t, "type", path)?;
    if kind != "function" {
        return Err(server_side(
            &format!("{path}.type"),
            &format!("`{kind}` is one of OpenAI's server-side tools: only a target that speaks the Responses API natively can serve it; `function` tools go to any target"),
        ));
    }
    Ok(Tool {
        name: req_str(t, "name", path)?.to_owned(),
        description: opt_str(t, "description", path)?.map(str::to_owned),
        parameters: t
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
}

fn decode_tool_choice(v: Option<&Value>) -> Result<Option<ToolChoice>, ProtocolError> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    "tool_choice",
                    &format!("has unknown value `{other}` (expected auto, none or required)"),
                ))
            }
        }),
        Some(v) => {
            let o = obj(v, "tool_choice")?;
            match req_str(o, "type", "tool_choice")? {
                "function" => Some(ToolChoice::Named(
                    req_str(o, "name", "tool_choice")?.to_owned(),
                )),
                other => {
                    return Err(server_side(
                        "tool_choice.type",
                        &format!("`{other}` chooses one of OpenAI's server-side tools: only a target that speaks the Responses API natively can serve it"),
                    ))
                }
            }
        }
    })
}

/// `text.format` as the canonical (Chat Completions) `response_format`.
fn decode_text_format(v: Option<&Value>) -> Result<Option<Value>, ProtocolError> {
    let Some(text) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = obj(text, "text")?;
    let Some(format) = text.get("format").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let f = obj(format, "text.format")?;
    match req_str(f, "type", "text.format")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let name = req_str(f, "name", "text.format")?;
            let schema = f
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid("text.format.schema", "must be a JSON schema object"))?;
            let mut inner = json!({"name": name, "schema": schema});
            if let Some(strict) = opt_bool(f, "strict", "text.format")? {
                inner["strict"] = strict.into();
            }
            if let Some(d) = opt_str(f, "description", "text.format")? {
                inner["description"] = d.into();
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": inner})))
        }
        other => Err(invalid(
            "text.format.type",
            &format!("has unknown value `{other}` (expected text, json_object or json_schema)"),
        )),
    }
}

/// `metadata`: at most 16 string values, keys up to 64 and values up to 512 characters.
fn check_metadata(m: &Value) -> Result<(), ProtocolError> {
    let m = obj(m, "metadata")?;
    if m.len() > 16 {
        return Err(invalid("metadata", "may hold at most 16 keys"));
    }
    for (k, v) in m {
        if k.chars().count() > 64 {
            return Err(invalid(
                "metadata",
                &format!("key `{k}` is longer than 64 characters"),
            ));
        }
        match v {
            Value::String(s) if s.chars().count() <= 512 => {}
            Value::String(_) => {
                return Err(invalid(
                    &format!("metadata.{k}"),
                    "is longer than 512 characters",
                ))
            }
            _ => return Err(invalid(&format!("metadata.{k}"), "must be a string")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: Value) -> Result<ChatRequest, ProtocolError> {
        decode_request(v.to_string().as_bytes())
    }

    #[test]
    fn a_string_input_is_one_user_turn() {
        let req = decode(
            json!({"model": "m", "input": "hi", "instructions": "be brief",
            "max_output_tokens": 50, "temperature": 0.5, "stream": true}),
        )
        .unwrap();
        assert_eq!(req.system, vec![ContentPart::Text("be brief".into())]);
        assert_eq!(req.messages.len(), 1);
        assert_eq!(
            req.messages[0].content,
            vec![ContentPart::Text("hi".into())]
        );
        assert_eq!(req.max_tokens, Some(50));
        assert_eq!(req.temperature, Some(0.5));
        assert!(req.stream && req.extra.is_empty());
    }

    #[test]
    fn a_tool_round_trip_becomes_a_call_and_its_result() {
        let req = decode(json!({"model": "m", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "reasoning", "id": "rs_1", "summary": []}
        ], "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
           "tool_choice": {"type": "function", "name": "weather"},
           "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}}))
        .unwrap();
        assert_eq!(req.messages.len(), 3);
        assert!(
            matches!(&req.messages[1].content[0], ContentPart::ToolCall { id, .. } if id == "c1")
        );
        assert!(
            matches!(&req.messages[2].content[0], ContentPart::ToolResult { call_id, .. } if call_id == "c1")
        );
        assert_eq!(req.tools[0].name, "weather");
        assert_eq!(req.tool_choice, Some(ToolChoice::Named("weather".into())));
        let rf = req.response_format.unwrap();
        assert_eq!(rf["json_schema"]["name"], "w");
        assert_eq!(rf["json_schema"]["strict"], true);
    }

    #[test]
    fn server_side_features_are_refused_by_name() {
        let err = decode(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tools[0].type") && err.contains("web_search"),
            "{err}"
        );
        let err = decode(json!({"model": "m", "input": "x", "background": true}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("background"), "{err}");
        let err = decode(json!({"model": "m", "input": [{"type": "file_search_call", "id": "x"}]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("input[0].type"), "{err}");
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, field) in [
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": 5}), "input"),
            (
                json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": "x", "temperature": 3}),
                "temperature",
            ),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": -1}),
                "max_output_tokens",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "x", "metadata": {"a": 1}}),
                "metadata.a",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
                "text.format.schema",
            ),
        ] {
            let err = decode(body.clone()).unwrap_err().to_string();
            assert!(err.contains(field), "{body}: {err}");
        }
    }
}
