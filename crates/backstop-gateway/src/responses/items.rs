//! The output items of a Responses stream as the client saw them, so that a continuation
//! spliced into a relayed upstream stream (a broken native stream rescued on another target)
//! goes on with the items the client already has: the gateway's encoder, which takes over,
//! numbers and names its items its own way, while the client's SDK checks that an item keeps
//! the `output_index` and `id` it was added with. Events of the continuation that go on an
//! item the client has are moved onto it; new items take the next free index; and the final
//! `response` lists every item the client was given. A stream that needs none of this (every
//! translated or unbroken one) passes unchanged.

use serde_json::Value;
use std::collections::BTreeMap;

/// One output item the client was told of.
#[derive(Debug)]
struct Seen {
    /// The item as `response.output_item.added` gave it.
    added: Value,
    /// The item as `response.output_item.done` gave it, once done.
    done: Option<Value>,
}

impl Seen {
    fn id(&self) -> Option<&str> {
        self.added.get("id").and_then(Value::as_str)
    }

    fn kind(&self) -> Option<&str> {
        self.added.get("type").and_then(Value::as_str)
    }
}

/// The items of one client stream.
#[derive(Debug, Default)]
pub struct Items {
    /// By the client's output index.
    seen: BTreeMap<u64, Seen>,
    /// The output index of a continuation's item -> the client's.
    moved: Vec<(u64, u64)>,
}

impl Items {
    /// Fits one event of type `kind` to the items the client has; whether it changed.
    pub fn fit(&mut self, kind: &str, body: &mut Value) -> bool {
        let Some(index) = body.get("output_index").and_then(Value::as_u64) else {
            return self.fit_response(kind, body);
        };
        if kind == "response.output_item.added" {
            return self.added(index, body);
        }
        let client = match self.moved_to(index) {
            Some(client) => client,
            None if self.is_known(index, body) => index,
            None => match self.open_item_for(kind, body) {
                Some(client) => {
                    self.moved.push((index, client));
                    client
                }
                None => return false,
            },
        };
        let renamed = self.rename(client, body);
        let changed = renamed || client != index;
        body["output_index"] = client.into();
        if kind == "response.output_item.done" {
            if let Some(seen) = self.seen.get_mut(&client) {
                seen.done = body.get("item").cloned();
            }
        }
        changed
    }

    fn moved_to(&self, index: u64) -> Option<u64> {
        self.moved
            .iter()
            .find(|(from, _)| *from == index)
            .map(|(_, to)| *to)
    }

    /// A new item: at its own index while that is free and nothing was moved, else at the
    /// next free one.
    fn added(&mut self, index: u64, body: &mut Value) -> bool {
        let item = body.get("item").cloned().unwrap_or(Value::Null);
        if self.moved.is_empty() && !self.seen.contains_key(&index) {
            self.seen.insert(
                index,
                Seen {
                    added: item,
                    done: None,
                },
            );
            return false;
        }
        let client = self.seen.keys().next_back().map_or(0, |last| last + 1);
        self.moved.push((index, client));
        self.seen.insert(
            client,
            Seen {
                added: item,
                done: None,
            },
        );
        body["output_index"] = client.into();
        true
    }

    /// Whether the event names an item the client has at `index` (by its id, when it
    /// gives one).
    fn is_known(&self, index: u64, body: &Value) -> bool {
        let Some(seen) = self.seen.get(&index) else {
            return false;
        };
        let named = body
            .get("item_id")
            .or_else(|| body.pointer("/item/id"))
            .and_then(Value::as_str);
        named.is_none() || named == seen.id()
    }

    /// The client's last unfinished item of the type the event belongs to: the one a
    /// continuation goes on with.
    fn open_item_for(&self, kind: &str, body: &Value) -> Option<u64> {
        let wanted = match kind {
            "response.output_item.done" => body.pointer("/item/type").and_then(Value::as_str)?,
            k if k.starts_with("response.function_call_arguments.") => "function_call",
            k if k.starts_with("response.output_text.")
                || k.starts_with("response.content_part.")
                || k.starts_with("response.refusal.") =>
            {
                "message"
            }
            _ => return None,
        };
        self.seen
            .iter()
            .rev()
            .find(|(_, seen)| seen.done.is_none() && seen.kind() == Some(wanted))
            .map(|(index, _)| *index)
    }

