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
//! [`validate_request`] parses the body once into a tree, checks it, and reads the routing
//! [`Envelope`] from the same tree, so the gateway's passthrough path parses each body once.

mod anthropic;
mod check;
mod openai;

use std::fmt;

use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::{Envelope, Protocol};

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
    let body = parse(body)?;
    match protocol {
        Protocol::OpenAi => openai::request(&body)?,
        Protocol::Anthropic => anthropic::request(&body)?,
        Protocol::Gemini => {
            return Err(InvalidRequest::body(
                "Gemini is an upstream protocol only: clients speak OpenAI or Anthropic",
            ))
        }
    }
    Ok(envelope(&body))
}

/// Parses the body: UTF-8 first (so that the message can say so), then one JSON object.
fn parse(body: &[u8]) -> Checked<Map<String, Value>> {
    let text = std::str::from_utf8(body).map_err(|error| {
        InvalidRequest::body(format!(
            "the request body is not valid UTF-8 (invalid byte at offset {})",
            error.valid_up_to()
        ))
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = deserializer
        .deserialize_map(TopLevel)
        .and_then(|object| deserializer.end().map(|()| object));
    parsed.map_err(|error| {
        let what = if is_lone_surrogate(&error) {
            "the request body holds a lone surrogate (a \\u escape of half a UTF-16 pair, not \
             valid Unicode)"
        } else {
            "the request body is not a valid JSON object"
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

/// The top-level object, refusing a key given twice: two readers of the body (this gateway and
/// an upstream) must never disagree on which `model`, `stream` or `messages` it holds.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value::<Value>()?;
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key `{key}`")));
            }
            object.insert(key, value);
        }
        Ok(object)
    }
}

/// The routing fields of a validated body (their types are checked already).
fn envelope(body: &Map<String, Value>) -> Envelope {
    let field = |key: &str| body.get(key).filter(|v| !v.is_null());
    let stream_options = field("stream_options");
    Envelope {
        model: field("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        stream: field("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: stream_options
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        max_tokens: field("max_tokens")
            .or_else(|| field("max_completion_tokens"))
            .and_then(Value::as_u64),
        has_stream_options: stream_options.is_some(),
    }
}

#[cfg(test)]
mod tests;
