//! Gemini `generateContent` requests <-> the canonical request.

use serde_json::{json, Map, Value};

use crate::canonical::{
    join_text, ChatRequest, ContentPart, Encoded, ImageSource, Message, Role, Tool, ToolChoice,
};
use crate::json::{
    invalid, obj, opt_array, opt_f64, opt_i64, opt_str, opt_u64, parse_arguments, parse_object,
    req_str, str_or_list, to_vec, Obj,
};
use crate::structured;
use crate::{Protocol, ProtocolError};

/// Removes JSON-schema keywords that Gemini's OpenAPI-style schema rejects.
fn sanitize_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "$schema" | "additionalProperties" | "strict" | "$id"
                    )
                })
                .map(|(k, v)| (k.clone(), sanitize_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(sanitize_schema).collect()),
        other => other.clone(),
    }
}

/// Encodes a canonical request as a Gemini `generateContent` body. `_upstream_model` goes in the
/// URL, not the body.
pub fn encode_request(req: &ChatRequest, _upstream_model: &str) -> Result<Encoded, ProtocolError> {
    let mut warnings = Vec::new();
    let mut gen = Map::new();
    for (k, v) in &req.extra {
        match (req.origin, k.as_str()) {
            (Protocol::OpenAi, "n") if v.as_u64().is_some_and(|n| n > 1) => {
                return Err(ProtocolError::Unsupported {
                    param: k.clone(),
                    target: Protocol::Gemini,
                })
            }
            (Protocol::OpenAi, "n") => {}
            (Protocol::OpenAi, "presence_penalty") => {
                gen.insert("presencePenalty".into(), v.clone());
            }
            (Protocol::OpenAi, "frequency_penalty") => {
                gen.insert("frequencyPenalty".into(), v.clone());
            }
            (Protocol::Gemini, _) => {}
            (Protocol::OpenAi | Protocol::Anthropic | Protocol::Responses, _) => {
                warnings.push(format!("dropped `{k}`: no Gemini equivalent"))
            }
        }
    }
    let mut o = Map::new();
    let mut names: Vec<(&str, &str)> = Vec::new(); // call id -> function name
    let mut contents: Vec<Value> = Vec::new();
    let mut last_role = None;
    for m in &req.messages {
        let parts = encode_parts(m, &mut names, &mut warnings)?;
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(prev) if last_role == Some(m.role) => {
                if let Some(Value::Array(p)) = prev.get_mut("parts") {
                    p.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role_name(m.role), "parts": parts})),
        }
        last_role = Some(m.role);
    }
    o.insert("contents".into(), Value::Array(contents));
    if !req.system.is_empty() {
        o.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": req.system_text()}]}),
        );
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::new();
                d.insert("name".into(), t.name.clone().into());
                if let Some(desc) = &t.description {
                    d.insert("description".into(), desc.clone().into());
                }
                let empty = t
                    .parameters
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty);
                if !empty {
                    d.insert("parameters".into(), sanitize_schema(&t.parameters));
                }
                Value::Object(d)
            })
            .collect();
        o.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(tc) = &req.tool_choice {
        let cfg = match tc {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
        };
        o.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }
    if req.parallel_tool_calls == Some(false) {
        warnings.push("dropped `parallel_tool_calls`: Gemini cannot forbid parallel calls".into());
    }
    if let Some(n) = req.max_tokens {
        gen.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        gen.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        gen.insert("topP".into(), p.into());
    }
    if let Some(k) = req.top_k {
        gen.insert("topK".into(), k.into());
    }
    if !req.stop.is_empty() {
        gen.insert("stopSequences".into(), req.stop.clone().into());
    }
    if let Some(s) = req.seed {
        gen.insert("seed".into(), s.into());
    }
    if let Some(rf) = &req.response_format {
        match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                gen.insert("responseMimeType".into(), "application/json".into());
            }
            Some("json_schema") => {
                gen.insert("responseMimeType".into(), "application/json".into());
                if let Some(s) = rf.pointer("/json_schema/schema") {
                    gen.insert("responseJsonSchema".into(), s.clone());
                }
            }
            _ => {}
        }
    }
    if !gen.is_empty() {
        o.insert("generationConfig".into(), Value::Object(gen));
    }
    if req.origin == Protocol::Gemini {
        for (k, v) in &req.extra {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(Encoded {
        body: to_vec(&Value::Object(o)),
        warnings,
    })
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "model",
    }
}

