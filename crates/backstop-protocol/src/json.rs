//! Small helpers for walking `serde_json` values with precise error messages.
//!
//! Request bodies are decoded by walking a [`Value`] rather than through derived structs: the
//! three APIs are full of "string or array of parts" fields, and a walker can say exactly which
//! field is wrong (`messages[2].content[0].image_url`), which untagged serde enums cannot.

use serde_json::{Map, Value};

use crate::ProtocolError;

/// A JSON object.
pub(crate) type Obj = Map<String, Value>;

/// Parses a body that must be a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Obj, ProtocolError> {
    match serde_json::from_slice(body)? {
        Value::Object(o) => Ok(o),
        _ => Err(ProtocolError::Invalid(
            "the body must be a JSON object".into(),
        )),
    }
}

pub(crate) fn invalid(path: &str, what: &str) -> ProtocolError {
    ProtocolError::Invalid(format!("`{path}` {what}"))
}

/// [`ProtocolError::ServerSide`] at `path`: a feature only OpenAI's own servers provide.
pub(crate) fn server_side(path: &str, what: &str) -> ProtocolError {
    ProtocolError::ServerSide(format!("`{path}` {what}"))
}

/// The value as an object.
pub(crate) fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, ProtocolError> {
    v.as_object()
        .ok_or_else(|| invalid(path, "must be an object"))
}

/// An optional string field (null counts as absent).
pub(crate) fn opt_str<'a>(
    o: &'a Obj,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(&format!("{path}.{key}"), "must be a string")),
    }
}

/// A required string field.
pub(crate) fn req_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a str, ProtocolError> {
    opt_str(o, key, path)?.ok_or_else(|| invalid(&format!("{path}.{key}"), "is required"))
}

/// An optional non-negative integer field.
pub(crate) fn opt_u64(o: &Obj, key: &str, path: &str) -> Result<Option<u64>, ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(&format!("{path}.{key}"), "must be a non-negative integer")),
    }
}

/// An optional integer field.
pub(crate) fn opt_i64(o: &Obj, key: &str, path: &str) -> Result<Option<i64>, ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(&format!("{path}.{key}"), "must be an integer")),
    }
}

/// An optional number field.
pub(crate) fn opt_f64(o: &Obj, key: &str, path: &str) -> Result<Option<f64>, ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(&format!("{path}.{key}"), "must be a number")),
    }
}

/// An optional boolean field.
pub(crate) fn opt_bool(o: &Obj, key: &str, path: &str) -> Result<Option<bool>, ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(&format!("{path}.{key}"), "must be a boolean")),
    }
}

/// An optional array field (null and absent give an empty slice).
pub(crate) fn opt_array<'a>(
    o: &'a Obj,
    key: &str,
    path: &str,
) -> Result<&'a [Value], ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(&format!("{path}.{key}"), "must be an array")),
    }
}

/// A string or an array of strings (OpenAI `stop`).
pub(crate) fn str_or_list(o: &Obj, key: &str, path: &str) -> Result<Vec<String>, ProtocolError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(&format!("{path}.{key}"), "must contain only strings"))
            })
            .collect(),
        Some(_) => Err(invalid(
            &format!("{path}.{key}"),
            "must be a string or an array of strings",
        )),
    }
}

/// Serialises a value that cannot fail to serialise (a `Value` tree).
pub(crate) fn to_vec(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Parses tool-call arguments (JSON text) into a value; empty text means `{}`.
pub(crate) fn parse_arguments(args: &str, path: &str) -> Result<Value, ProtocolError> {
    if args.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(args)
        .map_err(|e| invalid(path, &format!("must hold valid JSON arguments ({e})")))
}

/// Seconds since the Unix epoch, for OpenAI `created` fields.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A decoded response body with its `id` and `model` (empty when absent) and its `usage`
/// object read by `read_usage` (zero when absent), as OpenAI and Anthropic both carry them.
pub(crate) fn response_from(
    o: &Obj,
    content: Vec<crate::canonical::ContentPart>,
    finish: crate::canonical::FinishReason,
    read_usage: impl Fn(&Value) -> Result<crate::canonical::Usage, ProtocolError>,
) -> Result<crate::canonical::ChatResponse, ProtocolError> {
    let usage = match o.get("usage") {
        Some(u @ Value::Object(_)) => read_usage(u)?,
        _ => crate::canonical::Usage::default(),
    };
    Ok(crate::canonical::ChatResponse {
        id: opt_str(o, "id", "")?.unwrap_or("").to_owned(),
        model: opt_str(o, "model", "")?.unwrap_or("").to_owned(),
        content,
        finish,
        usage,
    })
}
