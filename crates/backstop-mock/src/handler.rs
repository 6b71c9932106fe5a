//! The provider endpoints: parse, pick a fault, answer (or misbehave).
//!
//! One function, [`serve`], handles all three wire formats so that a fault behaves the same way
//! whichever protocol it hits; only parsing and encoding differ per provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ask::{self, Ask};
use crate::effect::{Effect, StreamFault};
use crate::errors::{self, Context, ErrorCase};
use crate::fault::{FaultKind, Route};
use crate::log::{Draft, LogGuard, RequestLog};
use crate::registry::Faults;
use crate::reply::{plan, Reply, Script};
use crate::stream::{self, Delivery, Events, FaultFrames};
use crate::{anthropic, cloud, embed, gemini, openai, responses};

/// State shared by every request of one mock server.
pub(crate) struct Shared {
    pub(crate) script: Script,
    pub(crate) faults: Faults,
    pub(crate) log: Arc<RequestLog>,
    pub(crate) serial: AtomicU64,
    pub(crate) status: crate::status_page::StatusIndicator,
}

/// Lets a handler ask its connection to be reset (inserted per connection by the server).
#[derive(Clone)]
pub(crate) struct ConnReset(pub(crate) Arc<Notify>);

/// The number of the connection a request came on, counted from 1 in accept order
/// (inserted per connection by the server).
#[derive(Clone, Copy)]
pub(crate) struct ConnectionNo(pub(crate) u64);

impl ConnectionNo {
    /// The number in a request's extensions; 0 when served without the mock's own loop.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> u64 {
        extensions.get::<ConnectionNo>().map_or(0, |n| n.0)
    }
}

/// The wire format and, for Gemini, what the path says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Openai,
    Anthropic,
    Gemini {
        model: String,
        stream: bool,
        sse: bool,
    },
    /// Azure OpenAI, for a deployment.
    Azure {
        deployment: String,
    },
    /// Bedrock InvokeModel (`stream`: with response stream).
    Bedrock {
        model: String,
        stream: bool,
    },
    /// Vertex AI, a publisher's model (`anthropic` or `google`).
    Vertex {
        publisher: String,
        model: String,
        stream: bool,
        sse: bool,
    },
    /// OpenAI `POST /v1/embeddings`.
    OpenaiEmbeddings,
    /// OpenAI `POST /v1/responses` (the Responses API; faults on route `openai` apply).
    OpenaiResponses,
    /// Gemini `:batchEmbedContents` for `model`.
    GeminiEmbeddings {
        model: String,
    },
}

impl Target {
    fn route(&self) -> Route {
        match self {
            Target::Openai | Target::OpenaiEmbeddings | Target::OpenaiResponses => Route::Openai,
            Target::Anthropic => Route::Anthropic,
            Target::Gemini { .. } | Target::GeminiEmbeddings { .. } => Route::Gemini,
            Target::Azure { .. } => Route::Azure,
            Target::Bedrock { .. } => Route::Bedrock,
            Target::Vertex { .. } => Route::Vertex,
        }
    }

    /// The model the path names, where it names one.
    fn path_model(&self) -> &str {
        match self {
            Target::Gemini { model, .. }
            | Target::GeminiEmbeddings { model }
            | Target::Bedrock { model, .. }
            | Target::Vertex { model, .. } => model,
            Target::Azure { deployment } => deployment,
            Target::Openai
            | Target::Anthropic
            | Target::OpenaiEmbeddings
            | Target::OpenaiResponses => "",
        }
    }

    /// Whether its answers are Gemini's (the Gemini API, and Google's models on Vertex).
    fn speaks_gemini(&self) -> Option<bool> {
        match self {
            Target::Gemini { sse, .. } => Some(*sse),
            Target::GeminiEmbeddings { .. } => Some(false),
            Target::Vertex { publisher, sse, .. } if publisher == "google" => Some(*sse),
            _ => None,
        }
    }
}

/// Everything about one incoming request.
pub(crate) struct Incoming {
    pub(crate) target: Target,
    pub(crate) method: Method,
    pub(crate) version: Version,
    pub(crate) connection: u64,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) reset: Option<ConnReset>,
    pub(crate) body: Bytes,
}

