//! Strict validation of a client's request before any upstream sees it.
//!
//! Every model request is checked here once, whichever path it takes next (forwarded as it came
//! when the caller and the target speak the same protocol, or translated): a request the real API
//! would refuse gets a 400 naming the field (`messages[2].role: unknown role "wizard"`), and never
//! reaches a target, where its refusal would count against that target and wake its fallbacks.
//!
//! The rules follow the OpenAI Chat Completions and Anthropic Messages APIs: the shape of the
//! body, the role and content of each message, the types and ranges of the sampling parameters,
//! tool definitions and tool choice. Fields these rules do not know are left alone: providers add
//! fields all the time, and forwarding them is the point of passthrough.
//!
//! [`validate_request`] parses the body once into a tree that borrows its strings from the body
//! ([`tree`]), checks it, and reads the routing [`Envelope`] from the same tree, so the gateway's
//! passthrough path parses each body once.

mod anthropic;
mod check;
mod openai;
mod text;
mod tree;

use std::fmt;

use crate::{Envelope, Protocol};
pub(crate) use tree::Key;
use tree::{Json, Obj};

/// Why a request was refused: the offending field (when there is one) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    /// The field, as the APIs name it in their own errors (`messages[2].role`, `temperature`);
    /// `None` when the body as a whole is wrong (not JSON, not UTF-8, not an object).
    pub param: Option<String>,
    /// What is wrong, without the field name.
    pub message: String,
}

impl InvalidRequest {
    /// An error about the body as a whole.
    fn body(message: impl Into<String>) -> Self {
        Self {
            param: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(param) => write!(f, "{param}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for InvalidRequest {}

/// What validation functions return.
pub(crate) type Checked<T = ()> = Result<T, InvalidRequest>;

/// Checks a client's request `body` in the `protocol` the client speaks (OpenAI Chat Completions
/// or Anthropic Messages) and returns its routing envelope.
///
/// The body must be valid UTF-8 holding one JSON object, with no lone surrogate in any string
/// and no top-level key given twice, and must be a valid request of that protocol.
pub fn validate_request(protocol: Protocol, body: &[u8]) -> Result<Envelope, InvalidRequest> {
    let raw = body;
    let body = parse(body)?;
    match protocol {
        Protocol::OpenAi => openai::request(&body)?,
        Protocol::Anthropic => anthropic::request(&body)?,
        Protocol::Gemini => {
            return Err(InvalidRequest::body(
                "Gemini is an upstream protocol only: clients speak OpenAI or Anthropic",
            ))
        }
        Protocol::Responses => return responses_envelope(raw),
    }
    Ok(envelope(&body, raw))
}

/// Parses the body: UTF-8 first (so that the message can say so), then one JSON object whose
/// strings borrow from `body`, free text kept as written ([`tree::parse_keeping_text`]).
fn parse(body: &[u8]) -> Checked<Obj<'_>> {
    let text = std::str::from_utf8(body).map_err(|error| {
        InvalidRequest::body(format!(
            "the request body is not valid UTF-8 (invalid byte at offset {})",
            error.valid_up_to()
        ))
    })?;
    // The fast parse fails on whatever the full one refuses; the full one then says why.
    let parsed = match tree::parse_keeping_text(text) {
        Ok(parsed) => parsed,
        Err(_) => full_parse(text)?,
    };
    let Json::Object(object) = parsed else {
        return Err(InvalidRequest::body(
            "the request body must be a JSON object",
        ));
    };
    if let Some(key) = repeated_key(&object) {
        return Err(InvalidRequest::body(format!(
            "the top-level key `{key}` is given twice"
        )));
    }
    Ok(object)
}

/// Parses the body decoding every string, for the error serde_json gives about it.
fn full_parse(text: &str) -> Checked<Json<'_>> {
    serde_json::from_str::<Json<'_>>(text).map_err(|error| {
        let what = if is_lone_surrogate(&error) {
            "the request body holds a lone surrogate (a \\u escape of half a UTF-16 pair, not \
             valid Unicode)"
        } else {
            "the request body is not valid JSON"
        };
        InvalidRequest::body(format!("{what}: {error}"))
    })
}

