//! The edge every request passes first: its id (which the request's log lines carry, see
//! [`crate::log_format`]), a guard against panics and, for the two model endpoints, the route,
//! all in one service of ours.
//!
//! The request id is the client's `x-request-id` when it is sane (non-empty, at most 128
//! bytes), copied out of the connection's read buffer (see [`crate::http::detach`]), otherwise a
//! new UUID; it is set on the request for the pipeline and echoed on every response, errors and
//! panics included. A panic in a handler is a 500 in the caller's
//! protocol. `POST /v1/chat/completions`, `/chat/completions` and `/v1/messages` go straight to
//! their handler; every other request goes through the router. The work per request is one
//! boxed future (the handler's), where a `from_fn` middleware, a panic layer and the router
//! cost several.

use crate::http::{ApiError, ErrorKind, REQUEST_ID};
use crate::log_format::in_request;
use crate::pipeline::Gateway;
use crate::routes;
use axum::body::Body;
use axum::response::Response;
use axum::Router;
use backstop_protocol::Protocol;
use http::{HeaderValue, Method, Request};
use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt};

/// The longest client request id accepted.
const MAX_REQUEST_ID: usize = 128;

/// The gateway's application: the edge in front of the router.
#[derive(Clone)]
pub struct Edge {
    gateway: Arc<Gateway>,
    router: Router,
}

impl Edge {
    /// The edge for `gateway`, in front of `router`.
    pub fn new(gateway: Arc<Gateway>, router: Router) -> Self {
        Self { gateway, router }
    }

    /// The handler's future for `request`: a model endpoint's directly, any other's through
    /// the router, run as the request `id`'s.
    fn route(&self, request: Request<Body>, id: HeaderValue) -> BoxedResponse {
        let direct = (request.method() == Method::POST)
            .then(|| model_protocol(request.uri().path()))
            .flatten();
        match direct {
            Some(protocol) => {
                let gateway = self.gateway.clone();
                Box::pin(in_request(id, async move {
                    routes::model_request(&gateway, protocol, request).await
                }))
            }
            None => {
                let routed = self.router.clone().oneshot(request);
                Box::pin(in_request(id, async move {
                    match routed.await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }))
            }
        }
    }
}

type BoxedResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The protocol of a model endpoint served without the router.
fn model_protocol(path: &str) -> Option<Protocol> {
    match path {
        "/v1/chat/completions" | "/chat/completions" => Some(Protocol::OpenAi),
        "/v1/messages" => Some(Protocol::Anthropic),
        _ => None,
    }
}

/// The protocol a path's errors are written in.
fn protocol_of(path: &str) -> Protocol {
    model_protocol(path).unwrap_or(Protocol::OpenAi)
}

impl Service<Request<Body>> for Edge {
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> EdgeFuture {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|v| v.len() <= MAX_REQUEST_ID && !v.is_empty())
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            .unwrap_or_else(new_request_id);
        request.headers_mut().insert(REQUEST_ID, id.clone());
        let protocol = protocol_of(request.uri().path());
        let handler = catch_unwind(AssertUnwindSafe(|| self.route(request, id.clone())));
        EdgeFuture {
            handler: handler.ok(),
            id: Some(id),
            protocol,
        }
    }
}

/// A request's answer as the edge gives it: the handler polled, a panic turned into a 500, the
/// request id set on the response.
pub struct EdgeFuture {
    /// `None` when the handler panicked before it returned its future.
    handler: Option<BoxedResponse>,
    id: Option<HeaderValue>,
    protocol: Protocol,
}

impl Future for EdgeFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let polled = match this.handler.as_mut() {
            Some(handler) => catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))),
            None => Err(Box::new("the handler panicked before it started") as Box<dyn Any + Send>),
        };
        let mut response = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(response)) => response,
            Err(panic) => {
                this.handler = None;
                panicked(this.protocol, &*panic, this.id.as_ref())
            }
        };
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The 500 for a handler that panicked, logged with the panic's message and the request's id.
fn panicked(protocol: Protocol, panic: &(dyn Any + Send), id: Option<&HeaderValue>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    let request_id = id.and_then(|id| id.to_str().ok()).unwrap_or("-");
    tracing::error!(request_id, "a request's handler panicked: {message}");
    ApiError::new(ErrorKind::Internal, "internal error in the gateway").render(protocol)
}

/// A new request id: a random version-4 UUID.
fn new_request_id() -> HeaderValue {
    let uuid = crate::http::random_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
