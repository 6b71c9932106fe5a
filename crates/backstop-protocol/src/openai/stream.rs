//! OpenAI `chat.completion.chunk` streams: decoding upstream chunks and encoding client chunks.

use bytes::BytesMut;
use serde_json::{json, Value};

use crate::canonical::{FinishReason, StreamEvent, Usage};
use crate::error::stream_error_event;
use crate::json::unix_now;
use crate::sse::{write_sse, SseEvent};
use crate::{Protocol, ProtocolError};

use super::chunk::{Chunk, ToolCallDelta};
use super::{finish_from, finish_to, response_id, usage_to};

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
    pub(crate) fn decode(
        &mut self,
        ev: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProtocolError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.terminated = true;
            out.push(StreamEvent::Done);
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data)?;
        if chunk.error.is_some() {
            return Err(stream_error_event(Protocol::OpenAi, data));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.as_deref().unwrap_or("").to_owned(),
                model: chunk.model.as_deref().unwrap_or("").to_owned(),
            });
        }
        if let Some(choice) = &chunk.first_choice.0 {
            if let Some(delta) = &choice.delta {
                for t in [&delta.content, &delta.refusal].into_iter().flatten() {
                    if !t.is_empty() {
                        out.push(StreamEvent::TextDelta {
                            text: t.to_string(),
                        });
                    }
                }
                for c in delta.tool_calls.iter().flatten() {
                    self.tool_delta(c, out)?;
                }
            }
            if let Some(r) = &choice.finish_reason {
                self.finished = true;
                out.push(StreamEvent::Finish {
                    reason: finish_from(r),
                });
            }
        }
        if let Some(u) = &chunk.usage {
            out.push(StreamEvent::Usage(u.to_usage()));
        }
        Ok(())
    }

    fn tool_delta(
        &mut self,
        c: &ToolCallDelta<'_>,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProtocolError> {
        let index = c
            .index
            .ok_or_else(|| ProtocolError::Invalid("tool call delta without an index".into()))?;
        let f = c.function.as_ref();
        if !self.tools_started.contains(&index) {
            self.tools_started.push(index);
            out.push(StreamEvent::ToolCallStart {
                index,
                id: c
                    .id
                    .as_deref()
                    .map_or_else(crate::call_id::fresh_call_id, str::to_owned),
                name: f.and_then(|f| f.name.as_deref()).unwrap_or("").to_owned(),
            });
        }
        if let Some(a) = f
            .and_then(|f| f.arguments.as_deref())
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