fn encode_parts<'a>(
    m: &'a Message,
    names: &mut Vec<(&'a str, &'a str)>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Value>, ProtocolError> {
    let mut out = Vec::new();
    for p in &m.content {
        match p {
            ContentPart::Text(t) if t.is_empty() => {}
            ContentPart::Text(t) => out.push(json!({"text": t})),
            ContentPart::Image(ImageSource::Base64 { media_type, data }) => {
                out.push(json!({"inlineData": {"mimeType": media_type, "data": data}}))
            }
            ContentPart::Image(ImageSource::Url(u)) => {
                warnings.push("sent an image URL as Gemini fileData: Gemini fetches only uploaded or gs:// files".into());
                out.push(json!({"fileData": {"mimeType": guess_mime(u), "fileUri": u}}));
            }
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => {
                names.push((id, name));
                out.push(json!({"functionCall": {"name": name, "args": parse_arguments(arguments, &format!("tool call `{name}` arguments"))?}}));
            }
            ContentPart::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let name = names
                    .iter()
                    .rev()
                    .find(|(id, _)| id == call_id)
                    .map(|(_, n)| *n)
                    .ok_or_else(|| {
                        ProtocolError::Invalid(format!(
                            "tool result for unknown call id `{call_id}`"
                        ))
                    })?;
                let text = join_text(content);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) if !is_error => v,
                    _ if *is_error => json!({"error": text}),
                    _ => json!({"result": text}),
                };
                out.push(json!({"functionResponse": {"name": name, "response": response}}));
            }
        }
    }
    Ok(out)
}

fn guess_mime(url: &str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".gif") {
        "image/gif"
    } else if lower.ends_with(".webp") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

