//! Anthropic Messages streams: decoding upstream events and encoding client events.

use std::borrow::Cow;

use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::canonical::{FinishReason, StreamEvent, Usage};
use crate::error::stream_error_event;
use crate::sse::{write_sse, SseEvent};
use crate::{Protocol, ProtocolError};

use super::{finish_from, finish_to, message_id, usage_from, usage_to};

/// Decoder state for one Anthropic stream.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Content-block index -> canonical tool-call index.
    tool_blocks: Vec<(u64, u32)>,
    usage: Usage,
    pub(crate) terminated: bool,
    pub(crate) finished: bool,
}

fn field<'a>(v: &'a Value, ptr: &str) -> Result<&'a Value, ProtocolError> {
    v.pointer(ptr)
        .ok_or_else(|| ProtocolError::Invalid(format!("stream event lacks `{ptr}`")))
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Result<&'a str, ProtocolError> {
    field(v, ptr)?.as_str().ok_or_else(|| {
        ProtocolError::Invalid(format!("stream event field `{ptr}` must be a string"))
    })
}

/// A `content_block_delta` event, most of a stream's events, read as borrowed fields rather than
/// a [`Value`] tree; unknown fields are skipped.
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    index: u64,
    #[serde(borrow)]
    delta: DeltaBody<'a>,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
}

impl Decoder {
    pub(crate) fn decode(
        &mut self,
        ev: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProtocolError> {
        if ev.event.as_deref() == Some("content_block_delta") && self.block_delta(ev, out) {
            return Ok(());
        }
        let v: Value = serde_json::from_str(&ev.data)?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                out.push(StreamEvent::Start {
                    id: str_at(&v, "/message/id")?.to_owned(),
                    model: v
                        .pointer("/message/model")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                });
                if let Some(u) = v.pointer("/message/usage") {
                    self.usage = usage_from(u)?;
                    out.push(StreamEvent::Usage(self.usage));
                }
            }
            "content_block_start" => {
                let index = field(&v, "/index")?.as_u64().unwrap_or(0);
                let block = field(&v, "/content_block")?;
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(StreamEvent::TextDelta { text: t.to_owned() });
                        }
                    }
                    Some("tool_use") => {
                        let tool = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                        self.tool_blocks.push((index, tool));
                        out.push(StreamEvent::ToolCallStart {
                            index: tool,
                            id: str_at(block, "/id")?.to_owned(),
                            name: str_at(block, "/name")?.to_owned(),
                        });
                        // Anthropic sends `input: {}` here and the real input as deltas.
                        if let Some(input) = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            out.push(StreamEvent::ToolCallDelta {
                                index: tool,
                                arguments: input.to_string(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = field(&v, "/index")?.as_u64().unwrap_or(0);
                let delta = field(&v, "/delta")?;
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.push(StreamEvent::TextDelta {
                        text: str_at(delta, "/text")?.to_owned(),
                    }),
                    Some("input_json_delta") => {
                        self.input_delta(index, str_at(delta, "/partial_json")?, out);
                    }
                    _ => {} // thinking, signature and citation deltas have no equivalent
                }
            }
            "message_delta" => {
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finished = true;
                    let seq = v.pointer("/delta/stop_sequence").and_then(Value::as_str);
                    out.push(StreamEvent::Finish {
                        reason: finish_from(reason, seq),
                    });
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.merge_usage(u)?;
                    out.push(StreamEvent::Usage(self.usage));
                }
            }
            "message_stop" => {
                self.terminated = true;
                out.push(StreamEvent::Done);
            }
            "error" => {
                return Err(stream_error_event(Protocol::Anthropic, &ev.data));
            }
            _ => {} // ping, content_block_stop, and event types added later
        }
        Ok(())
    }

    /// Decodes a text or tool-input delta from its borrowed fields; `false` (nothing written)
    /// for any other event, or one not of the expected shape, which the [`Value`] path decodes
    /// or rejects with its error.
    fn block_delta(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> bool {
        let Ok(event) = serde_json::from_str::<BlockDelta<'_>>(&ev.data) else {
            return false;
        };
        if event.kind != "content_block_delta" {
            return false;
        }
        match (
            &*event.delta.kind,
            event.delta.text,
            event.delta.partial_json,
        ) {
            ("text_delta", Some(text), _) => out.push(StreamEvent::TextDelta {
                text: text.into_owned(),
            }),
            ("input_json_delta", _, Some(json)) => self.input_delta(event.index, &json, out),
            ("text_delta" | "input_json_delta", _, _) => return false,
            _ => {} // thinking, signature and citation deltas have no equivalent
        }
        true
    }

    /// A tool call's input, in part: skipped for blocks not translated (server tools).
    fn input_delta(&self, index: u64, json: &str, out: &mut Vec<StreamEvent>) {
        let tool = self
            .tool_blocks
            .iter()
            .find(|(b, _)| *b == index)
            .map(|(_, t)| *t);
        if let Some(tool) = tool.filter(|_| !json.is_empty()) {
            out.push(StreamEvent::ToolCallDelta {
                index: tool,
                arguments: json.to_owned(),
            });
        }
    }

    /// `message_delta` usage is cumulative and may omit the input fields.
    fn merge_usage(&mut self, u: &Value) -> Result<(), ProtocolError> {
        let has = |k: &str| u.get(k).is_some_and(|x| !x.is_null());
        let d = usage_from(u)?;
        self.usage.output_tokens = d.output_tokens;
        if has("input_tokens")
            || has("cache_read_input_tokens")
            || has("cache_creation_input_tokens")
        {
            self.usage.input_tokens = d.input_tokens;
            self.usage.cache_read_tokens = d.cache_read_tokens.or(self.usage.cache_read_tokens);
            self.usage.cache_write_tokens = d.cache_write_tokens.or(self.usage.cache_write_tokens);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Tool(u32),
}

/// Encoder state for one Anthropic client stream.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    id: String,
    model: String,
    started: bool,
    /// The open content block and its index.
    open: Option<(u32, Block)>,
    next_block: u32,
    /// Canonical tool index -> content-block index.
    tool_blocks: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
    usage: Usage,
    done: bool,
}

