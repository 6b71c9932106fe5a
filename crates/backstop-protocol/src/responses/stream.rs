//! Canonical stream events -> the Responses API's typed stream events.
//!
//! Every event carries its `type` (also as the SSE event name) and a `sequence_number` counting
//! from 0 over the whole stream, as OpenAI sends them. The stream opens with `response.created`
//! and `response.in_progress`; text streams into a `message` item (`response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`...), each tool call into a
//! `function_call` item (`response.function_call_arguments.delta`); items are closed with their
//! `.done` events in order, and the stream ends with `response.completed` (or
//! `response.incomplete`) carrying the whole response. An error ends it with `error` then
//! `response.failed`.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::response::{call_item, item_id, message_item, output_text, response_object, status_of};
use crate::canonical::{FinishReason, StreamEvent, Usage};
use crate::json::unix_now;
use crate::sse::write_sse;

/// A text item still streaming.
#[derive(Debug)]
struct OpenText {
    output_index: usize,
    id: String,
    text: String,
}

/// A function call item still streaming.
#[derive(Debug)]
struct OpenCall {
    index: u32,
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Writes canonical events as Responses API SSE events.
#[derive(Debug)]
pub(crate) struct Encoder {
    sequence: u64,
    id: String,
    model: String,
    created_at: u64,
    started: bool,
    /// Finished items by output index.
    output: Vec<Value>,
    text: Option<OpenText>,
    calls: Vec<OpenCall>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            sequence: 0,
            id: String::new(),
            model: String::new(),
            created_at: unix_now(),
            started: false,
            output: Vec::new(),
            text: None,
            calls: Vec::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }
}

