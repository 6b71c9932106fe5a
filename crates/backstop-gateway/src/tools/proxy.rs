//! `ANY /tools/NAME/{path}`: the client's call (method, headers, query, body) sent to the
//! tool's `base_url` + `/{path}`, then to its fallbacks, through the engine. Only idempotent
//! methods are retried in place, unless `retry.post = true` or the call carries an
//! `Idempotency-Key`. A final failure answers the tool's own error (`on_failure = "error"`)
//! or a 200 with a JSON body the agent can show its model (`on_failure = "text"`), at once
//! when every breaker is open.

use super::call::{record, Outgoing, Reply, ReplyBody, ToolAttempts, ToolFailure, ToolRoute};
use super::forwarded;
use crate::config::{Config, OnFailure, Tool, ToolUpstream};
use crate::http::{check_client_key, read_limited, ApiError, ErrorKind};
use crate::pipeline::Gateway;
use crate::telemetry::start_tool_call;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use backstop_core::{Backoff, Candidate, Exhausted, Policy, Retry, StopReason};
use backstop_protocol::Protocol;
use http::{HeaderValue, Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use tokio::time::Instant;

/// The routes of the tool APIs.
pub fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/tools/{name}", any(tool))
        .route("/tools/{name}/{*path}", any(tool))
}

async fn tool(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    // The path as the client wrote it, percent-encoding kept, not as the router decoded it.
    let raw = request
        .uri()
        .path()
        .strip_prefix("/tools/")
        .unwrap_or_default();
    let (name, path) = raw.split_once('/').unwrap_or((raw, ""));
    let (name, path) = (name.to_string(), path.to_string());
    serve(&gateway, &name, &path, request).await
}

async fn serve(gateway: &Arc<Gateway>, name: &str, path: &str, request: Request) -> Response {
    match call_tool(gateway, name, path, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(
                tool = name,
                status = error.status.as_u16(),
                "{}",
                error.message
            );
            error.render(Protocol::OpenAi)
        }
    }
}

async fn call_tool(
    gateway: &Arc<Gateway>,
    name: &str,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let config = gateway.config();
    let (parts, body) = request.into_parts();
    check_client_key(config.auth.as_ref(), &parts.headers)?;
    let tool = config.tools.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.tools.keys().map(String::as_str).collect();
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "tool `{name}` does not exist; known tools: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        )
    })?;
    let body = read_limited(body, config.server.max_body_size, "server.max_body_size").await?;
    let gateway_keys = config
        .auth
        .as_ref()
        .is_some_and(crate::config::Auth::requires_client_key);
    let retry_all = parts.headers.contains_key("idempotency-key");
    let outgoing = Outgoing {
        method: parts.method.clone(),
        headers: forwarded(&parts.headers, gateway_keys),
        body,
        stream: false,
    };
    let query = parts.uri.query();
    let candidates = candidates(
        gateway,
        &config,
        tool,
        path,
        query,
        &parts.method,
        retry_all,
    )?;
    let started = Instant::now();
    let deadline = super::call_deadline(gateway, tool.upstream.timeouts.total);
    let trace = gateway
        .telemetry()
        .and_then(|telemetry| start_tool_call(telemetry, &parts.headers, name, &parts.method));
    let attempts = ToolAttempts::new(&outgoing, deadline, gateway.metrics()).traced(trace.clone());
    let policy = Policy {
        retry: Retry::default(),
        budget: Some(gateway.budget()),
        deadline: Some(tool.upstream.timeouts.total),
    };
    let outcome = backstop_core::engine::run(&policy, &candidates, &attempts).await;
    gateway
        .metrics()
        .tool_call_duration(&tool.name, started.elapsed());
    let response = match outcome {
        Ok(served) => {
            let label = candidates
                .get(served.served_by)
                .map_or(tool.name.as_str(), |c| c.inner.label.as_str());
            served.attempt.finish(None);
            record(gateway.metrics(), label, None);
            tracing::info!(
                tool = %tool.name,
                served_by = %label,
                attempts = served.calls,
                status = served.value.status.as_u16(),
                latency_ms = started.elapsed().as_millis() as u64,
                "tool call"
            );
            answer(served.value, label, served.calls)
        }
        Err(exhausted) => failed(gateway, tool, exhausted),
    };
    if let Some(trace) = trace {
        trace.status(response.status().as_u16());
    }
    Ok(response)
}

/// Whether `method` may be sent twice without harm.
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// The retry rule of a call to `upstream`: its own, or a single attempt for a call that
/// must not be repeated.
pub fn retry_rule(upstream: &ToolUpstream, repeatable: bool) -> Retry {
    Retry {
        max_attempts: if repeatable || upstream.retry.post {
            upstream.retry.max_attempts
        } else {
            1
        },
        backoff: Backoff {
            base: upstream.retry.base_delay,
            max: upstream.retry.max_delay,
        },
    }
}