impl Encoder {
    fn emit(out: &mut BytesMut, event: &str, body: Value) {
        write_sse(out, Some(event), &body.to_string());
    }

    /// `message_start` waits for the first content so that usage arriving with the upstream's
    /// start (Anthropic's own `message_start`) is included.
    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = usage_to(&self.usage);
        usage["output_tokens"] = json!(self.usage.output_tokens.min(1));
        Self::emit(
            out,
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(&self.id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
            }}),
        );
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            Self::emit(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn open_block(&mut self, block: Block, content: Value, out: &mut BytesMut) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, block));
        Self::emit(
            out,
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": content}),
        );
        index
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
            StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::TextDelta { text } => {
                self.ensure_started(out);
                let index = match self.open {
                    Some((i, Block::Text)) => i,
                    Some((_, Block::Tool(_))) | None => {
                        self.open_block(Block::Text, json!({"type": "text", "text": ""}), out)
                    }
                };
                Self::emit(
                    out,
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": text}}),
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                let block = self.open_block(
                    Block::Tool(*index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.tool_blocks.push((*index, block));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.ensure_started(out);
                let block = match self.tool_blocks.iter().find(|(t, _)| t == index) {
                    Some((_, b)) => *b,
                    // A delta without a start: open the block now with what we know.
                    None => {
                        let b = self.open_block(Block::Tool(*index), json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": "", "input": {}}), out);
                        self.tool_blocks.push((*index, b));
                        b
                    }
                };
                Self::emit(
                    out,
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                );
            }
            StreamEvent::Finish { reason } => {
                self.ensure_started(out);
                self.close_block(out);
                self.finish = Some(reason.clone());
            }
            StreamEvent::Done => {
                self.ensure_started(out);
                self.close_block(out);
                let (stop_reason, stop_sequence) =
                    finish_to(self.finish.as_ref().unwrap_or(&FinishReason::Stop));
                Self::emit(
                    out,
                    "message_delta",
                    json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": usage_to(&self.usage)}),
                );
                Self::emit(out, "message_stop", json!({"type": "message_stop"}));
                self.done = true;
            }
        }
    }

    pub(crate) fn encode_error(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        Self::emit(
            out,
            "error",
            json!({"type": "error", "error": {"type": kind, "message": message}}),
        );
    }
}
