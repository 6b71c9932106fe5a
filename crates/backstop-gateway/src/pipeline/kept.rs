//! The engine's answer at the commit point as the tiers of [`crate::keep`] see it: the tools
//! it calls (for the guard on a fallback's answer) and the [`Keeper`] that stores it once it
//! is complete.

use super::attempt::Answer;
use super::fallback_tier::static_answer;
use super::plan::Route;
use super::request::ClientRequest;
use super::Gateway;
use crate::config::Model;
use crate::http::{ApiError, ErrorKind};
use crate::keep::tiers::Tiers;
use crate::keep::Keeper;
use axum::response::Response;
use backstop_core::{Candidate, Served};
use backstop_protocol::{ContentPart, Protocol};
use std::sync::Arc;

impl Gateway {
    /// The engine's answer, unless the guard holds it (a fallback's answer calling an
    /// irreversible tool: then the next tier answers); kept by `tiers` once complete.
    pub(super) async fn served(
        self: &Arc<Self>,
        request: &Arc<ClientRequest>,
        model: &Model,
        candidates: Vec<Candidate<Route>>,
        mut served: Served<Answer>,
        mut tiers: Tiers,
    ) -> Result<Response, ApiError> {
        let route = &candidates[served.served_by].inner;
        if tiers.holds(route, || tool_calls(&served.value, request.protocol)) {
            let calls = served.calls;
            drop(self.commit(request, candidates, served));
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
        Ok(self.commit(request, candidates, served))
    }
}

/// The names of the tools `answer` calls: a whole answer's, or those of a stream so far (all
/// of them when it was held whole, see [`crate::keep::tiers::holds_stream`]).
fn tool_calls(answer: &Answer, protocol: Protocol) -> Vec<String> {
    match answer {
        Answer::Whole { body, .. } => backstop_protocol::decode_response(protocol, body)
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

/// Hands `answer` to `keeper`: a whole answer now, a stream when it ends cleanly.
fn attach(answer: &mut Answer, keeper: Keeper, protocol: Protocol) {
    match answer {
        Answer::Whole { body, .. } => {
            if let Ok(decoded) = backstop_protocol::decode_response(protocol, body) {
                keeper.complete(decoded);
            }
        }
        Answer::Stream(relay) => relay.keep(keeper),
    }
}
