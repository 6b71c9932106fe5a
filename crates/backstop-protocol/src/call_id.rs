//! Ids for tool calls whose provider gave none (Gemini never does; some OpenAI-compatible
//! servers omit them in streams).
//!
//! A conversation carries every earlier turn's tool calls, and a later turn may be served by
//! another provider: Anthropic rejects a request whose `tool_use` ids are not unique, and a
//! caller matches tool results to calls by id. So an id made up here is unique across turns,
//! answers and gateway processes, not a position in one answer.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A new tool-call id, `call_` and 16 hex digits: a counter of this process hashed with a key
/// drawn at random when the process first needs one.
pub(crate) fn fresh_call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "call_{:016x}",
        KEY.get_or_init(RandomState::new).hash_one(n)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_do_not_repeat_and_fit_every_providers_pattern() {
        let ids: Vec<String> = (0..10_000).map(|_| fresh_call_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(ids.iter().all(|id| id.len() == 21
            && id.starts_with("call_")
            && crate::anthropic::tool_ids::valid(id)));
    }
}
