//! The span export: a bounded queue that `Span::end` only ever tries to push onto, and
//! one background task that sends the queued spans to the collector in batches, one batch
//! at a time, over the gateway's own HTTP client. A slow or dead collector fills the
//! queue; spans that find it full are dropped and counted, and no request ever waits.
//! At shutdown a [`Flusher`] waits, for a bounded time, until what was queued is sent.

use crate::metrics::Metrics;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Spans waiting for export at most; past it, ended spans are dropped (and counted).
pub const QUEUE_SPANS: usize = 4096;
/// Spans sent in one export request at most.
const BATCH_SPANS: usize = 512;
/// How long one export request may take before its spans are given up.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the export task is handed: a span, or a request to say when what came before it is sent.
#[derive(Debug)]
enum Queued {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// Hands ended spans to the export task through a bounded queue.
#[derive(Debug)]
pub struct QueueProcessor {
    queue: mpsc::Sender<Queued>,
    metrics: MetricsHandle,
}

/// Waits for the export task to send the spans queued so far.
#[derive(Debug, Clone)]
pub struct Flusher(mpsc::Sender<Queued>);

impl Flusher {
    /// Returns once every span queued before the call was sent (or given up by the export),
    /// or after `limit`, whichever comes first; `false` when `limit` ran out.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, sent) = oneshot::channel();
        let waited = tokio::time::timeout(limit, async {
            self.0.send(Queued::Flush(done)).await.is_ok() && sent.await.is_ok()
        });
        matches!(waited.await, Ok(true))
    }
}

/// The metrics registry, printable for the SDK's `Debug` bound.
#[derive(Clone)]
struct MetricsHandle(Arc<Metrics>);

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl QueueProcessor {
    /// A processor whose spans `exporter` sends from a task on `runtime`, and the handle that
    /// waits for them to be sent.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        metrics: Arc<Metrics>,
        runtime: &tokio::runtime::Handle,
    ) -> (Self, Flusher) {
        let (queue, spans) = mpsc::channel(QUEUE_SPANS);
        let metrics = MetricsHandle(metrics);
        runtime.spawn(export_loop(exporter, spans, metrics.clone()));
        let flusher = Flusher(queue.clone());
        (Self { queue, metrics }, flusher)
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queue.try_send(Queued::Span(Box::new(span))).is_err() {
            self.metrics.0.spans("queue_full", 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Sends what the queue holds, a batch at a time, until every sender is gone; a flush
/// request is answered once the batch it came in is sent.
async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut queue: mpsc::Receiver<Queued>,
    metrics: MetricsHandle,
) {
    let mut received = Vec::with_capacity(BATCH_SPANS);
    while queue.recv_many(&mut received, BATCH_SPANS).await > 0 {
        let mut batch = Vec::with_capacity(received.len());
        let mut flushes = Vec::new();
        for item in received.drain(..) {
            match item {
                Queued::Span(span) => batch.push(*span),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        if !batch.is_empty() {
            export_batch(&exporter, batch, &metrics).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Sends one batch, counting how it went.
async fn export_batch<E: SpanExporter>(
    exporter: &E,
    batch: Vec<SpanData>,
    metrics: &MetricsHandle,
) {
    let count = batch.len() as u64;
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
        Ok(Ok(())) => metrics.0.spans("exported", count),
        Ok(Err(error)) => {
            metrics.0.spans("export_failed", count);
            tracing::warn!(spans = count, "trace export failed: {error}");
        }
        Err(_) => {
            metrics.0.spans("export_failed", count);
            tracing::warn!(spans = count, "trace export timed out");
        }
    }
}

/// The OTLP exporter's HTTP client: a plain reqwest client of the gateway's version.
#[derive(Debug, Clone)]
pub struct CollectorClient(pub reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .timeout(EXPORT_TIMEOUT)
            .send()
            .await?;
        let mut out = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        // The collector's answer is small (a partial-success notice at most); cap what is read.
        let body = response.bytes().await?;
        let body = body.slice(..body.len().min(64 << 10));
        Ok(out.body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// A collector that never answers.
    #[derive(Debug)]
    struct Stuck;

    impl SpanExporter for Stuck {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_stuck_collector_fills_the_queue_and_further_spans_are_dropped_and_counted() {
        let metrics = Arc::new(Metrics::new());
        let (processor, _) =
            QueueProcessor::start(Stuck, metrics.clone(), &tokio::runtime::Handle::current());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        // One batch leaves for the stuck export; the queue holds the next QUEUE_SPANS.
        tracer.in_span("first", |_| {});
        tokio::task::yield_now().await;
        for _ in 0..QUEUE_SPANS + 100 {
            tracer.in_span("span", |_| {});
        }
        let text = metrics.render();
        assert!(
            text.contains("backstop_telemetry_spans_total{outcome=\"queue_full\"} 100"),
            "{text}"
        );
    }
}