/// Whether serde_json refused a `\uD800`-`\uDFFF` escape without its pair. Its error has no
/// public code, so this reads the two messages it gives for that case (pinned by the tests).
fn is_lone_surrogate(error: &serde_json::Error) -> bool {
    let text = error.to_string();
    text.contains("lone leading surrogate") || text.contains("unexpected end of hex escape")
}

/// A top-level key given twice: two readers of the body (this gateway and an upstream) must never
/// disagree on which `model`, `stream` or `messages` it holds.
fn repeated_key<'o>(object: &'o Obj<'_>) -> Option<&'o str> {
    let mut keys: Vec<&str> = object.0.iter().map(|(key, _)| key.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
}

/// Checks a Responses API request by decoding it (the decoder names the offending field) and
/// returns its envelope. Its streams always carry usage, and it has no `stream_options` to add.
/// A request for what only OpenAI's own servers provide (a hosted tool, ...) is let through with
/// its routing fields: a target that speaks the Responses API natively can serve it, and any
/// other refuses it by name ([`ProtocolError::ServerSide`](crate::ProtocolError::ServerSide)).
fn responses_envelope(body: &[u8]) -> Result<Envelope, InvalidRequest> {
    let req = match crate::responses::decode_request(body) {
        Ok(req) => req,
        Err(crate::ProtocolError::ServerSide(_)) => return server_side_envelope(body),
        Err(error) => return Err(invalid_request_of(error)),
    };
    Ok(Envelope {
        model: req.model,
        stream: req.stream,
        include_usage: true,
        max_tokens: req.max_tokens,
        has_stream_options: true,
        model_span: None,
        may_ask_for_shape: true,
    })
}

/// The routing fields of a Responses request the decoder left for a native upstream.
fn server_side_envelope(body: &[u8]) -> Result<Envelope, InvalidRequest> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| InvalidRequest::body(e.to_string()))?;
    let model = match value.get("model") {
        Some(serde_json::Value::String(model)) if !model.is_empty() => model.clone(),
        _ => {
            return Err(invalid_request_of(crate::ProtocolError::MissingField(
                "model",
            )))
        }
    };
    Ok(Envelope {
        model,
        stream: value
            .get("stream")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        include_usage: true,
        max_tokens: value
            .get("max_output_tokens")
            .and_then(serde_json::Value::as_u64),
        has_stream_options: true,
        model_span: None,
        may_ask_for_shape: true,
    })
}

/// A decoder's error as a refusal naming its field: the decoders' messages begin with the
/// field in backquotes.
pub fn invalid_request_of(error: crate::ProtocolError) -> InvalidRequest {
    match error {
        crate::ProtocolError::MissingField(field) => InvalidRequest {
            param: Some(field.to_owned()),
            message: "is required".to_owned(),
        },
        crate::ProtocolError::Invalid(text) | crate::ProtocolError::ServerSide(text) => {
            match text
                .strip_prefix('`')
                .and_then(|rest| rest.split_once("` "))
            {
                Some((param, message)) => InvalidRequest {
                    param: Some(param.to_owned()),
                    message: message.to_owned(),
                },
                None => InvalidRequest::body(text),
            }
        }
        other => InvalidRequest::body(other.to_string()),
    }
}

/// The top-level keys of an OpenAI or Anthropic request that can ask for the answer's shape.
const SHAPE_KEYS: [&str; 3] = ["tools", "response_format", "output_config"];

/// The routing fields of a validated body (their types are checked already), and where its
/// `model` is in `raw`, the text it was parsed from.
fn envelope(body: &Obj<'_>, raw: &[u8]) -> Envelope {
    let field = |key: &str| check::field(body, key);
    let stream_options = field("stream_options");
    Envelope {
        may_ask_for_shape: SHAPE_KEYS.iter().any(|key| field(key).is_some()),
        model_span: match field("model") {
            Some(Json::String(model)) => crate::envelope::string_span(raw, model.as_str()),
            _ => None,
        },
        model: field("model")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        stream: field("stream").and_then(Json::as_bool).unwrap_or(false),
        include_usage: stream_options
            .and_then(Json::as_object)
            .and_then(|o| o.get("include_usage"))
            .and_then(Json::as_bool)
            .unwrap_or(false),
        max_tokens: field("max_tokens")
            .or_else(|| field("max_completion_tokens"))
            .and_then(Json::as_u64),
        has_stream_options: stream_options.is_some(),
    }
}

#[cfg(test)]
mod tests;
