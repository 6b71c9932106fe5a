//! The spans of one client request: the request's own, and one child per upstream call
//! (attempt, hedge or continuation), started where the call starts and ended where the
//! attempt's outcome is recorded (`pipeline::record`).
//!
//! Attributes follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`), plus
//! Backstop's own (`backstop.*`). None of them holds a prompt, an answer, an upstream's
//! error text or a key.

use super::Telemetry;
use crate::http::ServedMeta;
use crate::pipeline::{Answered, ClientRequest, Route};
use backstop_core::FailureClass;
use backstop_protocol::{Protocol, ProviderKind};
use opentelemetry::trace::{FutureExt, Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::Span;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What kind of upstream call a span stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// A call of the attempt loop (a retry, another channel, a fallback, or a hedge).
    Attempt,
    /// A call that continues a broken stream.
    Continuation,
}

/// How an attempt's span ends.
pub enum SpanEnd<'a> {
    /// A whole answer, with what the upstream reported of it.
    Answered(Answered<'a>),
    /// A failure of this class, with the upstream's status if it answered.
    Failed(FailureClass, Option<u16>),
    /// Ended by the gateway, for this reason.
    Cut(&'static str),
}

/// The span of one client request; it ends when the last of its routes is dropped, that
/// is once the answer (a stream included) is over. A request of a client's trace that the
/// client did not sample makes no spans: its upstream calls only carry that trace on.
pub struct RequestTrace {
    telemetry: Arc<Telemetry>,
    cx: Context,
    sampled: bool,
}

impl RequestTrace {
    /// Starts the span of `request`, a child of the client's `traceparent` if it sent one.
    /// `None` for a request without one that sampling leaves out: nothing more is done for it.
    pub fn start(telemetry: &Arc<Telemetry>, request: &ClientRequest) -> Option<Arc<Self>> {
        let path = match request.protocol {
            Protocol::Anthropic => "/v1/messages",
            _ => "/v1/chat/completions",
        };
        Self::begin(telemetry, &request.headers, || {
            let model = request.envelope.model.as_str();
            // Room for the attributes the answer adds too: the vector is not grown then.
            let mut attributes = Vec::with_capacity(REQUEST_ATTRIBUTES);
            attributes.extend([
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", model.to_owned()),
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("url.path", path),
                KeyValue::new("backstop.request_id", request.request_id().to_owned()),
                KeyValue::new("backstop.stream", request.envelope.stream),
            ]);
            (["chat ", model].concat(), attributes)
        })
    }

    /// Starts a server span for a call that came with `headers`, a child of the client's
    /// `traceparent` if it sent one, named and described by `describe` once sampled (a call
    /// left out costs no allocation for them). `None` when sampling leaves a new trace out.
    pub(crate) fn begin(
        telemetry: &Arc<Telemetry>,
        headers: &http::HeaderMap,
        describe: impl FnOnce() -> (String, Vec<KeyValue>),
    ) -> Option<Arc<Self>> {
        if !headers.contains_key("traceparent") && !telemetry.sample_new_trace() {
            return None;
        }
        let parent = telemetry.extract(headers);
        // The sampler follows a client's decision and records every new trace: the span is
        // described only when it will be recorded, and made with its attributes at once.
        let recorded = {
            let parent_span = parent.span();
            let context = parent_span.span_context();
            !context.is_valid() || context.is_sampled()
        };
        let tracer = telemetry.tracer();
        let mut builder = tracer.span_builder("call").with_kind(SpanKind::Server);
        if recorded {
            let (name, attributes) = describe();
            builder.name = name.into();
            builder.attributes = Some(attributes);
        }
        let span = builder.start_with_context(tracer, &parent);
        let sampled = span.span_context().is_sampled();
        Some(Arc::new(Self {
            telemetry: telemetry.clone(),
            cx: parent.with_span(span),
            sampled,
        }))
    }

    /// Starts a client span under this one (none when the request is not sampled) and the
    /// `traceparent` / `tracestate` headers that carry it to the server called.
    pub(crate) fn child(
        &self,
        name: String,
        attributes: Vec<KeyValue>,
    ) -> (Option<Span>, http::HeaderMap) {
        if !self.sampled {
            return (None, self.telemetry.inject(&self.cx));
        }
        let (span, cx) = self.client_span(name, attributes);
        (Some(span), self.telemetry.inject(&cx))
    }

    /// A client span under this one, and the context a call in it runs in.
    fn client_span(&self, name: String, attributes: Vec<KeyValue>) -> (Span, Context) {
        let tracer = self.telemetry.tracer();
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &self.cx);
        let cx = self
            .cx
            .with_remote_span_context(span.span_context().clone());
        (span, cx)
    }

    /// Sets the response status of the request's span, an error from 500 on.
    pub(crate) fn status(&self, status: u16) {
        if !self.sampled {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error(format!("answered {status}")));
        }
    }

    /// Notes how the request was answered: status, tier, who served and how many calls it took.
    pub fn answered(&self, status: u16, tier: &str, meta: Option<&ServedMeta>) {
        if !self.sampled {
            return;
        }
        self.status(status);
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new("backstop.tier", tier.to_string()));
        if let Some(meta) = meta {
            attributes.push(KeyValue::new("backstop.model", meta.model.clone()));
            attributes.push(KeyValue::new("backstop.fallback", meta.fallback));
            attributes.push(KeyValue::new("backstop.attempts", i64::from(meta.attempts)));
            if let Some(target) = &meta.target {
                attributes.push(KeyValue::new("backstop.target", target.clone()));
            }
        }
        self.cx.span().set_attributes(attributes);
    }

    /// A trace of the calls to one route.
    pub fn route(self: &Arc<Self>) -> Arc<RouteTrace> {
        Arc::new(RouteTrace {
            request: self.clone(),
            open: Mutex::new(Vec::new()),
            last_end: Mutex::new(None),
        })
    }
}