    /// Gives the event the id of the client's item at `client`; whether that changed it.
    fn rename(&self, client: u64, body: &mut Value) -> bool {
        let Some(id) = self.seen.get(&client).and_then(Seen::id) else {
            return false;
        };
        let mut changed = false;
        for path in ["/item_id", "/item/id"] {
            if let Some(slot) = body
                .pointer_mut(path)
                .filter(|slot| slot.as_str() != Some(id))
            {
                *slot = id.into();
                changed = true;
            }
        }
        changed
    }

    /// After a continuation was fitted, and in the `response.failed` the gateway writes when a
    /// stream cannot be finished: the whole `response` lists the items the client was given, in
    /// its order (an item left unfinished by the broken stream as `incomplete`).
    fn fit_response(&self, kind: &str, body: &mut Value) -> bool {
        let failed = kind == "response.failed" && !self.seen.is_empty();
        if self.moved.is_empty() && !failed {
            return false;
        }
        let Some(output) = body.pointer_mut("/response/output") else {
            return false;
        };
        let items = self.seen.values().map(|seen| match &seen.done {
            Some(done) => done.clone(),
            None => {
                let mut item = seen.added.clone();
                item["status"] = "incomplete".into();
                item
            }
        });
        *output = Value::Array(items.collect());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fit(items: &mut Items, body: Value) -> Value {
        let mut body = body;
        let kind = body["type"].as_str().unwrap().to_owned();
        items.fit(&kind, &mut body);
        body
    }

    #[test]
    fn an_unbroken_stream_is_left_as_it_is() {
        let mut items = Items::default();
        for body in [
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1"}}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1"}}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_1"}}),
            json!({"type": "response.output_text.delta", "output_index": 1, "item_id": "msg_1", "content_index": 0, "delta": "a"}),
            json!({"type": "response.completed", "response": {"output": [{"id": "rs_1"}, {"id": "msg_1"}]}}),
        ] {
            let mut fitted = body.clone();
            let kind = body["type"].as_str().unwrap();
            assert!(!items.fit(kind, &mut fitted));
            assert_eq!(fitted, body);
        }
    }

    #[test]
    fn a_continuation_goes_on_with_the_clients_items() {
        let mut items = Items::default();
        fit(
            &mut items,
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1"}}),
        );
        fit(
            &mut items,
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        );
        fit(
            &mut items,
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_up", "content": []}}),
        );
        // The stream broke; the gateway's encoder continues with its own item at index 0.
        let delta = fit(
            &mut items,
            json!({"type": "response.output_text.delta", "output_index": 0, "item_id": "msg_gw_0", "delta": "b"}),
        );
        assert_eq!(delta["output_index"], 1);
        assert_eq!(delta["item_id"], "msg_up");
        let done = fit(
            &mut items,
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "id": "msg_gw_0", "content": [{"text": "ab"}]}}),
        );
        assert_eq!(done["output_index"], 1);
        assert_eq!(done["item"]["id"], "msg_up");
        let call = fit(
            &mut items,
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "id": "fc_gw_1"}}),
        );
        assert_eq!(call["output_index"], 2);
        let arguments = fit(
            &mut items,
            json!({"type": "response.function_call_arguments.delta", "output_index": 1, "item_id": "fc_gw_1", "delta": "{}"}),
        );
        assert_eq!(arguments["output_index"], 2);
        assert_eq!(arguments["item_id"], "fc_gw_1");
        let completed = fit(
            &mut items,
            json!({"type": "response.completed", "response": {"output": [{"id": "msg_gw_0"}]}}),
        );
        let output = completed["response"]["output"].as_array().unwrap();
        let ids: Vec<&str> = output.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["rs_1", "msg_up", "fc_gw_1"]);
        assert_eq!(output[1]["content"][0]["text"], "ab");
        assert_eq!(output[2]["status"], "incomplete");
    }
}
