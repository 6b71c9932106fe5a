//! Anthropic Messages requests <-> the canonical request.

use serde_json::{json, Map, Value};

use crate::canonical::{
    ChatRequest, ContentPart, Encoded, ImageSource, Message, Role, Tool, ToolChoice,
};
use crate::json::{
    invalid, obj, opt_array, opt_bool, opt_f64, opt_str, opt_u64, parse_arguments, parse_object,
    req_str, str_or_list, to_vec, Obj,
};
use crate::structured;
use crate::{Protocol, ProtocolError};

/// `max_tokens` sent to Anthropic when the client gave none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

const KNOWN: &[&str] = &[
    "model",
    "system",
    "messages",
    "tools",
    "tool_choice",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
];

/// OpenAI parameters that cannot be dropped without changing what the client gets back.
fn must_reject(key: &str, v: &Value) -> bool {
    match key {
        "n" => v.as_u64().is_some_and(|n| n > 1),
        "audio" => !v.is_null(),
        "modalities" => v
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio"))),
        _ => false,
    }
}

/// Decodes an Anthropic Messages request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ProtocolError> {
    let o = parse_object(body)?;
    let model = opt_str(&o, "model", "")?.ok_or(ProtocolError::MissingField("model"))?;
    let mut req = ChatRequest::new(Protocol::Anthropic, model);
    req.system = match o.get("system") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![ContentPart::Text(s.clone())],
        Some(v @ Value::Array(_)) => decode_blocks(Some(v), "system")?,
        Some(_) => {
            return Err(invalid(
                "system",
                "must be a string or an array of text blocks",
            ))
        }
    };
    if !o.contains_key("messages") {
        return Err(ProtocolError::MissingField("messages"));
    }
    for (i, m) in opt_array(&o, "messages", "")?.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = obj(m, &path)?;
        let role = match req_str(m, "role", &path)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(invalid(
                    &format!("{path}.role"),
                    &format!("has unsupported value `{other}`"),
                ))
            }
        };
        let content = decode_blocks(m.get("content"), &format!("{path}.content"))?;
        req.messages.push(Message { role, content });
    }
    for (i, t) in opt_array(&o, "tools", "")?.iter().enumerate() {
        let path = format!("tools[{i}]");
        let t = obj(t, &path)?;
        if let Some(kind) = opt_str(t, "type", &path)?.filter(|k| *k != "custom") {
            return Err(invalid(
                &format!("{path}.type"),
                &format!("server tool `{kind}` is not supported"),
            ));
        }
        req.tools.push(Tool {
            name: req_str(t, "name", &path)?.to_owned(),
            description: opt_str(t, "description", &path)?.map(str::to_owned),
            parameters: t
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        });
    }
    if let Some(tc) = o.get("tool_choice").filter(|v| !v.is_null()) {
        let tc = obj(tc, "tool_choice")?;
        req.tool_choice = Some(match req_str(tc, "type", "tool_choice")? {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Named(req_str(tc, "name", "tool_choice")?.to_owned()),
            other => {
                return Err(invalid(
                    "tool_choice.type",
                    &format!("has unknown value `{other}`"),
                ))
            }
        });
        if opt_bool(tc, "disable_parallel_tool_use", "tool_choice")? == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }
    req.max_tokens = opt_u64(&o, "max_tokens", "")?;
    req.temperature = opt_f64(&o, "temperature", "")?;
    req.top_p = opt_f64(&o, "top_p", "")?;
    req.top_k = opt_u64(&o, "top_k", "")?;
    req.stop = str_or_list(&o, "stop_sequences", "")?;
    req.stream = opt_bool(&o, "stream", "")?.unwrap_or(false);
    req.include_usage = true;
    req.response_format = o.get("output_config").and_then(structured::from_anthropic);
    if let Some(md) = o.get("metadata").filter(|v| !v.is_null()) {
        req.user = opt_str(obj(md, "metadata")?, "user_id", "metadata")?.map(str::to_owned);
    }
    for (k, v) in o {
        if !KNOWN.contains(&k.as_str()) && !v.is_null() {
            req.extra.insert(k, v);
        }
    }
    Ok(req)
}

