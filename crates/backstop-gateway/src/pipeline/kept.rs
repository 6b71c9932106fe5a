//! The answer at the commit point as the tiers of [`crate::keep`] see it: the tools it calls
//! (for the guard) and the [`Keeper`] that stores it once it is complete.

use super::attempt::Answer;
use crate::keep::Keeper;
use backstop_protocol::{ContentPart, Protocol};

/// The names of the tools `answer` calls: a whole answer's, or those of a stream so far (all
/// of them when it was held whole, see [`crate::keep::tiers::holds_stream`]).
pub fn tool_calls(answer: &Answer, protocol: Protocol) -> Vec<String> {
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
pub fn attach(answer: &mut Answer, keeper: Keeper, protocol: Protocol) {
    match answer {
        Answer::Whole { body, .. } => {
            if let Ok(decoded) = backstop_protocol::decode_response(protocol, body) {
                keeper.complete(decoded);
            }
        }
        Answer::Stream(relay) => relay.keep(keeper),
    }
}
