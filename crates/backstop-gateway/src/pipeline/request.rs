//! A client request as the pipeline sees it: the caller's protocol, the raw body, its
//! envelope, the body for each target (translated only when needed), and the context it runs
//! in, fixed when it arrives: the configuration in force then and its total deadline. A reload
//! while the request runs never changes its plan, timeouts or keys.

use super::outgoing::{needs_whole_body, Outgoing};
use super::structured::Shape;
use crate::config::{Config, Target};
use crate::http::{ApiError, ErrorKind};
use backstop_protocol::{ChatRequest, Envelope, Protocol};
use bytes::Bytes;
use http::HeaderMap;
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

/// One client request.
pub struct ClientRequest {
    /// The protocol the caller speaks.
    pub protocol: Protocol,
    /// The caller's headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The fields routing needs.
    pub envelope: Envelope,
    /// The configuration in force when the request arrived.
    pub config: Arc<Config>,
    /// When the whole request must be answered (`timeouts.total` from its arrival).
    pub deadline: Instant,
    /// A job of the durable queue replayed by its worker: never queued again.
    pub from_queue: bool,
    /// What it costs, charged to its client key (set when it is admitted).
    pub tab: Option<Arc<crate::governance::Tab>>,
    canonical: OnceLock<Result<ChatRequest, backstop_protocol::InvalidRequest>>,
    shape: OnceLock<Option<Shape>>,
}

impl ClientRequest {
    /// Validates `body` as a request of `protocol` and reads its envelope. This is the one place
    /// a request is checked: an invalid one is a 400 naming the field, before any plan or
    /// upstream call, whichever path (forwarded or translated) it would have taken.
    /// It runs under `config`, the snapshot the edge checked its key against. The headers and
    /// body are moved off the connection's read buffer ([`crate::http::detach`]): a request is
    /// kept until its answer ends, a stream's for as long as it is open.
    pub fn new(
        protocol: Protocol,
        mut headers: HeaderMap,
        body: Bytes,
        config: Arc<Config>,
    ) -> Result<Self, ApiError> {
        let body = crate::http::detach(&mut headers, body);
        let envelope = backstop_protocol::validate_request(protocol, &body)
            .map_err(ApiError::invalid_request)?;
        Ok(Self {
            protocol,
            headers,
            body,
            envelope,
            deadline: Instant::now() + config.timeouts.total,
            config,
            from_queue: false,
            tab: None,
            canonical: OnceLock::new(),
            shape: OnceLock::new(),
        })
    }

    /// The request id set by the edge (`x-request-id`).
    pub fn request_id(&self) -> &str {
        self.headers
            .get(&crate::http::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }

    /// Cheap estimate of the prompt's size in tokens (a byte count over four).
    pub fn estimated_tokens(&self) -> u64 {
        self.body.len() as u64 / 4
    }

    /// The protocol-neutral form of the request, decoded once on first use.
    /// The shape the request asks its answer to have (structured output, tool parameters),
    /// if any.
    pub fn shape(&self) -> Option<&Shape> {
        self.shape
            .get_or_init(|| {
                if !self.envelope.may_ask_for_shape || !may_ask_for_shape(&self.body) {
                    return None;
                }
                self.canonical().ok().and_then(Shape::of)
            })
            .as_ref()
    }

    pub fn canonical(&self) -> Result<&ChatRequest, ApiError> {
        self.canonical
            .get_or_init(|| {
                match self.protocol {
                    Protocol::OpenAi => backstop_protocol::openai::decode_request(&self.body),
                    Protocol::Anthropic => backstop_protocol::anthropic::decode_request(&self.body),
                    Protocol::Responses => backstop_protocol::responses::decode_request(&self.body),
                    Protocol::Gemini => Err(backstop_protocol::ProtocolError::Invalid(
                        "Gemini is an upstream protocol only".into(),
                    )),
                }
                .map_err(backstop_protocol::invalid_request_of)
            })
            .as_ref()
            .map_err(|error| ApiError::invalid_request(error.clone()))
    }

    /// The body to send to `target`: the caller's bytes with the model renamed when the
    /// protocols match (as pieces of the caller's body, unless the channel needs it whole),
    /// otherwise a translation. Untranslatable requests are a 400.
    pub fn body_for(&self, target: &Target) -> Result<Outgoing, ApiError> {
        let invalid = |error: backstop_protocol::ProtocolError| {
            ApiError::new(ErrorKind::InvalidRequest, error.to_string())
        };
        let body = self.upstream_body(target, target.spec())?;
        if !needs_whole_body(target) {
            return Ok(body);
        }
        target
            .adapt_body(body.whole())
            .map(Outgoing::from)
            .map_err(invalid)
    }

    /// The body in the protocol of `spec`, before the channel's own adaptation.
    fn upstream_body(
        &self,
        target: &Target,
        spec: &backstop_protocol::ProviderSpec,
    ) -> Result<Outgoing, ApiError> {
        let invalid = |error: backstop_protocol::ProtocolError| {
            ApiError::new(ErrorKind::InvalidRequest, error.to_string())
        };
        if spec.protocol == self.protocol {
            let count_stream = spec.usage_needs_stream_options
                && self.envelope.stream
                && !self.envelope.has_stream_options;
            let pieces = backstop_protocol::forward_pieces(
                &self.body,
                &self.envelope,
                &target.model,
                count_stream,
            )
            .map_err(invalid)?;
            return Ok(Outgoing::pieces(pieces));
        }
        let canonical = self.canonical()?;
        let encoded = backstop_protocol::encode_request(spec.protocol, canonical, &target.model)
            .map_err(|error| ApiError::new(ErrorKind::InvalidRequest, error.to_string()))?;
        for warning in &encoded.warnings {
            tracing::warn!(target = %target.label, "{warning}");
        }
        Ok(Bytes::from(encoded.body).into())
    }
}

/// Whether a body may ask for a shape (structured output or tools): a scan of its bytes, so
/// that a request that names none of them is never decoded for it. Only for bodies whose
/// envelope could not tell (the Responses API's).
fn may_ask_for_shape(body: &[u8]) -> bool {
    const KEYS: [&[u8]; 4] = [
        b"\"tools\"",
        b"\"response_format\"",
        b"\"output_config\"",
        b"\"format\"",
    ];
    KEYS.iter()
        .any(|key| memchr::memmem::find(body, key).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_request_holds_nothing_of_the_buffer_it_was_read_from() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let buffer = Bytes::from(format!("req-1{body}").into_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-request-id",
            HeaderValue::from_maybe_shared(buffer.slice(..5)).unwrap(),
        );
        let config = Arc::new(crate::config::parse("", &|_| None).unwrap());
        let request =
            ClientRequest::new(Protocol::OpenAi, headers, buffer.slice(5..), config).unwrap();
        assert_eq!(request.request_id(), "req-1");
        assert_eq!(request.body, body.as_bytes());
        assert!(
            buffer.is_unique(),
            "the request still shares the read buffer"
        );
    }
}
