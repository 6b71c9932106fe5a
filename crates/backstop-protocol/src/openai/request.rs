//! OpenAI Chat Completions requests <-> the canonical request.

use serde_json::{json, Map, Value};

use crate::canonical::{
    join_text, ChatRequest, ContentPart, Encoded, ImageSource, Message, Role, Tool, ToolChoice,
};
use crate::json::{
    invalid, obj, opt_array, opt_bool, opt_f64, opt_i64, opt_str, opt_u64, parse_object, req_str,
    str_or_list, to_vec,
};
use crate::{Protocol, ProtocolError};

use super::response::tool_calls;

/// Top-level keys with a canonical field; everything else goes to `extra`.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "response_format",
    "seed",
    "user",
    "functions",
    "function_call",
];

/// Decodes an OpenAI Chat Completions request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ProtocolError> {
    let o = parse_object(body)?;
    let model = opt_str(&o, "model", "")?.ok_or(ProtocolError::MissingField("model"))?;
    let mut req = ChatRequest::new(Protocol::OpenAi, model);
    if !o.contains_key("messages") {
        return Err(ProtocolError::MissingField("messages"));
    }
    for (i, m) in opt_array(&o, "messages", "")?.iter().enumerate() {
        decode_message(&mut req, m, &format!("messages[{i}]"))?;
    }
    for (i, t) in opt_array(&o, "tools", "")?.iter().enumerate() {
        req.tools.push(decode_tool(t, &format!("tools[{i}]"))?);
    }
    if o.get("functions").is_some_and(|f| !f.is_null()) {
        return Err(invalid(
            "functions",
            "is deprecated and not supported; use `tools`",
        ));
    }
    req.tool_choice = match o.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    "tool_choice",
                    &format!("has unknown value `{other}`"),
                ))
            }
        }),
        Some(v) => {
            let f = obj(v, "tool_choice")?
                .get("function")
                .ok_or_else(|| invalid("tool_choice.function", "is required"))?;
            Some(ToolChoice::Named(
                req_str(
                    obj(f, "tool_choice.function")?,
                    "name",
                    "tool_choice.function",
                )?
                .into(),
            ))
        }
    };
    req.parallel_tool_calls = opt_bool(&o, "parallel_tool_calls", "")?;
    req.max_tokens = opt_u64(&o, "max_completion_tokens", "")?.or(opt_u64(&o, "max_tokens", "")?);
    req.temperature = opt_f64(&o, "temperature", "")?;
    req.top_p = opt_f64(&o, "top_p", "")?;
    req.stop = str_or_list(&o, "stop", "")?;
    req.stream = opt_bool(&o, "stream", "")?.unwrap_or(false);
    if let Some(so) = o.get("stream_options").filter(|v| !v.is_null()) {
        req.include_usage = opt_bool(
            obj(so, "stream_options")?,
            "include_usage",
            "stream_options",
        )?
        .unwrap_or(false);
    }
    req.response_format = o.get("response_format").filter(|v| !v.is_null()).cloned();
    req.seed = opt_i64(&o, "seed", "")?;
    req.user = opt_str(&o, "user", "")?.map(str::to_owned);
    for (k, v) in o {
        if !KNOWN.contains(&k.as_str()) && !v.is_null() {
            req.extra.insert(k, v);
        }
    }
    Ok(req)
}

