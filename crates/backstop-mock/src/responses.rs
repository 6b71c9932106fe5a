//! The OpenAI Responses API (`POST /v1/responses`): `response` bodies and the typed stream
//! events (`response.created` ... `response.completed`, each with its `sequence_number`), as
//! the official SDKs parse them.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::ask::{estimate, text_chars, Ask};
use crate::errors;
use crate::fault::Route;
use crate::reply::{Content, Finish, Reply};
use crate::stream::Events;

/// `POST /v1/responses`: `input` a string or items, function tools in the flat shape.
pub(crate) fn ask(body: &Value) -> Result<Ask, String> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err("model: Input should be a valid string".to_owned()),
        None => return Err("Missing required parameter: 'model'.".to_owned()),
    };
    let items = match body.get("input") {
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err("input: Input should be a valid string or list".to_owned()),
        None => Vec::new(),
    };
    let answers_a_call = items
        .last()
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    let tools_off = body.get("tool_choice").and_then(Value::as_str) == Some("none");
    let function = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|tools| {
            tools
                .iter()
                .find(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        });
    let tool = function
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .filter(|_| !answers_a_call && !tools_off)
        .map(str::to_owned);
    let chars = body.get("instructions").map_or(0, text_chars)
        + items
            .iter()
            .map(|item| {
                item.get("content").map_or(0, text_chars) + item.get("output").map_or(0, text_chars)
            })
            .sum::<usize>();
    Ok(Ask {
        model,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: true,
        max_tokens: body.get("max_output_tokens").and_then(Value::as_u64),
        prefill: None,
        tool,
        tool_schema: function.and_then(|t| t.get("parameters")).cloned(),
        format: match body.pointer("/text/format/type").and_then(Value::as_str) {
            Some("json_schema") => body.pointer("/text/format/schema").cloned(),
            Some("json_object") => Some(serde_json::json!({"type": "object"})),
            _ => None,
        },
        input_tokens: estimate(chars),
    })
}

fn id(reply: &Reply) -> String {
    format!("resp_mock{:016x}", reply.serial)
}

fn item_id(reply: &Reply) -> String {
    match reply.content {
        Content::Text { .. } => format!("msg_mock{:016x}", reply.serial),
        Content::Tool { .. } => format!("fc_mock{:016x}", reply.serial),
    }
}

fn usage(reply: &Reply) -> Value {
    let output = reply.output_tokens();
    json!({
        "input_tokens": reply.input_tokens,
        "input_tokens_details": { "cached_tokens": 0, "cache_write_tokens": 0 },
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": reply.input_tokens + output,
    })
}

fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

/// The reply's one output item, `in_progress` (empty) or whole.
fn item(reply: &Reply, whole: bool) -> Value {
    let status = if whole { "completed" } else { "in_progress" };
    match &reply.content {
        Content::Text { .. } => {
            let content = if whole {
                json!([output_text(&reply.text())])
            } else {
                json!([])
            };
            json!({ "id": item_id(reply), "type": "message", "status": status, "role": "assistant",
                    "content": content })
        }
        Content::Tool {
            name, arguments, ..
        } => json!({
            "id": item_id(reply), "type": "function_call", "status": status,
            "call_id": format!("call_mock{:015x}", reply.serial), "name": name,
            "arguments": if whole { arguments.as_str() } else { "" },
        }),
    }
}

/// The `response` object: `in_progress` with no output, or finished.
fn response(reply: &Reply, whole: bool) -> Value {
    let cut = matches!(
        reply.content,
        Content::Text {
            finish: Finish::Length,
            ..
        }
    );
    let (status, incomplete) = match (whole, cut) {
        (false, _) => ("in_progress", Value::Null),
        (true, false) => ("completed", Value::Null),
        (true, true) => ("incomplete", json!({ "reason": "max_output_tokens" })),
    };
    json!({
        "id": id(reply), "object": "response", "created_at": reply.created,
        "status": status, "background": false, "error": null, "incomplete_details": incomplete,
        "instructions": null, "max_output_tokens": null, "model": reply.model,
        "output": if whole { json!([item(reply, true)]) } else { json!([]) },
        "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null }, "service_tier": "default",
        "store": true, "temperature": 1.0, "text": { "format": { "type": "text" } },
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": if whole { usage(reply) } else { Value::Null }, "user": null, "metadata": {},
    })
}

/// The non-streaming `response` body.
pub(crate) fn body(reply: &Reply) -> Vec<u8> {
    serde_json::to_vec(&response(reply, true)).unwrap_or_default()
}

