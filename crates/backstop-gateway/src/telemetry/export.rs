//! The span export: a bounded queue that `Span::end` only ever pushes onto (under a lock
//! held for that push alone), and one background task that sends the queued spans to the
//! collector in batches, one batch at a time, over the gateway's own HTTP client. The task
//! is woken only when a span lands in an empty queue (it then waits [`EXPORT_DELAY`] for more
//! to come), when a batch is full, or for a flush: not once per span. A slow or dead
//! collector fills the queue; spans that find it full are dropped and counted, and no
//! request ever waits. At shutdown a [`Flusher`] waits, for a bounded time, until what was
//! queued is sent.

use crate::metrics::Metrics;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// Spans waiting for export at most; past it, ended spans are dropped (and counted).
pub const QUEUE_SPANS: usize = 4096;
/// Spans sent in one export request at most; a queue this long is sent at once.
const BATCH_SPANS: usize = 512;
/// How long the first span of a batch waits for more before the batch is sent anyway.
pub const EXPORT_DELAY: Duration = Duration::from_millis(100);
/// How long one export request may take before its spans are given up.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What waits for the export task: ended spans, and flushes to answer once they are sent.
#[derive(Default)]
struct Pending {
    spans: Vec<SpanData>,
    flushes: Vec<oneshot::Sender<()>>,
    closed: bool,
}

/// The queue shared by the processor, the flusher and the export task.
struct Queue {
    pending: Mutex<Pending>,
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue")
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `span`, or counts it dropped when the queue is full; wakes the export task for
    /// the first span of a batch and for a full one.
    fn push(&self, span: SpanData) {
        let queued = {
            let mut pending = self.lock();
            if pending.spans.len() >= QUEUE_SPANS {
                None
            } else {
                pending.spans.push(span);
                Some(pending.spans.len())
            }
        };
        match queued {
            None => self.metrics.spans("queue_full", 1),
            Some(1 | BATCH_SPANS) => self.wake.notify_one(),
            Some(_) => {}
        }
    }

    /// Whether the export task should send now rather than wait for more spans.
    fn urgent(&self) -> bool {
        let pending = self.lock();
        pending.spans.len() >= BATCH_SPANS || !pending.flushes.is_empty() || pending.closed
    }

    /// Swaps every queued span for the empty `spare` (whose room the next spans reuse: the
    /// queue does not grow a new buffer for each batch), and takes the flush requests and
    /// whether the queue is closed.
    fn take(&self, spare: &mut Vec<SpanData>) -> (Vec<oneshot::Sender<()>>, bool) {
        let mut pending = self.lock();
        std::mem::swap(&mut pending.spans, spare);
        (std::mem::take(&mut pending.flushes), pending.closed)
    }
}

/// Hands ended spans to the export task through a bounded queue.
#[derive(Debug)]
pub struct QueueProcessor(Arc<Queue>);

/// Waits for the export task to send the spans queued so far.
#[derive(Debug, Clone)]
pub struct Flusher(Arc<Queue>);

impl Flusher {
    /// Returns once every span queued before the call was sent (or given up by the export),
    /// or after `limit`, whichever comes first; `false` when `limit` ran out.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, sent) = oneshot::channel();
        {
            let mut pending = self.0.lock();
            if pending.closed {
                return false;
            }
            pending.flushes.push(done);
        }
        self.0.wake.notify_one();
        matches!(tokio::time::timeout(limit, sent).await, Ok(Ok(())))
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
        let pending = Pending {
            spans: Vec::with_capacity(BATCH_SPANS),
            ..Pending::default()
        };
        let queue = Arc::new(Queue {
            pending: Mutex::new(pending),
            wake: Notify::new(),
            metrics,
        });
        runtime.spawn(export_loop(exporter, queue.clone()));
        (Self(queue.clone()), Flusher(queue))
    }
}

