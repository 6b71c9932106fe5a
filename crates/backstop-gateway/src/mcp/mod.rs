//! MCP servers behind the gateway: `POST`, `GET` and `DELETE /mcp/NAME` proxied to the
//! server's Streamable HTTP endpoint through the engine (the server's breaker, retries of
//! read-only methods, timeouts), the `Mcp-Session-Id` and every other end-to-end header
//! passed both ways, event streams relayed as they come. When the server fails, a
//! `tools/call` gets a tool result with `isError` (the agent's model reads the failure as
//! text) and any other request a JSON-RPC error; a 4xx of the server's (an unknown session,
//! a bad request) reaches the client as it is.

mod message;
mod relay;

use crate::http::{check_client_key, read_client_body, ApiError, ErrorKind};
use crate::pipeline::Gateway;
use crate::telemetry::start_tool_call;
use crate::tools::{
    candidate, failure_text, forwarded, idempotent, Outgoing, ReplyBody, ToolAttempts, ToolFailure,
};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use backstop_core::{Exhausted, Policy, Retry, StopReason};
use backstop_protocol::Protocol;
use http::{HeaderValue, Method, StatusCode};
use message::RpcRequest;
use relay::Relay;
use serde_json::Value;
use std::sync::Arc;
use tokio::time::Instant;

/// The routes of the MCP servers.
pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/mcp/{name}", any(serve))
}

async fn serve(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    match proxy(&gateway, &name, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(mcp = %name, status = error.status.as_u16(), "{}", error.message);
            error.render(Protocol::OpenAi)
        }
    }
}

async fn proxy(gateway: &Arc<Gateway>, name: &str, request: Request) -> Result<Response, ApiError> {
    let config = gateway.config();
    let (parts, body) = request.into_parts();
    check_client_key(config.auth.as_ref(), &parts.headers)?;
    let server = config.mcp.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.mcp.keys().map(String::as_str).collect();
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "MCP server `{name}` does not exist; known MCP servers: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        )
    })?;
    if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
        return Ok((
            StatusCode::METHOD_NOT_ALLOWED,
            [(http::header::ALLOW, "GET, POST, DELETE")],
        )
            .into_response());
    }
    let body = read_client_body(&parts.headers, body, &config).await?;
    let rpc = if parts.method == Method::POST {
        match RpcRequest::parse(&body) {
            Ok(rpc) => rpc,
            Err(error) => return Ok(parse_error(&error)),
        }
    } else {
        None
    };
    let upstream = &server.upstream;
    let repeatable = match &rpc {
        Some(rpc) => rpc.repeatable(upstream.retry.post),
        None => idempotent(&parts.method),
    };
    let label = format!("mcp/{name}");
    let mut url = upstream.url.clone();
    if let Some(query) = parts.uri.query() {
        url.push('?');
        url.push_str(query);
    }
    let url = reqwest::Url::parse(&url)
        .map_err(|_| ApiError::new(ErrorKind::InvalidRequest, "the query does not make a URL"))?;
    let candidates = [candidate(gateway, &label, url, upstream, repeatable)?];
    let gateway_keys = config
        .auth
        .as_ref()
        .is_some_and(crate::config::Auth::requires_client_key);
    let outgoing = Outgoing {
        method: parts.method.clone(),
        headers: forwarded(&parts.headers, gateway_keys),
        body,
        stream: true,
    };
    let started = Instant::now();
    let deadline = crate::tools::call_deadline(gateway, upstream.timeouts.total);
    let trace = gateway
        .telemetry()
        .and_then(|telemetry| start_tool_call(telemetry, &parts.headers, &label, &parts.method));
    let attempts = ToolAttempts::new(&outgoing, deadline, gateway.metrics()).traced(trace);
    let policy = Policy {
        retry: Retry::default(),
        budget: Some(gateway.budget()),
        deadline: Some(upstream.timeouts.total),
    };
    let outcome = backstop_core::engine::run(&policy, &candidates, &attempts).await;
    gateway
        .metrics()
        .tool_call_duration(&label, started.elapsed());
    let served = match outcome {
        Ok(served) => served,
        Err(exhausted) => return Ok(failed(gateway, name, &label, rpc.as_ref(), exhausted)),
    };
    let reply = served.value;
    let body = match reply.body {
        ReplyBody::Stream(response) => {
            let relay = Relay::new(
                response,
                served.attempt,
                gateway.metrics().clone(),
                label,
                name.to_string(),
                rpc,
                upstream.max_response_bytes,
                deadline,
            );
            axum::body::Body::from_stream(relay.into_stream())
        }
        ReplyBody::Whole(bytes) => {
            served.attempt.finish(None);
            crate::tools::record_call(gateway.metrics(), &label, None);
            axum::body::Body::from(bytes)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    *response.headers_mut() = crate::tools::end_to_end(&reply.headers);
    response
        .headers_mut()
        .insert("x-backstop-attempts", HeaderValue::from(served.calls));
    Ok(response)
}

/// A POST whose body is not JSON: the JSON-RPC parse error, without a call.
fn parse_error(error: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32700, "message": format!("parse error: {error}")},
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn failed(
    gateway: &Gateway,
    name: &str,
    label: &str,
    rpc: Option<&RpcRequest>,
    exhausted: Exhausted<ToolFailure>,
) -> Response {
    if exhausted.all_open() {
        gateway
            .metrics()
            .tool_call(label, "rejected", "breaker_open");
    }
    let reason = failure_text(&exhausted);
    tracing::warn!(mcp = %name, calls = exhausted.calls, "MCP call failed: {reason}");
    let last = exhausted.attempts.last();
    if exhausted.reason == StopReason::Permanent {
        if let Some((status, headers, body)) = last.and_then(|a| a.error.answer.clone()) {
            let mut response = (status, body).into_response();
            *response.headers_mut() = crate::tools::end_to_end(&headers);
            return response;
        }
    }
    let attempts = HeaderValue::from(exhausted.calls);
    let mut response = match rpc {
        Some(rpc) => axum::Json(rpc.failure(name, &reason)).into_response(),
        None => {
            let status = if exhausted.reason == StopReason::Deadline
                || last.is_some_and(|a| a.class == backstop_core::FailureClass::Unavailable)
            {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                axum::Json(message::error(Value::Null, name, &reason)),
            )
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert("x-backstop-attempts", attempts);
    response
}