/// One typed event: its `type` as the SSE event name, and its place in the stream.
fn event(kind: &str, sequence: usize, mut data: Value) -> Bytes {
    data["type"] = kind.into();
    data["sequence_number"] = sequence.into();
    let mut frame = format!("event: {kind}\ndata: ").into_bytes();
    frame.extend(serde_json::to_vec(&data).unwrap_or_default());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The typed events of a streamed reply; `response.completed` (or `response.incomplete`) is
/// its last, kept apart as the terminator so that the `no_done` fault can drop it.
pub(crate) fn events(reply: &Reply) -> Events {
    let item_id = item_id(reply);
    let mut kinds: Vec<(&str, Value)> = vec![
        (
            "response.created",
            json!({ "response": response(reply, false) }),
        ),
        (
            "response.in_progress",
            json!({ "response": response(reply, false) }),
        ),
        (
            "response.output_item.added",
            json!({ "output_index": 0, "item": item(reply, false) }),
        ),
    ];
    let at = json!({ "item_id": item_id, "output_index": 0 });
    let with = |mut base: Value, extra: Value| {
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        base
    };
    match &reply.content {
        Content::Text { chunks, .. } => {
            let part = json!({ "content_index": 0 });
            let at = with(at, part);
            kinds.push((
                "response.content_part.added",
                with(at.clone(), json!({ "part": output_text("") })),
            ));
            for chunk in chunks {
                kinds.push((
                    "response.output_text.delta",
                    with(at.clone(), json!({ "delta": chunk, "logprobs": [] })),
                ));
            }
            let text = reply.text();
            kinds.push((
                "response.output_text.done",
                with(at.clone(), json!({ "text": text, "logprobs": [] })),
            ));
            kinds.push((
                "response.content_part.done",
                with(at, json!({ "part": output_text(&text) })),
            ));
        }
        Content::Tool {
            name,
            arguments,
            pieces,
        } => {
            for piece in pieces {
                kinds.push((
                    "response.function_call_arguments.delta",
                    with(at.clone(), json!({ "delta": piece })),
                ));
            }
            kinds.push((
                "response.function_call_arguments.done",
                with(at, json!({ "name": name, "arguments": arguments })),
            ));
        }
    }
    kinds.push((
        "response.output_item.done",
        json!({ "output_index": 0, "item": item(reply, true) }),
    ));
    let events: Vec<Bytes> = kinds
        .into_iter()
        .enumerate()
        .map(|(n, (kind, data))| event(kind, n, data))
        .collect();
    let whole = response(reply, true);
    let last = if whole["status"] == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    Events {
        terminator: Some(event(last, events.len(), json!({ "response": whole }))),
        events,
    }
}

/// A delta event whose JSON is cut off mid-object.
pub(crate) fn malformed() -> Bytes {
    Bytes::from_static(
        b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\n\n",
    )
}

/// The `error` event the Responses API sends when a stream fails after its 200.
pub(crate) fn error_event(first: bool) -> Bytes {
    let error = errors::stream_error(Route::Openai);
    let sequence = if first { 0 } else { 1 };
    event(
        "error",
        sequence,
        json!({ "code": "server_error", "message": error["error"]["message"], "param": null }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Content;

    fn reply(content: Content) -> Reply {
        Reply {
            serial: 7,
            model: "gpt-4.1".into(),
            content,
            input_tokens: 5,
            created: 1,
        }
    }

    fn parsed(frame: &Bytes) -> (String, Value) {
        let text = String::from_utf8(frame.to_vec()).unwrap();
        let (head, data) = text.split_once("\ndata: ").unwrap();
        let kind = head.trim_start_matches("event: ").to_owned();
        (kind, serde_json::from_str(data.trim_end()).unwrap())
    }

    #[test]
    fn a_text_stream_is_typed_numbered_and_ends_with_the_whole_response() {
        let text = reply(Content::Text {
            chunks: vec!["Hel".into(), "lo".into()],
            finish: Finish::Stop,
        });
        let events = events(&text);
        let mut all: Vec<(String, Value)> = events.events.iter().map(parsed).collect();
        all.push(parsed(events.terminator.as_ref().unwrap()));
        let kinds: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (n, (kind, data)) in all.iter().enumerate() {
            assert_eq!(data["sequence_number"], n as u64);
            assert_eq!(data["type"], kind.as_str());
        }
        let done = &all[9].1["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["input_tokens"], 5);
        assert_eq!(done["usage"]["output_tokens"], 2);
        assert_eq!(done["usage"]["total_tokens"], 7);
    }

    #[test]
    fn a_tool_call_streams_its_arguments() {
        let call = reply(Content::Tool {
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
            pieces: vec!["{\"city\":".into(), "\"Paris\"}".into()],
        });
        let body: Value = serde_json::from_slice(&body(&call)).unwrap();
        assert_eq!(body["output"][0]["type"], "function_call");
        assert_eq!(body["output"][0]["arguments"], "{\"city\":\"Paris\"}");
        let kinds: Vec<String> = events(&call).events.iter().map(|e| parsed(e).0).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "response.function_call_arguments.delta")
                .count(),
            2
        );
    }

    #[test]
    fn the_request_is_read_from_input_items_and_flat_tools() {
        let ask = ask(&json!({"model": "m", "input": "hello there", "stream": true,
            "max_output_tokens": 9, "tools": [{"type": "function", "name": "f", "parameters": {}}]}))
        .unwrap();
        assert!(ask.stream);
        assert_eq!(ask.max_tokens, Some(9));
        assert_eq!(ask.tool.as_deref(), Some("f"));
        let answered = super::ask(&json!({"model": "m", "input": [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "sunny"}],
            "tools": [{"type": "function", "name": "f"}]}))
        .unwrap();
        assert_eq!(answered.tool, None);
        assert!(super::ask(&json!({"input": "x"})).is_err());
    }
}