impl Drop for QueueProcessor {
    /// Lets the export task send what is queued and stop.
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Sends what the queue holds, a batch at a time, until the processor is dropped: woken by
/// the first span of a batch, it waits up to [`EXPORT_DELAY`] for the batch to fill (not
/// when a flush is asked for), then sends every span queued so far and answers the flushes
/// that came with them.
async fn export_loop<E: SpanExporter>(exporter: E, queue: Arc<Queue>) {
    let mut spans = Vec::with_capacity(BATCH_SPANS);
    loop {
        queue.wake.notified().await;
        if !queue.urgent() {
            tokio::select! {
                () = tokio::time::sleep(EXPORT_DELAY) => {}
                () = queue.wake.notified() => {}
            }
        }
        let (flushes, closed) = queue.take(&mut spans);
        while !spans.is_empty() {
            let batch: Vec<SpanData> = spans.drain(..spans.len().min(BATCH_SPANS)).collect();
            export_batch(&exporter, batch, &queue.metrics).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

/// Sends one batch, counting how it went.
async fn export_batch<E: SpanExporter>(exporter: &E, batch: Vec<SpanData>, metrics: &Metrics) {
    let count = batch.len() as u64;
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
        Ok(Ok(())) => metrics.spans("exported", count),
        Ok(Err(error)) => {
            metrics.spans("export_failed", count);
            tracing::warn!(spans = count, "trace export failed: {error}");
        }
        Err(_) => {
            metrics.spans("export_failed", count);
            tracing::warn!(spans = count, "trace export timed out");
        }
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

    /// A collector that answers at once and notes the size of every batch.
    #[derive(Debug, Default, Clone)]
    struct Sizes(Arc<Mutex<Vec<usize>>>);

    impl SpanExporter for Sizes {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn spans(tracer: &opentelemetry_sdk::trace::SdkTracer, count: usize) {
        for _ in 0..count {
            tracer.in_span("span", |_| {});
        }
    }

    fn counted(metrics: &Metrics, outcome: &str, count: u64) -> bool {
        let line = format!("backstop_telemetry_spans_total{{outcome=\"{outcome}\"}} {count}\n");
        metrics.render().contains(&line)
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_collector_fills_the_queue_and_further_spans_are_dropped_and_counted() {
        let metrics = Arc::new(Metrics::new());
        let (processor, _) =
            QueueProcessor::start(Stuck, metrics.clone(), &tokio::runtime::Handle::current());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        // Ended before the export task runs: the queue takes QUEUE_SPANS of them.
        spans(&tracer, QUEUE_SPANS + 100);
        assert!(counted(&metrics, "queue_full", 100), "{}", metrics.render());
        // The task takes them all and is stuck on the first batch: the queue fills again.
        tokio::time::sleep(EXPORT_DELAY * 2).await;
        spans(&tracer, QUEUE_SPANS + 1);
        assert!(counted(&metrics, "queue_full", 101), "{}", metrics.render());
    }

    #[tokio::test(start_paused = true)]
    async fn spans_go_in_full_batches_and_a_lone_span_waits_for_the_delay() {
        let metrics = Arc::new(Metrics::new());
        let sizes = Sizes::default();
        let (processor, flusher) = QueueProcessor::start(
            sizes.clone(),
            metrics.clone(),
            &tokio::runtime::Handle::current(),
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        spans(&tracer, 2 * BATCH_SPANS + 10);
        tokio::task::yield_now().await;
        assert_eq!(*sizes.0.lock().unwrap(), [BATCH_SPANS, BATCH_SPANS, 10]);
        spans(&tracer, 1);
        tokio::time::sleep(EXPORT_DELAY / 2).await;
        assert_eq!(
            sizes.0.lock().unwrap().len(),
            3,
            "a lone span waits for company"
        );
        tokio::time::sleep(EXPORT_DELAY).await;
        assert_eq!(sizes.0.lock().unwrap()[3..], [1]);
        // A flush does not wait for the delay.
        spans(&tracer, 2);
        assert!(flusher.flush(Duration::from_millis(1)).await);
        assert_eq!(sizes.0.lock().unwrap()[4..], [2]);
        assert!(counted(&metrics, "exported", 2 * BATCH_SPANS as u64 + 13));
    }
}