/// Attributes a request's span has at most: those it starts with, and those its answer adds.
const REQUEST_ATTRIBUTES: usize = 12;

/// Attributes an attempt's span has at most: those it starts with, and those its end adds.
const ATTEMPT_ATTRIBUTES: usize = 18;

/// The spans of the calls to one route of a request, by attempt number.
pub struct RouteTrace {
    request: Arc<RequestTrace>,
    open: Mutex<Vec<(u32, Span)>>,
    last_end: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RouteTrace {
    /// Starts the span of call `number` to `route` (none when the request is not sampled);
    /// returns the context the call runs in.
    fn start(&self, route: &Route, number: u32, kind: CallKind) -> Context {
        if !self.request.sampled {
            return self.request.cx.clone();
        }
        let names = &route.target.trace_names;
        // Room for the attributes the span's end adds too: the vector is not grown then.
        let mut attributes = Vec::with_capacity(ATTEMPT_ATTRIBUTES);
        attributes.extend([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.system", system(route.target.provider.kind)),
            KeyValue::new("gen_ai.request.model", names.model.clone()),
            KeyValue::new("backstop.target", names.label.clone()),
            KeyValue::new("backstop.model", route.model.trace_name.clone()),
            KeyValue::new("backstop.attempt", i64::from(number)),
            KeyValue::new("backstop.fallback", route.is_fallback),
            KeyValue::new(
                "backstop.call",
                match kind {
                    CallKind::Attempt => "attempt",
                    CallKind::Continuation => "continuation",
                },
            ),
        ]);
        if let (true, Some(previous)) = (number > 1, *lock(&self.last_end)) {
            let waited = previous.elapsed().as_millis() as i64;
            attributes.push(KeyValue::new("backstop.retry_delay_ms", waited));
        }
        let name = match kind {
            CallKind::Attempt => names.chat.clone(),
            CallKind::Continuation => names.continuation.clone(),
        };
        let (span, cx) = self.request.client_span(name, attributes);
        let mut open = lock(&self.open);
        if let Some(at) = open.iter().position(|(n, _)| *n == number) {
            let (_, stale) = open.swap_remove(at);
            end_unfinished(stale, "cancelled");
        }
        open.push((number, span));
        cx
    }

    /// Ends the span of call `number` (a hedge if `hedge`) with how it ended.
    pub fn end(&self, route: &Route, number: u32, hedge: bool, ended: SpanEnd<'_>) {
        if !self.request.sampled {
            return;
        }
        let span = {
            let mut open = lock(&self.open);
            let at = open.iter().position(|(n, _)| *n == number);
            at.map(|at| open.swap_remove(at).1)
        };
        *lock(&self.last_end) = Some(Instant::now());
        let Some(mut span) = span else { return };
        if hedge {
            span.set_attribute(KeyValue::new("backstop.hedge", true));
            span.update_name(route.target.trace_names.hedge.clone());
        }
        let breaker = route.health.breaker.state().as_str();
        span.set_attribute(KeyValue::new("backstop.breaker_state", breaker));
        match ended {
            SpanEnd::Answered(answered) => {
                span.set_attribute(KeyValue::new("backstop.outcome", "answered"));
                let model = match answered.model {
                    Some(model) => StringValue::from(model.to_string()),
                    None => route.target.trace_names.model.clone(),
                };
                span.set_attribute(KeyValue::new("gen_ai.response.model", model));
                if let Some(finish) = answered.finish {
                    let reasons = vec![StringValue::from(finish.as_str())];
                    span.set_attribute(KeyValue::new(
                        "gen_ai.response.finish_reasons",
                        Value::Array(Array::String(reasons)),
                    ));
                }
                if let Some(usage) = answered.usage {
                    span.set_attribute(KeyValue::new(
                        "gen_ai.usage.input_tokens",
                        usage.input_tokens as i64,
                    ));
                    span.set_attribute(KeyValue::new(
                        "gen_ai.usage.output_tokens",
                        usage.output_tokens as i64,
                    ));
                }
                span.set_status(Status::Ok);
            }
            SpanEnd::Failed(class, status) => {
                span.set_attribute(KeyValue::new("backstop.outcome", "failed"));
                span.set_attribute(KeyValue::new("backstop.failure_class", class.as_str()));
                span.set_attribute(KeyValue::new("error.type", class.as_str()));
                if let Some(status) = status {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status),
                    ));
                }
                span.set_status(Status::error(class.as_str()));
            }
            SpanEnd::Cut(reason) => {
                span.set_attribute(KeyValue::new("backstop.outcome", "cut"));
                span.set_attribute(KeyValue::new("backstop.cut", reason));
            }
        }
        span.end();
    }

    /// Ends call `number`'s span if it is still open: its call was dropped before it ended.
    fn cancel(&self, number: u32) {
        let mut open = lock(&self.open);
        if let Some(at) = open.iter().position(|(n, _)| *n == number) {
            let (_, span) = open.swap_remove(at);
            drop(open);
            end_unfinished(span, "cancelled");
        }
    }
}

