//! The spans of a call to a tool API or an MCP server: the call's own span (a child of the
//! client's `traceparent`) and one child per attempt, whose context goes to the tool as its
//! `traceparent`. Like a model call's spans, they carry no header, body or credential.

use super::{RequestTrace, Telemetry};
use backstop_core::FailureClass;
use opentelemetry::trace::{Span as _, Status};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Span;
use std::sync::Arc;

/// Starts the span of a client's call to tool `name` (`None` when sampling leaves it out).
pub fn start_tool_call(
    telemetry: &Arc<Telemetry>,
    headers: &http::HeaderMap,
    name: &str,
    method: &http::Method,
) -> Option<Arc<RequestTrace>> {
    RequestTrace::begin(telemetry, headers, || {
        (
            format!("tool {name}"),
            vec![
                KeyValue::new("backstop.tool", name.to_string()),
                KeyValue::new("http.request.method", method.to_string()),
            ],
        )
    })
}

/// The span of one attempt of a tool call; ended as `cancelled` if dropped unended.
pub struct ToolAttemptSpan(Option<Span>);

/// Starts the span of attempt `number` to `label` under `trace`, with the headers that carry
/// it to the tool.
pub fn tool_attempt(
    trace: &RequestTrace,
    label: &str,
    number: u32,
) -> (ToolAttemptSpan, http::HeaderMap) {
    let (span, headers) = trace.child(
        format!("call {label}"),
        vec![
            KeyValue::new("backstop.tool", label.to_string()),
            KeyValue::new("backstop.attempt", i64::from(number)),
        ],
    );
    (ToolAttemptSpan(span), headers)
}

impl ToolAttemptSpan {
    /// Ends the span: the tool answered with `status`, or failed with `class` (and the
    /// status it answered, if any).
    pub fn end(mut self, status: Option<u16>, failure: Option<FailureClass>) {
        let Some(mut span) = self.0.take() else {
            return;
        };
        if let Some(status) = status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        match failure {
            None => {
                span.set_attribute(KeyValue::new("backstop.outcome", "answered"));
                span.set_status(Status::Ok);
            }
            Some(class) => {
                span.set_attribute(KeyValue::new("backstop.outcome", "failed"));
                span.set_attribute(KeyValue::new("backstop.failure_class", class.as_str()));
                span.set_attribute(KeyValue::new("error.type", class.as_str()));
                span.set_status(Status::error(class.as_str()));
            }
        }
        span.end();
    }
}

impl Drop for ToolAttemptSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.0.take() {
            span.set_attribute(KeyValue::new("backstop.outcome", "cancelled"));
            span.end();
        }
    }
}
