//! Responses API answers -> the canonical response and stream events, for upstreams that speak
//! the Responses API themselves (OpenAI-compatible providers declared with `responses = true`).

use serde_json::Value;

use crate::canonical::{ChatResponse, ContentPart, FinishReason, StreamEvent, Usage};
use crate::json::{obj, opt_array, opt_str, opt_u64, parse_object, req_str, Obj};
use crate::sse::SseEvent;
use crate::ProtocolError;

fn usage_from(u: &Value) -> Result<Usage, ProtocolError> {
    let u = obj(u, "usage")?;
    let cached = u
        .get("input_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64);
    Ok(Usage {
        input_tokens: opt_u64(u, "input_tokens", "usage")?.unwrap_or(0),
        output_tokens: opt_u64(u, "output_tokens", "usage")?.unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: None,
    })
}

fn finish_of(o: &Obj, has_calls: bool) -> FinishReason {
    let reason = o
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    match reason {
        Some("max_output_tokens") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        _ if has_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn response_from(o: &Obj) -> Result<ChatResponse, ProtocolError> {
    let mut content = Vec::new();
    for (i, item) in opt_array(o, "output", "")?.iter().enumerate() {
        let path = format!("output[{i}]");
        let item = obj(item, &path)?;
        match opt_str(item, "type", &path)? {
            Some("message") => {
                for part in opt_array(item, "content", &path)? {
                    let part = obj(part, &path)?;
                    if let Some(t) =
                        opt_str(part, "text", &path)?.or(opt_str(part, "refusal", &path)?)
                    {
                        content.push(ContentPart::Text(t.to_owned()));
                    }
                }
            }
            Some("function_call") => content.push(ContentPart::ToolCall {
                id: req_str(item, "call_id", &path)?.to_owned(),
                name: req_str(item, "name", &path)?.to_owned(),
                arguments: opt_str(item, "arguments", &path)?.unwrap_or("").to_owned(),
            }),
            _ => {}
        }
    }
    let has_calls = content
        .iter()
        .any(|p| matches!(p, ContentPart::ToolCall { .. }));
    Ok(ChatResponse {
        id: opt_str(o, "id", "")?.unwrap_or("").to_owned(),
        model: opt_str(o, "model", "")?.unwrap_or("").to_owned(),
        finish: finish_of(o, has_calls),
        usage: match o.get("usage") {
            Some(u @ Value::Object(_)) => usage_from(u)?,
            _ => Usage::default(),
        },
        content,
    })
}

/// Decodes a Responses API `response` object.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProtocolError> {
    response_from(&parse_object(body)?)
}

/// Turns a Responses API event stream into canonical events.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    pub(crate) terminated: bool,
    pub(crate) finished: bool,
    /// Output index of each function call item, in the order they started.
    calls: Vec<u64>,
}

impl Decoder {
    pub(crate) fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProtocolError> {
        let v: Value = serde_json::from_str(&ev.data)?;
        let o = obj(&v, "event")?;
        let kind = req_str(o, "type", "event")?;
        let call_index = |calls: &[u64]| {
            let at = o.get("output_index").and_then(Value::as_u64);
            calls.iter().position(|c| Some(*c) == at).map(|i| i as u32)
        };
        Ok(match kind {
            "response.created" => {
                let r = obj(o.get("response").unwrap_or(&Value::Null), "response")?;
                vec![StreamEvent::Start {
                    id: opt_str(r, "id", "response")?.unwrap_or("").to_owned(),
                    model: opt_str(r, "model", "response")?.unwrap_or("").to_owned(),
                }]
            }
            "response.output_text.delta" => vec![StreamEvent::TextDelta {
                text: req_str(o, "delta", "event")?.to_owned(),
            }],
            "response.output_item.added" => {
                let item = obj(o.get("item").unwrap_or(&Value::Null), "item")?;
                if opt_str(item, "type", "item")? != Some("function_call") {
                    return Ok(Vec::new());
                }
                self.calls
                    .push(opt_u64(o, "output_index", "event")?.unwrap_or(0));
                vec![StreamEvent::ToolCallStart {
                    index: (self.calls.len() - 1) as u32,
                    id: req_str(item, "call_id", "item")?.to_owned(),
                    name: req_str(item, "name", "item")?.to_owned(),
                }]
            }
            "response.function_call_arguments.delta" => match call_index(&self.calls) {
                Some(index) => vec![StreamEvent::ToolCallDelta {
                    index,
                    arguments: req_str(o, "delta", "event")?.to_owned(),
                }],
                None => Vec::new(),
            },
            "response.completed" | "response.incomplete" => {
                let r = obj(o.get("response").unwrap_or(&Value::Null), "response")?;
                let whole = response_from(r)?;
                self.finished = true;
                self.terminated = true;
                vec![
                    StreamEvent::Finish {
                        reason: whole.finish,
                    },
                    StreamEvent::Usage(whole.usage),
                    StreamEvent::Done,
                ]
            }
            "error" | "response.failed" => {
                return Err(crate::error::stream_error_event(
                    crate::Protocol::Responses,
                    &ev.data,
                ))
            }
            _ => Vec::new(),
        })
    }
}