fn decode_message(req: &mut ChatRequest, m: &Value, path: &str) -> Result<(), ProtocolError> {
    let m = obj(m, path)?;
    let role = req_str(m, "role", path)?;
    match role {
        "system" | "developer" => {
            let parts = decode_content(m.get("content"), &format!("{path}.content"))?;
            req.system.extend(parts);
        }
        "user" => {
            let content = decode_content(m.get("content"), &format!("{path}.content"))?;
            push(req, Role::User, content);
        }
        "assistant" => {
            let mut content = decode_content(m.get("content"), &format!("{path}.content"))?;
            if let Some(r) = opt_str(m, "refusal", path)? {
                content.push(ContentPart::Text(r.to_owned()));
            }
            for (i, c) in opt_array(m, "tool_calls", path)?.iter().enumerate() {
                let p = format!("{path}.tool_calls[{i}]");
                let c = obj(c, &p)?;
                let f = obj(
                    c.get("function").unwrap_or(&Value::Null),
                    &format!("{p}.function"),
                )?;
                content.push(ContentPart::ToolCall {
                    id: req_str(c, "id", &p)?.to_owned(),
                    name: req_str(f, "name", &format!("{p}.function"))?.to_owned(),
                    arguments: opt_str(f, "arguments", &format!("{p}.function"))?
                        .unwrap_or("")
                        .to_owned(),
                });
            }
            push(req, Role::Assistant, content);
        }
        "tool" => {
            let result = ContentPart::ToolResult {
                call_id: req_str(m, "tool_call_id", path)?.to_owned(),
                content: decode_content(m.get("content"), &format!("{path}.content"))?,
                is_error: false,
            };
            push(req, Role::User, vec![result]);
        }
        other => {
            return Err(invalid(
                &format!("{path}.role"),
                &format!("has unsupported value `{other}`"),
            ))
        }
    }
    Ok(())
}

/// Appends content as a turn, merging it into the previous turn when the role is the same
/// (consecutive tool messages become one user turn of tool results).
fn push(req: &mut ChatRequest, role: Role, content: Vec<ContentPart>) {
    match req.messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => req.messages.push(Message { role, content }),
    }
}