/// Decodes content: a string or an array of blocks. Thinking blocks are dropped (they only
/// matter to Anthropic itself, which is served by passthrough).
fn decode_blocks(v: Option<&Value>, path: &str) -> Result<Vec<ContentPart>, ProtocolError> {
    let blocks = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![ContentPart::Text(s.clone())]),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(invalid(
                path,
                "must be a string or an array of content blocks",
            ))
        }
    };
    let mut out = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let b = obj(b, &path)?;
        match req_str(b, "type", &path)? {
            "text" => out.push(ContentPart::Text(req_str(b, "text", &path)?.to_owned())),
            "image" => out.push(ContentPart::Image(decode_image(b, &path)?)),
            "tool_use" => out.push(ContentPart::ToolCall {
                id: req_str(b, "id", &path)?.to_owned(),
                name: req_str(b, "name", &path)?.to_owned(),
                arguments: b
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            }),
            "tool_result" => out.push(ContentPart::ToolResult {
                call_id: req_str(b, "tool_use_id", &path)?.to_owned(),
                content: decode_blocks(b.get("content"), &format!("{path}.content"))?,
                is_error: opt_bool(b, "is_error", &path)?.unwrap_or(false),
            }),
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(
                    &format!("{path}.type"),
                    &format!("`{other}` content blocks are not supported by this gateway"),
                ))
            }
        }
    }
    Ok(out)
}

fn decode_image(b: &Obj, path: &str) -> Result<ImageSource, ProtocolError> {
    let sp = format!("{path}.source");
    let s = obj(b.get("source").unwrap_or(&Value::Null), &sp)?;
    match req_str(s, "type", &sp)? {
        "base64" => Ok(ImageSource::Base64 {
            media_type: req_str(s, "media_type", &sp)?.to_owned(),
            data: req_str(s, "data", &sp)?.to_owned(),
        }),
        "url" => Ok(ImageSource::Url(req_str(s, "url", &sp)?.to_owned())),
        other => Err(invalid(
            &format!("{sp}.type"),
            &format!("`{other}` image sources are not supported"),
        )),
    }
}