impl Incoming {
    /// A request for `target` as axum hands it over: the parts (with the connection's reset
    /// handle among the extensions) and the whole body.
    pub(crate) fn new(target: Target, parts: Parts, body: Bytes) -> Self {
        Incoming {
            target,
            reset: parts.extensions.get::<ConnReset>().cloned(),
            method: parts.method,
            version: parts.version,
            connection: ConnectionNo::of(&parts.extensions),
            uri: parts.uri,
            headers: parts.headers,
            body,
        }
    }
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const SSE: HeaderValue = HeaderValue::from_static("text/event-stream; charset=utf-8");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("application/vnd.amazon.eventstream");

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Builds a response; `extra` headers that are not valid header values are skipped.
fn respond(
    status: u16,
    content_type: HeaderValue,
    extra: &[(&'static str, String)],
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    response
}

fn request_id_header(route: Route, serial: u64) -> Vec<(&'static str, String)> {
    match route {
        Route::Openai | Route::Models => vec![("x-request-id", format!("req_mock{serial:016x}"))],
        Route::Anthropic => vec![("request-id", format!("req_011mock{serial:016x}"))],
        Route::Azure => vec![("apim-request-id", format!("mock-{serial:016x}"))],
        Route::Bedrock => vec![("x-amzn-requestid", format!("mock-{serial:016x}"))],
        Route::Gemini | Route::Vertex => Vec::new(),
    }
}

/// The provider's error response for `case`; `extra` holds the request-id header.
fn error_response(
    route: Route,
    case: ErrorCase,
    cx: &Context<'_>,
    mut extra: Vec<(&'static str, String)>,
    guard: &mut LogGuard,
) -> Response {
    let rendered = errors::render(route, case, cx);
    extra.extend(rendered.headers);
    guard.set_status(rendered.status);
    guard.finish(format!("status {}", rendered.status));
    let body = serde_json::to_vec(&rendered.body).unwrap_or_default();
    respond(rendered.status, JSON, &extra, Body::from(body))
}

fn invalid_json_message(route: Route, err: &serde_json::Error) -> String {
    match route {
        Route::Openai | Route::Models | Route::Azure => "We could not parse the JSON body of your request. (HINT: This likely means you \
            aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not \
            valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at \
            help.openai.com.)"
            .to_owned(),
        Route::Anthropic => format!("There was an error parsing the body: {err}"),
        Route::Gemini | Route::Vertex => format!("Invalid JSON payload received. {err}"),
        Route::Bedrock => format!("Malformed input request: {err}, please reformat your input and try again."),
    }
}

/// Reads the request as its wire format says.
fn parse(incoming: &Incoming) -> Result<Ask, ErrorCase> {
    let route = incoming.target.route();
    let value: Value = serde_json::from_slice(&incoming.body)
        .map_err(|e| ErrorCase::Invalid(invalid_json_message(route, &e)))?;
    match &incoming.target {
        Target::Openai => ask::openai(&value),
        Target::Anthropic => {
            if !incoming.headers.contains_key("anthropic-version") {
                return Err(ErrorCase::Invalid(
                    "anthropic-version: header is required".to_owned(),
                ));
            }
            ask::anthropic(&value)
        }
        Target::Gemini { model, stream, .. } => ask::gemini(model, *stream, &value),
        Target::Azure { deployment } => return cloud::azure(deployment, incoming, value),
        Target::Bedrock { model, stream } => {
            return cloud::bedrock(model, *stream, incoming, value)
        }
        Target::Vertex {
            publisher,
            model,
            stream,
            ..
        } => return cloud::vertex(publisher, model, *stream, incoming, value),
        Target::OpenaiEmbeddings => embed::openai_ask(&value),
        Target::OpenaiResponses => responses::ask(&value),
        Target::GeminiEmbeddings { model } => embed::gemini_ask(model, &value),
    }
    .map_err(ErrorCase::Invalid)
}

/// Drops the connection with a TCP reset (or, without a connection handle, aborts the body).
async fn reset(handle: Option<ConnReset>, mut guard: LogGuard) -> Response {
    guard.finish("reset");
    match handle {
        Some(ConnReset(notify)) => {
            notify.notify_one();
            std::future::pending::<Response>().await
        }
        None => Response::new(stream::single(Bytes::new(), None, true, guard)),
    }
}

/// Handles one provider request from arrival to the last byte.
pub(crate) async fn serve(shared: Arc<Shared>, incoming: Incoming) -> Response {
    let route = incoming.target.route();
    let serial = shared.serial.fetch_add(1, Ordering::Relaxed) + 1;
    let mut guard = shared.log.begin(Draft {
        route,
        method: incoming.method.to_string(),
        version: format!("{:?}", incoming.version),
        connection: incoming.connection,
        path: incoming
            .uri
            .path_and_query()
            .map_or_else(|| incoming.uri.path().to_owned(), |p| p.to_string()),
        headers: incoming.headers.clone(),
        body: incoming.body.clone(),
    });
    let ask = match parse(&incoming) {
        Ok(ask) => ask,
        Err(case) => {
            let model = incoming.target.path_model();
            let cx = Context {
                model,
                retry_after: None,
                input_tokens: 0,
            };
            let extra = request_id_header(route, serial);
            return error_response(route, case, &cx, extra, &mut guard);
        }
    };
    guard.set_request(&ask.model, ask.stream);
    let has_prefill = ask.prefill.is_some();
    let fault = shared
        .faults
        .pick(route, &ask.model, Instant::now(), |kind| {
            has_prefill || !matches!(kind, FaultKind::RejectPrefill)
        });
    let mut model = ask.model.clone();
    let mut stream_fault = None;
    let mut answer = None;
    let mut filtered = false;
    let mut quota = None;
    if let Some(kind) = &fault {
        guard.set_fault(kind.name());
        match kind.effect() {
            Effect::Error(error) => {
                let cx = Context {
                    model: &ask.model,
                    retry_after: error.retry_after,
                    input_tokens: ask.input_tokens,
                };
                if let (Some(sse), true, ErrorCase::ContentFilter) =
                    (incoming.target.speaks_gemini(), ask.stream, &error.case)
                {
                    return gemini_blocked_stream(route, &cx, sse, guard);
                }
                let extra = request_id_header(route, serial);
                return error_response(route, error.case, &cx, extra, &mut guard);
            }
            Effect::Reset => return reset(incoming.reset, guard).await,
            Effect::Hang => {
                guard.finish("hang");
                return std::future::pending::<Response>().await;
            }
            Effect::DelayHeaders(delay) => tokio::time::sleep(delay).await,
            Effect::WrongModel(name) => model = name.to_owned(),
            Effect::Answer(text) => answer = Some(text.to_owned()),
            Effect::FilterOutput => filtered = true,
            Effect::Quota(counts) => quota = Some(counts.headers(route)),
            Effect::Deliver(how) => stream_fault = Some(how),
        }
    }
    let mut reply = plan(&shared.script, &ask, model, serial, unix_now());
    if let Some(text) = answer {
        reply.answer_with(&text);
    }
    if filtered {
        reply.filter_output();
    }
    let mut extra = request_id_header(route, serial);
    extra.extend(quota.unwrap_or_default());
    guard.set_status(200);
    if ask.stream {
        let events = encode_stream(&incoming.target, &reply, &ask);
        let delivery = Delivery::for_fault(stream_fault, &incoming.target);
        let mut extra = extra;
        extra.push(("cache-control", "no-cache".to_owned()));
        let content_type = match &incoming.target {
            Target::Bedrock { .. } => EVENT_STREAM,
            target if target.speaks_gemini() == Some(false) => JSON,
            _ => SSE,
        };
        return respond(
            200,
            content_type,
            &extra,
            stream::body(events, delivery, guard),
        );
    }
    let body = Bytes::from(match &incoming.target {
        Target::Openai => openai::body(&reply),
        Target::Anthropic | Target::Bedrock { .. } => anthropic::body(&reply),
        Target::Azure { .. } => openai::body(&reply),
        Target::OpenaiResponses => responses::body(&reply),
        Target::Gemini { .. } => gemini::body(&reply),
        Target::Vertex { .. } if incoming.target.speaks_gemini().is_some() => gemini::body(&reply),
        Target::Vertex { .. } => anthropic::body(&reply),
        Target::OpenaiEmbeddings | Target::GeminiEmbeddings { .. } => {
            embeddings_body(&incoming, &reply)
        }
    });
    match stream_fault {
        Some(how) => non_stream_fault(how, body, &reply, route, extra, guard),
        None => {
            guard.finish("ok");
            respond(200, JSON, &extra, Body::from(body))
        }
    }
}

/// A non-streaming reply under a stream fault: delays delay the body after the headers, a cut
/// sends half the body then drops the connection, a malformed event truncates the JSON, and
/// an error event, having no stream to travel in, becomes the provider's 500.
fn non_stream_fault(
    fault: StreamFault,
    body: Bytes,
    reply: &Reply,
    route: Route,
    mut extra: Vec<(&'static str, String)>,
    mut guard: LogGuard,
) -> Response {
    let (delay, cut) = match fault {
        StreamFault::SlowFirstToken(delay) => (Some(delay), false),
        StreamFault::SlowStream(delay) => {
            let events = u32::try_from(reply.output_tokens().max(1)).unwrap_or(u32::MAX);
            (Some(delay.saturating_mul(events)), false)
        }
        StreamFault::Stall { duration, .. } => (Some(duration), false),
        StreamFault::CutAfter(_) => (None, true),
        StreamFault::EndAfter(_) => {
            let truncated = body.slice(..body.len() / 2);
            guard.finish("ended after 0");
            return respond(200, JSON, &extra, Body::from(truncated));
        }
        StreamFault::MalformedEvent(_) => {
            let truncated = body.slice(..body.len() / 2);
            guard.finish("malformed body");
            return respond(200, JSON, &extra, Body::from(truncated));
        }
        StreamFault::ErrorEvent(_) => {
            let cx = Context {
                model: &reply.model,
                retry_after: None,
                input_tokens: reply.input_tokens,
            };
            return error_response(route, ErrorCase::Status(500), &cx, extra, &mut guard);
        }
        StreamFault::NoDone => (None, false),
    };
    extra.push(("content-length", body.len().to_string()));
    respond(200, JSON, &extra, stream::single(body, delay, cut, guard))
}

/// The answer to an embeddings request (its body was parsed once already to accept it).
fn embeddings_body(incoming: &Incoming, reply: &Reply) -> Vec<u8> {
    let value: Value = serde_json::from_slice(&incoming.body).unwrap_or_default();
    match incoming.target {
        Target::GeminiEmbeddings { .. } => embed::gemini_body(&value),
        _ => embed::openai_body(&value, &reply.model, reply.input_tokens),
    }
}

fn encode_stream(target: &Target, reply: &Reply, ask: &Ask) -> Events {
    if let Some(sse) = target.speaks_gemini() {
        return gemini::events(reply, sse);
    }
    match target {
        Target::Openai | Target::Azure { .. } | Target::OpenaiEmbeddings => {
            openai::events(reply, ask.include_usage)
        }
        Target::Bedrock { .. } => cloud::bedrock_events(anthropic::events(reply)),
        Target::OpenaiResponses => responses::events(reply),
        Target::Anthropic
        | Target::Gemini { .. }
        | Target::GeminiEmbeddings { .. }
        | Target::Vertex { .. } => anthropic::events(reply),
    }
}

impl FaultFrames for Target {
    fn malformed(&self) -> Bytes {
        if let Some(sse) = self.speaks_gemini() {
            return gemini::malformed(sse);
        }
        match self {
            Target::Openai | Target::Azure { .. } | Target::OpenaiEmbeddings => openai::malformed(),
            Target::Bedrock { .. } => cloud::bedrock_malformed(),
            Target::OpenaiResponses => responses::malformed(),
            Target::Anthropic
            | Target::Gemini { .. }
            | Target::GeminiEmbeddings { .. }
            | Target::Vertex { .. } => anthropic::malformed(),
        }
    }

    fn error_event(&self, first: bool) -> Bytes {
        if let Some(sse) = self.speaks_gemini() {
            return gemini::error_event(sse, first);
        }
        match self {
            Target::Openai | Target::Azure { .. } | Target::OpenaiEmbeddings => {
                openai::error_event()
            }
            Target::Bedrock { .. } => cloud::bedrock_exception(),
            Target::OpenaiResponses => responses::error_event(first),
            Target::Anthropic
            | Target::Gemini { .. }
            | Target::GeminiEmbeddings { .. }
            | Target::Vertex { .. } => anthropic::error_event(),
        }
    }
}

/// Gemini's content filter on a stream: one response with `promptFeedback.blockReason`.
fn gemini_blocked_stream(
    route: Route,
    cx: &Context<'_>,
    sse: bool,
    mut guard: LogGuard,
) -> Response {
    let rendered = errors::render(route, ErrorCase::ContentFilter, cx);
    let json = serde_json::to_string(&rendered.body).unwrap_or_default();
    let body = if sse {
        format!("data: {json}\r\n\r\n")
    } else {
        format!("[{json}]")
    };
    guard.set_status(200);
    guard.finish("blocked");
    respond(200, if sse { SSE } else { JSON }, &[], Body::from(body))
}