/// Decodes `content`: a string, null, or an array of parts.
fn decode_content(v: Option<&Value>, path: &str) -> Result<Vec<ContentPart>, ProtocolError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ContentPart::Text(s.clone())]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (i, p) in parts.iter().enumerate() {
                let path = format!("{path}[{i}]");
                let p = obj(p, &path)?;
                match req_str(p, "type", &path)? {
                    "text" => out.push(ContentPart::Text(req_str(p, "text", &path)?.to_owned())),
                    "refusal" => {
                        out.push(ContentPart::Text(req_str(p, "refusal", &path)?.to_owned()))
                    }
                    "image_url" => {
                        let iu = p
                            .get("image_url")
                            .ok_or_else(|| invalid(&format!("{path}.image_url"), "is required"))?;
                        let url = match iu {
                            Value::String(s) => s.as_str(),
                            other => {
                                req_str(obj(other, &path)?, "url", &format!("{path}.image_url"))?
                            }
                        };
                        out.push(ContentPart::Image(ImageSource::from_url(url)));
                    }
                    other => {
                        return Err(invalid(
                            &format!("{path}.type"),
                            &format!("`{other}` content parts are not supported by this gateway"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(
            path,
            "must be a string or an array of content parts",
        )),
    }
}

fn decode_tool(t: &Value, path: &str) -> Result<Tool, ProtocolError> {
    let t = obj(t, path)?;
    let kind = opt_str(t, "type", path)?.unwrap_or("function");
    if kind != "function" {
        return Err(invalid(
            &format!("{path}.type"),
            &format!("`{kind}` tools are not supported"),
        ));
    }
    let fp = format!("{path}.function");
    let f = obj(t.get("function").unwrap_or(&Value::Null), &fp)?;
    Ok(Tool {
        name: req_str(f, "name", &fp)?.to_owned(),
        description: opt_str(f, "description", &fp)?.map(str::to_owned),
        parameters: f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
}

/// Models that accept only `max_completion_tokens` (the reasoning families).
fn wants_max_completion_tokens(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| model.starts_with(p))
}

/// Encodes a canonical request as an OpenAI Chat Completions body for `upstream_model`.
///
/// Streaming requests always ask for usage (`stream_options.include_usage`) so the gateway can
/// count tokens; the client's own preference is honoured by the stream encoder.
pub fn encode_request(req: &ChatRequest, upstream_model: &str) -> Result<Encoded, ProtocolError> {
    let mut warnings = Vec::new();
    let mut o = Map::new();
    o.insert("model".into(), upstream_model.into());
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": join_text(&req.system)}));
    }
    for m in &req.messages {
        encode_message(m, &mut messages, &mut warnings);
    }
    o.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), t.name.clone().into());
                if let Some(d) = &t.description {
                    f.insert("description".into(), d.clone().into());
                }
                f.insert("parameters".into(), t.parameters.clone());
                json!({"type": "function", "function": f})
            })
            .collect();
        o.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = &req.tool_choice {
        let v = match tc {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
        };
        o.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls {
        o.insert("parallel_tool_calls".into(), p.into());
    }
    if let Some(n) = req.max_tokens {
        let key = if wants_max_completion_tokens(upstream_model) {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        o.insert(key.into(), n.into());
    }
    if let Some(t) = req.temperature {
        o.insert("temperature".into(), t.into());
    }
    if let Some(t) = req.top_p {
        o.insert("top_p".into(), t.into());
    }
    if req.top_k.is_some() {
        warnings.push("dropped `top_k`: OpenAI has no top-k sampling".into());
    }
    if !req.stop.is_empty() {
        o.insert("stop".into(), req.stop.clone().into());
    }
    if req.stream {
        o.insert("stream".into(), true.into());
        o.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(rf) = &req.response_format {
        o.insert("response_format".into(), rf.clone());
    }
    if let Some(s) = req.seed {
        o.insert("seed".into(), s.into());
    }
    if let Some(u) = &req.user {
        o.insert("user".into(), u.clone().into());
    }
    for (k, v) in &req.extra {
        match req.origin {
            Protocol::OpenAi => {
                o.insert(k.clone(), v.clone());
            }
            Protocol::Anthropic | Protocol::Gemini | Protocol::Responses => {
                warnings.push(format!("dropped `{k}`: no OpenAI equivalent"));
            }
        }
    }
    Ok(Encoded {
        body: to_vec(&Value::Object(o)),
        warnings,
    })
}

fn encode_message(m: &Message, out: &mut Vec<Value>, warnings: &mut Vec<String>) {
    match m.role {
        Role::User => {
            let mut parts = Vec::new();
            for p in &m.content {
                match p {
                    ContentPart::ToolResult {
                        call_id,
                        content,
                        is_error,
                    } => {
                        if content.iter().any(|c| matches!(c, ContentPart::Image(_))) {
                            warnings.push("dropped images in a tool result: OpenAI tool messages carry text only".into());
                        }
                        let mut text = join_text(content);
                        if *is_error {
                            text = format!("Error: {text}");
                        }
                        out.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
                    }
                    ContentPart::Text(t) => parts.push(json!({"type": "text", "text": t})),
                    ContentPart::Image(src) => {
                        parts.push(json!({"type": "image_url", "image_url": {"url": src.to_url()}}))
                    }
                    ContentPart::ToolCall { name, .. } => {
                        warnings.push(format!("dropped a `{name}` tool call in a user turn"))
                    }
                }
            }
            if parts.is_empty() {
                return;
            }
            let content = match parts.as_slice() {
                [only] if only["type"] == "text" => only["text"].clone(),
                _ => Value::Array(parts),
            };
            out.push(json!({"role": "user", "content": content}));
        }
        Role::Assistant => {
            let text = join_text(&m.content);
            let calls = tool_calls(&m.content);
            let mut msg = Map::new();
            msg.insert("role".into(), "assistant".into());
            msg.insert(
                "content".into(),
                if text.is_empty() {
                    Value::Null
                } else {
                    text.into()
                },
            );
            if !calls.is_empty() {
                msg.insert("tool_calls".into(), Value::Array(calls));
            }
            out.push(Value::Object(msg));
        }
    }
}