/// Decodes a Gemini `generateContent` body (used by the mock provider and tests). The model
/// comes from the URL; `model` is left empty. Function calls get ids `call_<n>` in order, and
/// function responses answer the oldest unanswered call of the same name.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ProtocolError> {
    let o = parse_object(body)?;
    let mut req = ChatRequest::new(Protocol::Gemini, "");
    if let Some(si) = o
        .get("systemInstruction")
        .or_else(|| o.get("system_instruction"))
    {
        for (i, p) in opt_array(obj(si, "systemInstruction")?, "parts", "systemInstruction")?
            .iter()
            .enumerate()
        {
            if let Some(t) = opt_str(
                obj(p, &format!("systemInstruction.parts[{i}]"))?,
                "text",
                "systemInstruction",
            )? {
                req.system.push(ContentPart::Text(t.to_owned()));
            }
        }
    }
    let mut calls: Vec<(String, String)> = Vec::new();
    for (i, c) in opt_array(&o, "contents", "")?.iter().enumerate() {
        let path = format!("contents[{i}]");
        let c = obj(c, &path)?;
        let role = match opt_str(c, "role", &path)?.unwrap_or("user") {
            "model" => Role::Assistant,
            _ => Role::User,
        };
        let mut content = Vec::new();
        for (j, p) in opt_array(c, "parts", &path)?.iter().enumerate() {
            let pp = format!("{path}.parts[{j}]");
            content.extend(decode_part(obj(p, &pp)?, &pp, &mut calls)?);
        }
        req.messages.push(Message { role, content });
    }
    for t in opt_array(&o, "tools", "")? {
        for d in opt_array(obj(t, "tools")?, "functionDeclarations", "tools")? {
            let d = obj(d, "functionDeclarations")?;
            req.tools.push(Tool {
                name: req_str(d, "name", "functionDeclarations")?.to_owned(),
                description: opt_str(d, "description", "functionDeclarations")?.map(str::to_owned),
                parameters: d
                    .get("parameters")
                    .or_else(|| d.get("parametersJsonSchema"))
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
        }
    }
    if let Some(cfg) = o
        .get("toolConfig")
        .and_then(|t| t.get("functionCallingConfig"))
    {
        let cfg = obj(cfg, "toolConfig.functionCallingConfig")?;
        let named = opt_array(cfg, "allowedFunctionNames", "toolConfig")?;
        req.tool_choice = match opt_str(cfg, "mode", "toolConfig")? {
            Some("NONE") => Some(ToolChoice::None),
            Some("ANY") if named.len() == 1 => {
                named[0].as_str().map(|n| ToolChoice::Named(n.to_owned()))
            }
            Some("ANY") => Some(ToolChoice::Required),
            Some(_) | None => Some(ToolChoice::Auto),
        };
    }
    if let Some(g) = o.get("generationConfig") {
        let g = obj(g, "generationConfig")?;
        let p = "generationConfig";
        req.max_tokens = opt_u64(g, "maxOutputTokens", p)?;
        req.temperature = opt_f64(g, "temperature", p)?;
        req.top_p = opt_f64(g, "topP", p)?;
        req.top_k = opt_u64(g, "topK", p)?;
        req.stop = str_or_list(g, "stopSequences", p)?;
        req.seed = opt_i64(g, "seed", p)?;
        req.response_format = structured::from_gemini(g);
    }
    Ok(req)
}

fn decode_part(
    p: &Obj,
    path: &str,
    calls: &mut Vec<(String, String)>,
) -> Result<Option<ContentPart>, ProtocolError> {
    if p.get("thought").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    if let Some(t) = opt_str(p, "text", path)? {
        return Ok(Some(ContentPart::Text(t.to_owned())));
    }
    if let Some(d) = p.get("inlineData") {
        let d = obj(d, path)?;
        return Ok(Some(ContentPart::Image(ImageSource::Base64 {
            media_type: req_str(d, "mimeType", path)?.to_owned(),
            data: req_str(d, "data", path)?.to_owned(),
        })));
    }
    if let Some(d) = p.get("fileData") {
        return Ok(Some(ContentPart::Image(ImageSource::Url(
            req_str(obj(d, path)?, "fileUri", path)?.to_owned(),
        ))));
    }
    if let Some(f) = p.get("functionCall") {
        let f = obj(f, path)?;
        let name = req_str(f, "name", path)?.to_owned();
        let id =
            opt_str(f, "id", path)?.map_or_else(|| format!("call_{}", calls.len()), str::to_owned);
        calls.push((id.clone(), name.clone()));
        let arguments = f
            .get("args")
            .map_or_else(|| "{}".to_owned(), Value::to_string);
        return Ok(Some(ContentPart::ToolCall {
            id,
            name,
            arguments,
        }));
    }
    if let Some(f) = p.get("functionResponse") {
        let f = obj(f, path)?;
        let name = req_str(f, "name", path)?;
        let call_id = match opt_str(f, "id", path)? {
            Some(id) => id.to_owned(),
            // The oldest unanswered call of that name.
            None => match calls.iter().position(|(_, n)| n == name) {
                Some(i) => calls.remove(i).0,
                None => name.to_owned(),
            },
        };
        let response = f.get("response").cloned().unwrap_or(Value::Null);
        return Ok(Some(ContentPart::ToolResult {
            call_id,
            content: vec![ContentPart::Text(response.to_string())],
            is_error: false,
        }));
    }
    Err(invalid(
        path,
        "has no supported field (text, inlineData, fileData, functionCall, functionResponse)",
    ))
}
