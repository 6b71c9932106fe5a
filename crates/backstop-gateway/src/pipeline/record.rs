//! The one place an attempt's outcome is recorded: its breaker (and a rate-limit hold), the
//! attempt metric, usage and cost, and the log line. The engine calls it for every attempt that fails before the
//! commit point; the answer that is served calls it once it is whole (a stream when it ends).

use super::failure::Failure;
use super::plan::Route;
use crate::metrics::Metrics;
use crate::telemetry::SpanEnd;
use backstop_core::{Attempt, FailureClass};
use backstop_protocol::{FinishReason, Usage};

/// What a whole answer said about itself, as far as the upstream reported it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Answered<'a> {
    /// Its token counts.
    pub usage: Option<&'a Usage>,
    /// Why it ended.
    pub finish: Option<&'a FinishReason>,
    /// The model the upstream says answered.
    pub model: Option<&'a str>,
}

impl<'a> Answered<'a> {
    /// An answer known by its usage alone.
    pub fn with_usage(usage: Option<&'a Usage>) -> Self {
        Self {
            usage,
            ..Self::default()
        }
    }
}

/// What the upstream reported of a whole answer, kept until the attempt is recorded.
#[derive(Clone, Debug, Default)]
pub struct Reported {
    /// Its token counts.
    pub usage: Option<Usage>,
    /// Why it ended.
    pub finish: Option<FinishReason>,
    /// The model the upstream says answered.
    pub model: Option<String>,
}

impl Reported {
    /// What `answer` says of itself.
    pub fn of(answer: &backstop_protocol::ChatResponse) -> Self {
        Self {
            usage: Some(answer.usage),
            finish: Some(answer.finish.clone()),
            model: Some(answer.model.clone()),
        }
    }

    /// The finish reason and model of the whole answer `body` in protocol `upstream`, read
    /// alone (see [`backstop_protocol::read_summary`]); nothing when it is not an answer.
    pub fn summary(upstream: backstop_protocol::Protocol, body: &[u8]) -> Self {
        match backstop_protocol::read_summary(upstream, body) {
            Some(summary) => Self {
                usage: None,
                finish: Some(summary.finish),
                model: Some(summary.model),
            },
            None => Self::default(),
        }
    }

    /// The same, borrowed for the record.
    pub fn answered(&self) -> Answered<'_> {
        Answered {
            usage: self.usage.as_ref(),
            finish: self.finish.as_ref(),
            model: self.model.as_deref(),
        }
    }
}

/// How an attempt ended.
pub enum Ended<'a> {
    /// A whole answer.
    Answered(Answered<'a>),
    /// A failure, before or after the commit point.
    Failed(&'a Failure),
    /// Ended by the gateway, not the target (the request's deadline, a shutdown): its
    /// breaker is not told, and the attempt is counted as cut, for `reason`.
    Cut(&'static str),
}

/// Records how `attempt` on `route` ended.
pub fn record_attempt(metrics: &Metrics, route: &Route, attempt: Attempt, ended: Ended<'_>) {
    let label = &route.target.label;
    let traced = route.trace.as_ref().map(|trace| {
        (
            trace,
            attempt.number(),
            attempt.is_hedge(),
            span_end(&ended),
        )
    });
    match ended {
        Ended::Answered(answered) => {
            attempt.finish(None);
            metrics.answered(label, route.health.series(metrics));
            if let Some(usage) = answered.usage {
                record_usage(metrics, route, usage);
            }
        }
        Ended::Failed(failure) => {
            let number = attempt.number();
            attempt.finish(Some(failure.class));
            if let Some(hint) = failure.retry_after {
                // Every request (and, through the state layer, every replica) holds off the
                // target until the upstream said it may be called again.
                route.health.breaker.hold_for(hint);
            }
            metrics.attempt_failed(label, failure.class.as_str());
            tracing::info!(
                target = %label,
                class = failure.class.as_str(),
                status = failure.status,
                attempt = number,
                "attempt failed: {}",
                failure.message
            );
            if failure.class == FailureClass::TargetBroken {
                tracing::error!(
                    target = %label,
                    "target is broken (credentials, permission or billing): its circuit is open"
                );
            }
        }
        Ended::Cut(reason) => {
            drop(attempt);
            metrics.attempt_cut(label, reason);
        }
    }
    // After the breaker has the outcome, so that the span shows the state it left.
    if let Some((trace, number, hedge, end)) = traced {
        trace.end(route, number, hedge, end);
    }
}

/// Counts the tokens and cost of an answer (of a whole attempt, or of one call of it whose
/// answer was sent back for a correction).
pub fn record_usage(metrics: &Metrics, route: &Route, usage: &Usage) {
    let cost = route.model.price.map(|price| {
        (price.input * usage.input_tokens as f64 + price.output * usage.output_tokens as f64) / 1e6
    });
    metrics.usage(
        &route.target.label,
        route.health.series(metrics),
        (usage.input_tokens, usage.output_tokens),
        cost,
    );
    if let Some(tab) = &route.tab {
        tab.charge(metrics, cost, usage.input_tokens + usage.output_tokens);
    }
}

/// How an attempt's span ends.
fn span_end<'a>(ended: &Ended<'a>) -> SpanEnd<'a> {
    match ended {
        Ended::Answered(answered) => SpanEnd::Answered(*answered),
        Ended::Failed(failure) => SpanEnd::Failed(failure.class, failure.status),
        Ended::Cut(reason) => SpanEnd::Cut(reason),
    }
}
