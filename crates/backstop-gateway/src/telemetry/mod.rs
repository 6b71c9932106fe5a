//! OpenTelemetry traces: a span per client request and a child span per upstream attempt,
//! hedge and continuation (and per attempt of a tool or MCP call), exported over OTLP/HTTP (protobuf) in the background.
//!
//! Off unless `[telemetry] otlp_endpoint` is set, and then nothing here runs at all: the
//! gateway holds no [`Telemetry`] and routes carry no trace. Spans carry what happened
//! (targets, classes, statuses, token counts) and never a prompt, an answer or a key.

mod collector;
mod export;
mod names;
mod otlp;
mod spans;
mod tools;

use collector::OtlpExporter;
pub use export::{Flusher, QueueProcessor, EXPORT_TIMEOUT, QUEUE_SPANS};
pub use names::{shared, TargetNames};
pub use spans::{traced_call, CallKind, RequestTrace, RouteTrace, SpanEnd};
pub use tools::{start_tool_call, tool_attempt, ToolAttemptSpan};

use crate::config::TelemetrySettings;
use crate::metrics::Metrics;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider;
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter as _};
use opentelemetry_sdk::Resource;
use std::sync::Arc;

/// The tracer of a gateway whose telemetry is on.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    sample_ratio: f64,
    flusher: Flusher,
}

/// How long a shutdown waits for the spans still queued to reach the collector.
pub const SHUTDOWN_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

impl Telemetry {
    /// Starts the export described by `settings` on the current Tokio runtime. `None`
    /// (with a warning) outside a runtime or when the exporter cannot be built.
    pub fn start(settings: &TelemetrySettings, metrics: Arc<Metrics>) -> Option<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .ok();
        let (Some(runtime), Some(client)) = (runtime, client) else {
            tracing::warn!("telemetry is configured but could not start: no spans are exported");
            return None;
        };
        let resource = Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .with_attributes(
                settings
                    .resource
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .build();
        // The processor hands spans straight to the exporter, which puts the resource on each batch.
        let mut exporter = OtlpExporter::new(client, settings.traces_url());
        exporter.set_resource(&resource);
        // New traces are sampled before any span is made (see `RequestTrace::start`); the SDK
        // records those and follows a client's decision for its own trace.
        let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        let (processor, flusher) = QueueProcessor::start(exporter, metrics, &runtime);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("backstop");
        tracing::info!(endpoint = %settings.traces_url(), ratio = settings.sample_ratio, "exporting traces");
        Some(Arc::new(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            sample_ratio: settings.sample_ratio,
            flusher,
        }))
    }

    /// Whether a request that came without a `traceparent` starts a trace: with the
    /// probability `sample_ratio`.
    pub(crate) fn sample_new_trace(&self) -> bool {
        self.sample_ratio >= 1.0 || rand::random::<f64>() < self.sample_ratio
    }

    /// The tracer spans are started with.
    pub(crate) fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// The W3C trace context a client sent in `traceparent` / `tracestate`, if any.
    pub(crate) fn extract(&self, headers: &http::HeaderMap) -> opentelemetry::Context {
        self.propagator
            .extract(&opentelemetry_http::HeaderExtractor(headers))
    }

    /// Waits (at most [`SHUTDOWN_FLUSH`]) until the spans ended so far reach the collector:
    /// the last requests before a shutdown are traced too.
    pub async fn flush(&self) {
        if !self.flusher.flush(SHUTDOWN_FLUSH).await {
            tracing::warn!(
                "spans still queued after {SHUTDOWN_FLUSH:?} at shutdown were not exported"
            );
        }
    }

    /// The `traceparent` / `tracestate` headers that carry `cx` to an upstream.
    pub fn inject(&self, cx: &opentelemetry::Context) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        self.inject_into(cx, &mut headers);
        headers
    }

    /// Sets the `traceparent` / `tracestate` headers that carry `cx` in `headers`, a request's
    /// own (no map of their own is built and merged).
    pub fn inject_into(&self, cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
        self.propagator
            .inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}
