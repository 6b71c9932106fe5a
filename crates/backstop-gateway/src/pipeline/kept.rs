//! The engine's answer at the commit point as the tiers of [`crate::keep`] see it: the tools
//! it calls (for the guard on a fallback's answer) and the [`Keeper`] that stores it once it
//! is complete.

use super::attempt::Answer;
use super::fallback_tier::static_answer;
use super::plan::Plan;
use super::request::ClientRequest;
use super::Gateway;
use crate::config::Model;
use crate::http::{ApiError, ErrorKind};
use crate::keep::tiers::Tiers;
use crate::keep::Keeper;
use axum::response::Response;
use backstop_core::Served;
use backstop_protocol::{
    ChatResponse, ContentPart, Protocol, ResponseCollector, SseDecoder, StreamDecoder,
};
use std::sync::Arc;

impl Gateway {
    /// The engine's answer, unless the guard holds it (a fallback's answer calling an
    /// irreversible tool: then the next tier answers); kept by `tiers` once complete.
    pub(super) async fn served(
        self: &Arc<Self>,
        request: &Arc<ClientRequest>,
        model: &Model,
        plan: &Plan,
        mut served: Served<Answer>,
        mut tiers: Tiers,
    ) -> Result<Response, ApiError> {
        let Some(route) = plan.route(served.served_by) else {
            return Err(ApiError::new(
                ErrorKind::Internal,
                "the answer's target is not in the plan",
            ));
        };
        if tiers.holds(route, || tool_calls(&served.value, request.protocol)) {
            let calls = served.calls;
            drop(self.commit(request, plan, route, served));
            let next = tiers.degraded(calls, || static_answer(request, model, calls));
            return next.await.map_err(|error| {
                error.unwrap_or_else(|| {
                    ApiError::new(ErrorKind::Internal, "an answer was held without a reason")
                })
            });
        }
        if let Some(keeper) = tiers.keeper(route) {
            attach(&mut served.value, keeper, request.protocol);
        }
        Ok(self.commit(request, plan, route, served))
    }
}

/// The names of the tools `answer` calls: a whole answer's, or those of a stream so far (all
/// of them when it was held whole, see [`crate::keep::tiers::holds_stream`]).
fn tool_calls(answer: &Answer, protocol: Protocol) -> Vec<String> {
    match answer {
        Answer::Whole { .. } => whole(answer, protocol)
            .map(|decoded| {
                decoded
                    .content
                    .into_iter()
                    .filter_map(|part| match part {
                        ContentPart::ToolCall { name, .. } => Some(name),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Answer::Stream(relay) => relay.tool_calls().to_vec(),
    }
}

/// A whole answer decoded from the caller's protocol: its JSON body, or the events of a
/// stream that was checked whole before it was sent.
fn whole(answer: &Answer, protocol: Protocol) -> Option<ChatResponse> {
    let Answer::Whole { body, stream, .. } = answer else {
        return None;
    };
    decode_whole(body, *stream, protocol)
}

/// `body` decoded from the caller's protocol: JSON, or a whole stream's events when `stream`.
fn decode_whole(body: &[u8], stream: bool, protocol: Protocol) -> Option<ChatResponse> {
    if !stream {
        return backstop_protocol::decode_response(protocol, body).ok();
    }
    let mut decoder = StreamDecoder::new(protocol);
    let mut collector = ResponseCollector::new();
    for event in SseDecoder::new().push(body) {
        for canonical in decoder.decode(&event).ok()? {
            collector.push(&canonical);
        }
    }
    collector.is_done().then(|| collector.finish())
}

/// Hands `answer` to `keeper`: a stream when it ends cleanly; a whole answer in a task of its
/// own, which runs once the response is on its way, so the client does not wait while the
/// answer is decoded and stored (a duplicate arriving meanwhile waits for it, as for any
/// answer in flight).
fn attach(answer: &mut Answer, keeper: Keeper, protocol: Protocol) {
    match answer {
        Answer::Whole { body, stream, .. } => {
            let (body, stream) = (body.clone(), *stream);
            tokio::spawn(async move {
                if let Some(decoded) = decode_whole(&body, stream, protocol) {
                    keeper.complete(decoded);
                }
            });
        }
        Answer::Stream(relay) => relay.keep(keeper),
    }
}
