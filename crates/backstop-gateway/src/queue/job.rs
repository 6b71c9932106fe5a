//! What a job stores: the request as it came (the caller's protocol, its headers but no credentials, its body
//! asking for a whole answer), and who may see it.

use crate::config::{ClientKey, Config};
use crate::http::{presented_key, ApiError, ErrorKind};
use crate::pipeline::ClientRequest;
use backstop_protocol::Protocol;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Headers never stored with a job: credentials, hop-by-hop headers, and the queue's own.
const NOT_STORED: [&str; 10] = [
    "authorization",
    "x-api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "prefer",
    super::callback::HEADER,
];

/// A queued request.
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    /// `openai`, `anthropic` or `responses`.
    pub protocol: String,
    /// The caller's headers worth keeping.
    pub headers: Vec<(String, String)>,
    /// The body, asking for a whole (not streamed) answer.
    pub body: String,
    /// The name of the client key that sent it (never the key itself), whose tab the replay is charged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Who sent it, as stored answers of the Responses API name their owner (the hash of the client key,
    /// never the key), so that a queued answer is kept for `previous_response_id` like a live one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Payload {
    /// The payload of `request`: a streaming request is stored as a non-streaming one, so that its result is the
    /// whole answer in the caller's protocol.
    pub fn of(request: &ClientRequest) -> Result<Payload, ApiError> {
        let mut body: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|error| ApiError::new(ErrorKind::InvalidRequest, error.to_string()))?;
        if let Some(object) = body.as_object_mut() {
            if object.contains_key("stream") {
                object.insert("stream".into(), serde_json::Value::Bool(false));
            }
            object.remove("stream_options");
        }
        let headers = request
            .headers
            .iter()
            .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        Ok(Payload {
            protocol: protocol_name(request.protocol).to_string(),
            headers,
            body: body.to_string(),
            key: request
                .tab
                .as_ref()
                .and_then(|tab| tab.key())
                .map(|key| key.name.clone()),
            client: Some(crate::keep::key::client_id(&request.headers)),
        })
    }

    /// The payload as stored.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored payload.
    pub fn decode(text: &str) -> Option<Payload> {
        serde_json::from_str(text).ok()
    }

    /// The caller's protocol.
    pub fn protocol(&self) -> Option<Protocol> {
        match self.protocol.as_str() {
            "openai" => Some(Protocol::OpenAi),
            "anthropic" => Some(Protocol::Anthropic),
            "responses" => Some(Protocol::Responses),
            _ => None,
        }
    }

    /// The stored headers.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    /// The body.
    pub fn body(&self) -> Bytes {
        Bytes::from(self.body.clone())
    }

    /// The client key that sent the job, if it had one and `config` still accepts a key of that name.
    pub fn client_key(&self, config: &Config) -> Option<Arc<ClientKey>> {
        let name = self.key.as_deref()?;
        let auth = config.auth.as_ref()?;
        auth.keys.iter().find(|key| key.name == name).cloned()
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Anthropic => "anthropic",
        Protocol::Responses => "responses",
        Protocol::OpenAi | Protocol::Gemini => "openai",
    }
}

/// A new job id: 128 random bits.
pub fn new_id() -> String {
    format!("job_{:032x}", rand::random::<u128>())
}

/// Who may see a job: a digest of the client key presented (`""` without one), never the key itself.
pub fn owner(headers: &HeaderMap) -> String {
    match presented_key(headers) {
        Some(key) => hex::encode(Sha256::digest(key.as_bytes())),
        None => String::new(),
    }
}

/// The 404 for a job that does not exist or belongs to someone else (the two are not told apart).
pub fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no job with id `{id}` (it may have expired, or belong to another key)"),
    )
}