/// A candidate for `upstream` at `url`, labelled `label`.
pub fn candidate(
    gateway: &Gateway,
    label: &str,
    url: reqwest::Url,
    upstream: &ToolUpstream,
    repeatable: bool,
) -> Result<Candidate<ToolRoute>, ApiError> {
    let health = gateway
        .tool_health()
        .get(label, upstream, gateway.metrics())
        .map_err(|error| {
            ApiError::new(
                ErrorKind::Internal,
                format!("cannot build the client of `{label}`: {error}"),
            )
        })?;
    let mut candidate = Candidate::new(
        label,
        health.breaker.clone(),
        ToolRoute {
            label: label.to_string(),
            url,
            upstream: upstream.clone(),
            health,
        },
    );
    candidate.retry = Some(retry_rule(upstream, repeatable));
    Ok(candidate)
}

fn candidates(
    gateway: &Gateway,
    config: &Config,
    tool: &Tool,
    path: &str,
    query: Option<&str>,
    method: &Method,
    retry_all: bool,
) -> Result<Vec<Candidate<ToolRoute>>, ApiError> {
    let repeatable = retry_all || idempotent(method);
    let chain = std::iter::once(tool).chain(
        tool.fallbacks
            .iter()
            .filter_map(|name| config.tools.get(name).map(|t| &**t)),
    );
    let mut out = Vec::new();
    for tool in chain {
        let mut text = tool.upstream.url.clone();
        if !path.is_empty() {
            text.push('/');
            text.push_str(path);
        }
        if let Some(query) = query {
            text.push('?');
            text.push_str(query);
        }
        let url = reqwest::Url::parse(&text).map_err(|_| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!("`{path}` does not make a URL with tool `{}`", tool.name),
            )
        })?;
        out.push(candidate(
            gateway,
            &tool.name,
            url,
            &tool.upstream,
            repeatable,
        )?);
    }
    Ok(out)
}

/// The tool's answer as the client's response.
fn answer(reply: Reply, label: &str, calls: u32) -> Response {
    let body = match reply.body {
        ReplyBody::Whole(body) => axum::body::Body::from(body),
        ReplyBody::Stream(response) => axum::body::Body::from_stream(response.bytes_stream()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    *response.headers_mut() = super::end_to_end(&reply.headers);
    set_meta(&mut response, label, calls);
    response
}

fn set_meta(response: &mut Response, label: &str, calls: u32) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(label) {
        headers.insert("x-backstop-tool", value);
    }
    headers.insert("x-backstop-attempts", HeaderValue::from(calls));
}

/// The class and reason of a final failure, in a few words: `"transient: status 503"`,
/// `"circuit open"`.
pub fn failure_text(exhausted: &Exhausted<ToolFailure>) -> String {
    match exhausted.attempts.last() {
        Some(last) => format!("{}: {}", last.class.as_str(), last.error.reason),
        None if exhausted.all_open() => {
            "circuit open: it failed repeatedly and is not called for now".to_string()
        }
        None if exhausted.reason == StopReason::Deadline => "timeout: no time left".to_string(),
        None => "not called".to_string(),
    }
}

fn failed(gateway: &Gateway, tool: &Tool, exhausted: Exhausted<ToolFailure>) -> Response {
    if exhausted.all_open() {
        gateway
            .metrics()
            .tool_call(&tool.name, "rejected", "breaker_open");
    }
    let error = failure_text(&exhausted);
    tracing::warn!(tool = %tool.name, calls = exhausted.calls, "tool call failed: {error}");
    let retry_after = exhausted
        .retry_at
        .map(|at| at.saturating_duration_since(Instant::now()));
    let last = exhausted.attempts.last();
    let permanent = exhausted.reason == StopReason::Permanent;
    if let (true, Some(answer)) = (permanent, last.and_then(|a| a.error.answer.clone())) {
        // The request itself is wrong: the tool's own answer says what to fix.
        return tool_answer(answer, &tool.name, exhausted.calls);
    }
    match tool.on_failure {
        OnFailure::Text => {
            let message = tool
                .message
                .replace("{tool}", &tool.name)
                .replace("{error}", &error);
            let mut response = Json(json!({
                "ok": false,
                "tool": tool.name,
                "error": error,
                "message": message,
            }))
            .into_response();
            set_meta(&mut response, &tool.name, exhausted.calls);
            response
                .headers_mut()
                .insert("x-backstop-tool-failed", HeaderValue::from_static("true"));
            response
        }
        OnFailure::Error => match last.and_then(|a| a.error.answer.clone()) {
            Some(answer) => tool_answer(answer, &tool.name, exhausted.calls),
            None => {
                let kind = if exhausted.all_open() {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Upstream
                };
                let mut response =
                    ApiError::new(kind, format!("tool `{}` failed: {error}", tool.name))
                        .with_retry_after(retry_after)
                        .render(Protocol::OpenAi);
                if exhausted.reason == StopReason::Deadline
                    || last.is_some_and(|a| a.class == backstop_core::FailureClass::Unavailable)
                {
                    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                }
                set_meta(&mut response, &tool.name, exhausted.calls);
                response
            }
        },
    }
}

fn tool_answer(
    (status, headers, body): (StatusCode, http::HeaderMap, bytes::Bytes),
    label: &str,
    calls: u32,
) -> Response {
    answer(
        Reply {
            status,
            headers,
            body: ReplyBody::Whole(body),
        },
        label,
        calls,
    )
}
