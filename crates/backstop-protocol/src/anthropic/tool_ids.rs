//! Tool-use ids as Anthropic accepts them: unique within the request and of the pattern
//! `^[a-zA-Z0-9_-]+$`. A conversation whose earlier turns another provider served may repeat an
//! id (a provider that numbers the calls of each answer from 0) or carry one of another shape
//! (empty, or with `:` or `.`); Anthropic refuses the whole request for either. Such an id is
//! rewritten, and every tool result after it that answers it follows.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Rewrites, in encoded Anthropic `messages`, each `tool_use` id that is invalid or repeats an
/// earlier one, and the `tool_use_id` of the results that answer it. A request whose ids are
/// already unique and valid is left untouched.
pub(super) fn make_unique(messages: &mut [Value]) {
    let mut seen = HashSet::new();
    if tool_uses(messages).all(|id| valid(id) && seen.insert(id)) {
        return;
    }
    let taken: HashSet<String> = tool_uses(messages).map(str::to_owned).collect();
    let mut emitted: HashSet<String> = HashSet::new();
    // The id each original id stands for now: a result answers the latest call of its id.
    let mut current: HashMap<String, String> = HashMap::new();
    for block in blocks_mut(messages) {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let original = block
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let id = unused(&original, &taken, &emitted);
                emitted.insert(id.clone());
                block["id"] = id.clone().into();
                current.insert(original, id);
            }
            Some("tool_result") => {
                let answered = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if let Some(id) = current.get(answered) {
                    block["tool_use_id"] = id.clone().into();
                }
            }
            _ => {}
        }
    }
}

fn blocks_mut(messages: &mut [Value]) -> impl Iterator<Item = &mut Value> {
    messages
        .iter_mut()
        .filter_map(|m| m.get_mut("content").and_then(Value::as_array_mut))
        .flatten()
}

fn tool_uses(messages: &[Value]) -> impl Iterator<Item = &str> {
    messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .map(|b| b.get("id").and_then(Value::as_str).unwrap_or(""))
}

/// Whether Anthropic accepts `id`: `^[a-zA-Z0-9_-]+$`.
pub(crate) fn valid(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `original` itself when it is valid and not yet emitted; otherwise its valid form with the
/// first suffix `_2`, `_3`... that no id of the request has.
fn unused(original: &str, taken: &HashSet<String>, emitted: &HashSet<String>) -> String {
    if valid(original) && !emitted.contains(original) {
        return original.to_owned();
    }
    let base: String = match original {
        "" => "call".into(),
        _ => original
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    };
    if base != original && !taken.contains(&base) && !emitted.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|id| !taken.contains(id) && !emitted.contains(id))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> Value {
        json!({"type": "tool_use", "id": id, "name": "f", "input": {}})
    }
    fn result(id: &str) -> Value {
        json!({"type": "tool_result", "tool_use_id": id})
    }
    fn ids(messages: &[Value]) -> Vec<String> {
        blocks_of(messages, |b| {
            b.get("id").or_else(|| b.get("tool_use_id")).cloned()
        })
    }
    fn blocks_of(messages: &[Value], f: impl Fn(&Value) -> Option<Value>) -> Vec<String> {
        messages
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|b| f(&b))
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
    fn conversation(turns: &[(&[&str], &[&str])]) -> Vec<Value> {
        turns
            .iter()
            .flat_map(|(calls, results)| {
                [
                    json!({"role": "assistant", "content": calls.iter().map(|c| call(c)).collect::<Vec<_>>()}),
                    json!({"role": "user", "content": results.iter().map(|r| result(r)).collect::<Vec<_>>()}),
                ]
            })
            .collect()
    }

    #[test]
    fn unique_valid_ids_are_left_alone() {
        let mut messages = conversation(&[(&["toolu_a", "call-b"], &["toolu_a", "call-b"])]);
        let before = messages.clone();
        make_unique(&mut messages);
        assert_eq!(messages, before);
    }

    #[test]
    fn an_id_repeated_by_a_later_turn_is_renamed_with_the_results_that_answer_it() {
        let mut messages = conversation(&[
            (&["call_0", "call_1"], &["call_0", "call_1"]),
            (&["call_0"], &["call_0"]),
            (&["call_0", "call_0_2"], &["call_0_2", "call_0"]),
        ]);
        make_unique(&mut messages);
        assert_eq!(
            ids(&messages),
            [
                "call_0", "call_1", "call_0", "call_1", // first turn untouched
                "call_0_3", "call_0_3", // call_0_2 is the request's own id: skipped
                "call_0_4", "call_0_2", "call_0_2", "call_0_4",
            ]
        );
    }

    #[test]
    fn invalid_ids_get_a_valid_form() {
        let mut messages = conversation(&[(&["", "fc:1.2", "fc_1_2"], &["fc:1.2", "", "fc_1_2"])]);
        make_unique(&mut messages);
        assert_eq!(
            ids(&messages),
            ["call", "fc_1_2_2", "fc_1_2", "fc_1_2_2", "call", "fc_1_2"]
        );
        let mut seen = HashSet::new();
        assert!(tool_uses(&messages).all(|id| valid(id) && seen.insert(id)));
    }
}
