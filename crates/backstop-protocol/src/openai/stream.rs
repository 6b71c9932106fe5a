//! OpenAI `chat.completion.chunk` streams: decoding upstream chunks and encoding client chunks.

use bytes::BytesMut;
use serde_json::{json, Value};

use crate::canonical::{FinishReason, StreamEvent, Usage};
use crate::json::unix_now;
use crate::sse::{write_sse, SseEvent};
use crate::{classify_error, Protocol, ProtocolError};

use super::{finish_from, finish_to, response_id, usage_from, usage_to};

/// Decoder state for one OpenAI stream.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    started: bool,
    /// Tool-call indexes whose start has been emitted.
    tools_started: Vec<u32>,
    pub(crate) terminated: bool,
    pub(crate) finished: bool,
}

impl Decoder {
    pub(crate) fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProtocolError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.terminated = true;
            return Ok(vec![StreamEvent::Done]);
        }
        let v: Value = serde_json::from_str(data)?;
        if v.get("error").is_some_and(|e| !e.is_null()) {
            let e = classify_error(Protocol::OpenAi, 200, data.as_bytes());
            return Err(ProtocolError::Upstream {
                kind: e.kind,
                message: e.message,
            });
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                model: v
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        if let Some(choice) = v.pointer("/choices/0") {
            if let Some(delta) = choice.get("delta") {
                for key in ["content", "refusal"] {
                    if let Some(t) = delta
                        .get(key)
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        out.push(StreamEvent::TextDelta { text: t.to_owned() });
                    }
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for c in calls {
                        self.tool_delta(c, &mut out)?;
                    }
                }
            }
            if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finished = true;
                out.push(StreamEvent::Finish {
                    reason: finish_from(r),
                });
            }
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            out.push(StreamEvent::Usage(usage_from(u)?));
        }
        Ok(out)
    }

    fn tool_delta(&mut self, c: &Value, out: &mut Vec<StreamEvent>) -> Result<(), ProtocolError> {
        let index = c
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| ProtocolError::Invalid("tool call delta without an index".into()))?;
        let f = c.get("function");
        if !self.tools_started.contains(&index) {
            self.tools_started.push(index);
            out.push(StreamEvent::ToolCallStart {
                index,
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("call_{index}"), str::to_owned),
                name: f
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        if let Some(a) = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            out.push(StreamEvent::ToolCallDelta {
                index,
                arguments: a.to_owned(),
            });
        }
        Ok(())
    }
}

/// Encoder state for one OpenAI client stream.
#[derive(Debug)]
pub(crate) struct Encoder {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    started: bool,
    finish_sent: bool,
    usage: Option<Usage>,
    done: bool,
}

impl Encoder {
    pub(crate) fn new(include_usage: bool) -> Self {
        Self {
            include_usage,
            id: String::new(),
            model: String::new(),
            created: unix_now(),
            started: false,
            finish_sent: false,
            usage: None,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut BytesMut) {
        let body = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        write_sse(out, None, &body.to_string());
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            if self.id.is_empty() {
                self.id = response_id("");
            }
            self.chunk(json!({"role": "assistant", "content": ""}), None, out);
        }
    }

    pub(crate) fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                if !self.started {
                    self.id = response_id(id);
                    self.model.clone_from(model);
                    self.ensure_started(out);
                }
            }
            StreamEvent::TextDelta { text } => {
                self.ensure_started(out);
                self.chunk(json!({"content": text}), None, out);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                let call = json!({"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}});
                self.chunk(json!({"tool_calls": [call]}), None, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.ensure_started(out);
                let call = json!({"index": index, "function": {"arguments": arguments}});
                self.chunk(json!({"tool_calls": [call]}), None, out);
            }
            StreamEvent::Finish { reason } => self.send_finish(reason, out),
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Done => {
                self.send_finish(&FinishReason::Stop, out);
                if self.include_usage {
                    let body = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [],
                        "usage": usage_to(&self.usage.unwrap_or_default()),
                    });
                    write_sse(out, None, &body.to_string());
                }
                write_sse(out, None, "[DONE]");
                self.done = true;
            }
        }
    }

    fn send_finish(&mut self, reason: &FinishReason, out: &mut BytesMut) {
        if !self.finish_sent {
            self.ensure_started(out);
            self.finish_sent = true;
            self.chunk(json!({}), Some(finish_to(reason)), out);
        }
    }

    pub(crate) fn encode_error(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        let body =
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
        write_sse(out, None, &body.to_string());
    }
}