impl Drop for RouteTrace {
    fn drop(&mut self) {
        for (_, span) in lock(&self.open).drain(..) {
            end_unfinished(span, "abandoned");
        }
    }
}

fn end_unfinished(mut span: Span, outcome: &'static str) {
    span.set_attribute(KeyValue::new("backstop.outcome", outcome));
    span.end();
}

/// `gen_ai.system` of a provider kind.
fn system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Azure => "az.ai.openai",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Vertex => "gcp.vertex_ai",
    }
}

/// Runs the call `make` makes, call `number` to `route`, in its own span when the route is
/// traced (the span is ended by the attempt's record, or as cancelled if the call is dropped
/// first). The call is made in place and awaited through its pin: the future of an upstream
/// call is the largest part of a request's, and is held once.
pub async fn traced_call<F: Future>(
    route: &Route,
    number: u32,
    kind: CallKind,
    make: impl FnOnce() -> F,
) -> F::Output {
    let call = std::pin::pin!(make());
    let Some(trace) = &route.trace else {
        return call.await;
    };
    let cx = trace.start(route, number, kind);
    let guard = CancelGuard {
        trace,
        number,
        armed: true,
    };
    let output = call.with_context(cx).await;
    guard.disarm();
    output
}

/// Ends a call's span as cancelled when its future is dropped before it finished (the
/// losing side of a hedge, a request whose client went away).
struct CancelGuard<'a> {
    trace: &'a RouteTrace,
    number: u32,
    armed: bool,
}

impl CancelGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.trace.cancel(self.number);
        }
    }
}
