//! Gemini `streamGenerateContent?alt=sse` streams: each event is a whole `GenerateContentResponse`.

use bytes::BytesMut;
use serde_json::{json, Value};

use crate::canonical::{ContentPart, FinishReason, StreamEvent, Usage};
use crate::error::stream_error_event;
use crate::sse::{write_sse, SseEvent};
use crate::{Protocol, ProtocolError};

use super::response::{content_to_parts, parts_to_content};
use super::{finish_from, finish_to, usage_from, usage_to};

/// Decoder state for one Gemini stream.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    started: bool,
    calls: u32,
    pub(crate) terminated: bool,
    pub(crate) finished: bool,
}

impl Decoder {
    pub(crate) fn decode(
        &mut self,
        ev: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProtocolError> {
        let v: Value = serde_json::from_str(&ev.data)?;
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return Err(stream_error_event(Protocol::Gemini, &ev.data));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v
                    .get("responseId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                model: v
                    .get("modelVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        let cand = v.pointer("/candidates/0");
        if let Some(parts) = cand
            .and_then(|c| c.pointer("/content/parts"))
            .and_then(Value::as_array)
        {
            let mut content = Vec::new();
            let first_call = self.calls;
            parts_to_content(parts, &mut self.calls, &mut content);
            let mut index = first_call;
            for c in content {
                match c {
                    ContentPart::Text(text) => out.push(StreamEvent::TextDelta { text }),
                    ContentPart::ToolCall {
                        id,
                        name,
                        arguments,
                    } => {
                        out.push(StreamEvent::ToolCallStart { index, id, name });
                        out.push(StreamEvent::ToolCallDelta { index, arguments });
                        index += 1;
                    }
                    ContentPart::Image(_) | ContentPart::ToolResult { .. } => {}
                }
            }
        }
        let reason = match cand
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str)
        {
            Some(r) => Some(finish_from(r, self.calls > 0)),
            None if v.pointer("/promptFeedback/blockReason").is_some() => {
                Some(FinishReason::ContentFilter)
            }
            None => None,
        };
        if let Some(u) = v.get("usageMetadata") {
            out.push(StreamEvent::Usage(usage_from(u)));
        }
        if let Some(reason) = reason {
            self.finished = true;
            self.terminated = true;
            out.push(StreamEvent::Finish { reason });
            out.push(StreamEvent::Done);
        }
        Ok(())
    }
}

/// Encoder state for a Gemini stream (used by the mock provider). Tool calls are sent whole, in
/// the final chunk, since Gemini never splits a `functionCall`.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    id: String,
    model: String,
    /// (id, name, arguments so far) per canonical tool index.
    calls: Vec<(u32, String, String, String)>,
    finish: Option<FinishReason>,
    usage: Usage,
    done: bool,
}

impl Encoder {
    fn chunk(&self, parts: Vec<Value>, finish: Option<&str>, usage: bool, out: &mut BytesMut) {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = f.into();
        }
        let mut body =
            json!({"candidates": [cand], "modelVersion": self.model, "responseId": self.id});
        if usage {
            body["usageMetadata"] = usage_to(&self.usage);
        }
        write_sse(out, None, &body.to_string());
    }

    pub(crate) fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::TextDelta { text } => {
                self.chunk(vec![json!({"text": text})], None, false, out)
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.calls
                    .push((*index, id.clone(), name.clone(), String::new()));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if let Some(c) = self.calls.iter_mut().find(|c| c.0 == *index) {
                    c.3.push_str(arguments);
                }
            }
            StreamEvent::Finish { reason } => self.finish = Some(reason.clone()),
            StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::Done => {
                let calls: Vec<ContentPart> = self
                    .calls
                    .iter()
                    .map(|(_, id, name, args)| ContentPart::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: args.clone(),
                    })
                    .collect();
                let reason = finish_to(self.finish.as_ref().unwrap_or(&FinishReason::Stop));
                self.chunk(content_to_parts(&calls), Some(reason), true, out);
                self.done = true;
            }
        }
    }

    pub(crate) fn encode_error(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        let body = json!({"error": {"code": 500, "message": message, "status": kind}});
        write_sse(out, None, &body.to_string());
    }
}