impl Encoder {
    fn emit(&mut self, kind: &str, mut body: Value, out: &mut BytesMut) {
        body["type"] = kind.into();
        body["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        write_sse(out, Some(kind), &body.to_string());
    }

    fn response(&self, status: &str, incomplete: Value, usage: Option<&Usage>) -> Value {
        response_object(
            &self.id,
            &self.model,
            self.created_at,
            status,
            incomplete,
            self.output.clone(),
            usage,
        )
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = item_id("resp", "", 0);
        }
        let response = self.response("in_progress", Value::Null, None);
        self.emit("response.created", json!({"response": response}), out);
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    /// Reserves the next output index.
    fn next_index(&mut self) -> usize {
        self.output.push(Value::Null);
        self.output.len() - 1
    }

    fn close_text(&mut self, out: &mut BytesMut) {
        let Some(open) = self.text.take() else {
            return;
        };
        let at = json!({"item_id": open.id, "output_index": open.output_index, "content_index": 0});
        let mut done = at.clone();
        done["text"] = open.text.as_str().into();
        done["logprobs"] = json!([]);
        self.emit("response.output_text.done", done, out);
        let mut part = at;
        part["part"] = output_text(&open.text);
        self.emit("response.content_part.done", part, out);
        let item = message_item(&open.id, &open.text, "completed");
        self.output[open.output_index] = item.clone();
        self.emit(
            "response.output_item.done",
            json!({"output_index": open.output_index, "item": item}),
            out,
        );
    }

    fn close_calls(&mut self, out: &mut BytesMut) {
        for call in std::mem::take(&mut self.calls) {
            self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": call.id, "output_index": call.output_index, "name": call.name,
                    "arguments": call.arguments}),
                out,
            );
            let item = call_item(
                &call.id,
                &call.call_id,
                &call.name,
                &call.arguments,
                "completed",
            );
            self.output[call.output_index] = item.clone();
            self.emit(
                "response.output_item.done",
                json!({"output_index": call.output_index, "item": item}),
                out,
            );
        }
    }

    fn text_delta(&mut self, text: &str, out: &mut BytesMut) {
        self.close_calls(out);
        if self.text.is_none() {
            let output_index = self.next_index();
            let id = item_id("msg", &self.id, output_index);
            self.emit(
                "response.output_item.added",
                json!({"output_index": output_index, "item": message_item(&id, "", "in_progress")}),
                out,
            );
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                    "part": output_text("")}),
                out,
            );
            self.text = Some(OpenText {
                output_index,
                id,
                text: String::new(),
            });
        }
        if let Some(open) = &mut self.text {
            open.text.push_str(text);
            let body = json!({"item_id": open.id, "output_index": open.output_index,
                "content_index": 0, "delta": text, "logprobs": []});
            self.emit("response.output_text.delta", body, out);
        }
    }

    fn call_start(&mut self, index: u32, call_id: &str, name: &str, out: &mut BytesMut) {
        self.close_text(out);
        let output_index = self.next_index();
        let id = item_id("fc", &self.id, output_index);
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index,
                "item": call_item(&id, call_id, name, "", "in_progress")}),
            out,
        );
        self.calls.push(OpenCall {
            index,
            output_index,
            id,
            call_id: call_id.to_owned(),
            name: name.to_owned(),
            arguments: String::new(),
        });
    }

    fn call_delta(&mut self, index: u32, arguments: &str, out: &mut BytesMut) {
        let Some(call) = self.calls.iter_mut().find(|c| c.index == index) else {
            return;
        };
        call.arguments.push_str(arguments);
        let body =
            json!({"item_id": call.id, "output_index": call.output_index, "delta": arguments});
        self.emit("response.function_call_arguments.delta", body, out);
    }

    fn finish(&mut self, out: &mut BytesMut) {
        self.ensure_started(out);
        self.close_text(out);
        self.close_calls(out);
        self.output.retain(|item| !item.is_null());
        let (status, incomplete) = status_of(self.finish.as_ref().unwrap_or(&FinishReason::Stop));
        let usage = self.usage.unwrap_or_default();
        let response = self.response(status, incomplete, Some(&usage));
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(kind, json!({"response": response}), out);
        self.done = true;
    }

    pub(crate) fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                if !self.started {
                    self.id = item_id("resp", id, 0);
                    self.model.clone_from(model);
                    self.ensure_started(out);
                }
            }
            StreamEvent::TextDelta { text } => {
                self.ensure_started(out);
                self.text_delta(text, out);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                self.call_start(*index, id, name, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.ensure_started(out);
                self.call_delta(*index, arguments, out);
            }
            StreamEvent::Finish { reason } => self.finish = Some(reason.clone()),
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Done => self.finish(out),
        }
    }

    pub(crate) fn encode_error(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.ensure_started(out);
        self.done = true;
        self.emit(
            "error",
            json!({"code": kind, "message": message, "param": null}),
            out,
        );
        self.output.retain(|item| !item.is_null());
        let mut response = self.response("failed", Value::Null, self.usage.as_ref());
        response["error"] = json!({"code": "server_error", "message": message});
        self.emit("response.failed", json!({"response": response}), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SseDecoder;

    fn events(input: &[StreamEvent]) -> Vec<Value> {
        let mut enc = Encoder::default();
        let mut out = BytesMut::new();
        for ev in input {
            enc.encode(ev, &mut out);
        }
        let mut dec = SseDecoder::new();
        dec.push(&out)
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                assert_eq!(e.event.as_deref(), v["type"].as_str());
                v
            })
            .collect()
    }

    #[test]
    fn text_then_call_stream_as_typed_events_in_sequence() {
        let evs = events(&[
            StreamEvent::Start {
                id: "x".into(),
                model: "m".into(),
            },
            StreamEvent::TextDelta { text: "Hel".into() },
            StreamEvent::TextDelta { text: "lo".into() },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            },
            StreamEvent::Usage(Usage {
                input_tokens: 2,
                output_tokens: 3,
                ..Usage::default()
            }),
            StreamEvent::Done,
        ]);
        let kinds: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
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
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (n, e) in evs.iter().enumerate() {
            assert_eq!(e["sequence_number"], n as u64);
        }
        let done = &evs[13]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["call_id"], "call_1");
        assert_eq!(done["output"][1]["arguments"], "{}");
        assert_eq!(done["usage"]["total_tokens"], 5);
        assert_eq!(evs[6]["text"], "Hello");
    }

    #[test]
    fn an_error_ends_the_stream_with_error_and_failed() {
        let mut enc = Encoder::default();
        let mut out = BytesMut::new();
        enc.encode(&StreamEvent::TextDelta { text: "a".into() }, &mut out);
        enc.encode_error("api_error", "upstream broke", &mut out);
        enc.encode(&StreamEvent::Done, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("event: error\n"), "{text}");
        assert!(text.contains("upstream broke"));
        assert!(text.contains("event: response.failed"));
        assert!(!text.contains("response.completed"));
    }
}