/// Encodes a canonical request as an Anthropic Messages body for `upstream_model`.
pub fn encode_request(req: &ChatRequest, upstream_model: &str) -> Result<Encoded, ProtocolError> {
    let mut warnings = Vec::new();
    for (k, v) in &req.extra {
        match req.origin {
            Protocol::Anthropic => {}
            Protocol::OpenAi | Protocol::Gemini | Protocol::Responses => {
                if must_reject(k, v) {
                    return Err(ProtocolError::Unsupported {
                        param: k.clone(),
                        target: Protocol::Anthropic,
                    });
                }
                if k != "n" {
                    warnings.push(format!("dropped `{k}`: no Anthropic equivalent"));
                }
            }
        }
    }
    let mut o = Map::new();
    o.insert("model".into(), upstream_model.into());
    o.insert(
        "max_tokens".into(),
        req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    let mut system = req.system_text();
    let native = req
        .response_format
        .as_ref()
        .filter(|_| req.origin != Protocol::Anthropic)
        .and_then(structured::to_anthropic);
    if let Some(format) = native {
        o.insert("output_config".into(), json!({ "format": format }));
    } else if let Some(rf) = req
        .response_format
        .as_ref()
        .filter(|_| req.origin != Protocol::Anthropic)
    {
        if let Some(instruction) = json_instruction(rf) {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(&instruction);
            warnings.push(
                "emulated `response_format` with a system instruction: Anthropic has no mode for a JSON object of any shape"
                    .into(),
            );
        }
    }
    if !system.is_empty() {
        o.insert("system".into(), system.into());
    }
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    let mut last_role = None;
    for (i, m) in req.messages.iter().enumerate() {
        let blocks = encode_blocks(&m.content, &format!("messages[{i}]"))?;
        if blocks.is_empty() {
            continue;
        }
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match messages.last_mut() {
            Some(Value::Object(prev)) if last_role == Some(m.role) => {
                if let Some(Value::Array(c)) = prev.get_mut("content") {
                    c.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
        last_role = Some(m.role);
    }
    super::tool_ids::make_unique(&mut messages);
    o.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(|t| {
            let mut tool = Map::new();
            tool.insert("name".into(), t.name.clone().into());
            if let Some(d) = &t.description {
                tool.insert("description".into(), d.clone().into());
            }
            tool.insert("input_schema".into(), t.parameters.clone());
            Value::Object(tool)
        });
        o.insert("tools".into(), Value::Array(tools.collect()));
    }
    let mut choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Named(n)) => Some(json!({"type": "tool", "name": n})),
    };
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = true.into();
        }
    }
    if let Some(c) = choice {
        o.insert("tool_choice".into(), c);
    }
    if let Some(t) = req.temperature {
        let clamped = t.clamp(0.0, 1.0);
        if clamped != t {
            warnings.push(format!(
                "clamped `temperature` {t} to {clamped}: Anthropic accepts 0 to 1"
            ));
        }
        o.insert("temperature".into(), clamped.into());
    }
    if let Some(p) = req.top_p {
        o.insert("top_p".into(), p.into());
    }
    if let Some(k) = req.top_k {
        o.insert("top_k".into(), k.into());
    }
    if !req.stop.is_empty() {
        o.insert("stop_sequences".into(), req.stop.clone().into());
    }
    if req.stream {
        o.insert("stream".into(), true.into());
    }
    if req.seed.is_some() {
        warnings.push("dropped `seed`: Anthropic has no sampling seed".into());
    }
    if let Some(u) = &req.user {
        o.insert("metadata".into(), json!({"user_id": u}));
    }
    if req.origin == Protocol::Anthropic {
        for (k, v) in &req.extra {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(Encoded {
        body: to_vec(&Value::Object(o)),
        warnings,
    })
}

/// A system instruction that asks for JSON output, for an OpenAI `response_format`.
fn json_instruction(rf: &Value) -> Option<String> {
    match rf.get("type").and_then(Value::as_str) {
        Some("json_object") => {
            Some("Respond with a single valid JSON object and nothing else.".into())
        }
        Some("json_schema") => {
            let schema = rf
                .pointer("/json_schema/schema")
                .cloned()
                .unwrap_or(Value::Null);
            Some(format!(
                "Respond with a single valid JSON value that conforms to this JSON schema, and nothing else:\n{schema}"
            ))
        }
        _ => None,
    }
}

fn encode_image(src: &ImageSource) -> Value {
    match src {
        ImageSource::Url(u) => json!({"type": "image", "source": {"type": "url", "url": u}}),
        ImageSource::Base64 { media_type, data } => json!({
            "type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}
        }),
    }
}

fn encode_blocks(parts: &[ContentPart], path: &str) -> Result<Vec<Value>, ProtocolError> {
    let mut out = Vec::with_capacity(parts.len());
    // Anthropic wants tool results first in a user turn.
    let (results, others): (Vec<&ContentPart>, Vec<&ContentPart>) = parts
        .iter()
        .partition(|p| matches!(p, ContentPart::ToolResult { .. }));
    for p in results.into_iter().chain(others) {
        match p {
            ContentPart::Text(t) if t.is_empty() => {}
            ContentPart::Text(t) => out.push(json!({"type": "text", "text": t})),
            ContentPart::Image(src) => out.push(encode_image(src)),
            ContentPart::ToolCall { id, name, arguments } => out.push(json!({
                "type": "tool_use", "id": id, "name": name,
                "input": parse_arguments(arguments, &format!("{path}.tool_calls.{name}.arguments"))?,
            })),
            ContentPart::ToolResult { call_id, content, is_error } => {
                let inner = encode_blocks(content, path)?;
                let mut b = Map::new();
                b.insert("type".into(), "tool_result".into());
                b.insert("tool_use_id".into(), call_id.clone().into());
                if !inner.is_empty() {
                    b.insert("content".into(), Value::Array(inner));
                }
                if *is_error {
                    b.insert("is_error".into(), true.into());
                }
                out.push(Value::Object(b));
            }
        }
    }
    Ok(out)
}
