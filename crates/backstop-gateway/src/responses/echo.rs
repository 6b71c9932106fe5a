//! A Responses request before and after the engine: `previous_response_id` expanded into the
//! conversation it continues (so any target can serve the next turn), and the answer finished
//! as OpenAI would return it: the gateway's own response id and the request's settings echoed.

use super::store::{ResponseStore, Stored};
use crate::http::{ApiError, ErrorKind};
use backstop_state::StateError;
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Request fields a `response` object echoes.
const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
];

/// What the gateway keeps of a request to finish and store its answer.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// The gateway's id for the answer.
    pub id: String,
    /// The request's echoed fields, as it sent them.
    fields: Map<String, Value>,
    /// Whether to keep the answer (`store`, true unless the client said false).
    pub store: bool,
    /// The conversation the answer continues: earlier turns, then this request's input.
    conversation: Vec<Value>,
}

/// Why a request cannot be prepared.
#[derive(Debug)]
pub enum Refused {
    /// Its `previous_response_id` names no stored answer of its key (400).
    Invalid(ApiError),
    /// The store did not answer.
    Store(StateError),
}

/// The request body with `input` holding the whole conversation when `previous_response_id`
/// names a stored answer of `owner`, and what to echo. A body that is not a JSON object is
/// returned as it is, for validation to refuse.
pub async fn prepare(
    body: Bytes,
    store: &ResponseStore,
    owner: &str,
) -> Result<(Bytes, Echo), Refused> {
    let id = format!("resp_{}", crate::http::random_uuid().simple());
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) else {
        return Ok((
            body,
            Echo {
                id,
                ..Echo::default()
            },
        ));
    };
    let fields: Map<String, Value> = ECHOED
        .iter()
        .filter_map(|k| {
            request
                .get(*k)
                .filter(|v| !v.is_null())
                .map(|v| ((*k).to_owned(), v.clone()))
        })
        .collect();
    let mut conversation = match request.get("input") {
        Some(Value::String(text)) => {
            vec![json!({"type": "message", "role": "user", "content": text})]
        }
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let previous = match request.get("previous_response_id") {
        Some(Value::String(previous)) => Some(previous.clone()),
        _ => None,
    };
    let mut rewritten = false;
    if let Some(previous) = previous {
        let Some(stored) = store.get(&previous, owner).await.map_err(Refused::Store)? else {
            let mut error = ApiError::new(
                ErrorKind::InvalidRequest,
                format!("previous_response_id: no stored response with id `{previous}` (it may have expired, been deleted, or been created with `store: false` or another key)"),
            );
            error.param = Some("previous_response_id".into());
            return Err(Refused::Invalid(error));
        };
        let mut whole = stored.conversation;
        whole.append(&mut conversation);
        conversation = whole;
        request.insert("input".into(), Value::Array(conversation.clone()));
        // The id is the gateway's: an upstream that speaks the Responses API natively has
        // never seen it, and gets the whole conversation instead.
        request.remove("previous_response_id");
        rewritten = true;
    }
    let store = !matches!(request.get("store"), Some(Value::Bool(false)));
    let body = if rewritten {
        Bytes::from(Value::Object(request).to_string())
    } else {
        body
    };
    Ok((
        body,
        Echo {
            id,
            fields,
            store,
            conversation,
        },
    ))
}

impl Echo {
    /// Gives an answer's `response` object the gateway's id and the request's settings.
    pub fn finish(&self, response: &mut Value) {
        let Some(object) = response.as_object_mut() else {
            return;
        };
        object.insert("id".into(), self.id.clone().into());
        for (key, value) in &self.fields {
            object.insert(key.clone(), value.clone());
        }
        object.insert("store".into(), self.store.into());
    }

    /// The record to keep for a finished `response` of `owner`, when the client asked to
    /// store it and it did not fail.
    pub fn record(&self, owner: &str, response: &Value) -> Option<Stored> {
        let status = response.get("status").and_then(Value::as_str);
        if !self.store || !matches!(status, Some("completed" | "incomplete")) {
            return None;
        }
        let mut conversation = self.conversation.clone();
        if let Some(Value::Array(items)) = response.get("output") {
            conversation.extend(items.iter().cloned());
        }
        Some(Stored {
            owner: owner.to_owned(),
            response: response.clone(),
            conversation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::{Limits, MemoryStore};
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn memory() -> (Arc<MemoryStore>, ResponseStore) {
        let memory = Arc::new(MemoryStore::default());
        (memory.clone(), ResponseStore::Memory(memory))
    }

    #[tokio::test]
    async fn a_follow_up_carries_the_stored_conversation() {
        let (memory, store) = memory();
        let (_, first) = prepare(
            Bytes::from(r#"{"model":"m","input":"hi","metadata":{"a":"b"}}"#),
            &store,
            "k",
        )
        .await
        .unwrap();
        let mut answer = json!({"status": "completed", "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}]});
        first.finish(&mut answer);
        assert_eq!(answer["id"], first.id);
        assert_eq!(answer["metadata"]["a"], "b");
        let limits = Limits {
            ttl: Duration::from_secs(60),
            max_bytes: 10_000,
        };
        memory.put(&first.id, first.record("k", &answer).unwrap(), limits);

        let next = format!(
            r#"{{"model":"m","input":"again","previous_response_id":"{}"}}"#,
            first.id
        );
        let (body, _) = prepare(Bytes::from(next.clone()), &store, "k")
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 3);
        assert_eq!(input[0]["content"], "hi");
        assert_eq!(input[1]["content"][0]["text"], "hello");
        assert_eq!(input[2]["content"], "again");
        assert!(body.get("previous_response_id").is_none(), "{body}");

        let other_key = prepare(Bytes::from(next), &store, "other").await;
        let Err(Refused::Invalid(other_key)) = other_key else {
            panic!("another key's follow-up is refused: {other_key:?}");
        };
        assert_eq!(other_key.param.as_deref(), Some("previous_response_id"));
    }

    #[tokio::test]
    async fn store_false_and_failed_answers_are_not_kept() {
        let (_, store) = memory();
        let (_, echo) = prepare(
            Bytes::from(r#"{"model":"m","input":"x","store":false}"#),
            &store,
            "",
        )
        .await
        .unwrap();
        assert!(echo.record("", &json!({"status": "completed"})).is_none());
        let (_, echo) = prepare(Bytes::from(r#"{"model":"m","input":"x"}"#), &store, "")
            .await
            .unwrap();
        assert!(echo.record("", &json!({"status": "failed"})).is_none());
        assert!(echo.record("", &json!({"status": "completed"})).is_some());
    }
}
