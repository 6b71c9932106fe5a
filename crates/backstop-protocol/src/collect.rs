//! Converting between a whole response and a stream of events.
//!
//! The gateway sometimes holds one form and needs the other: a streamed upstream answer that must
//! be stored or returned whole (cache, non-streaming client), or a whole answer (cache hit, static
//! fallback, mock provider) that a streaming client must receive as events.

use crate::canonical::{ChatResponse, ContentPart, FinishReason, StreamEvent, Usage};

/// Accumulates canonical stream events into a [`ChatResponse`].
#[derive(Debug, Default)]
pub struct ResponseCollector {
    id: String,
    model: String,
    content: Vec<ContentPart>,
    /// Position in `content` of each tool call, by canonical index.
    tools: Vec<(u32, usize)>,
    finish: Option<FinishReason>,
    usage: Usage,
    done: bool,
}

impl ResponseCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event.
    pub fn push(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Start { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::TextDelta { text } => match self.content.last_mut() {
                Some(ContentPart::Text(t)) => t.push_str(text),
                _ => self.content.push(ContentPart::Text(text.clone())),
            },
            StreamEvent::ToolCallStart { index, id, name } => {
                self.tools.push((*index, self.content.len()));
                self.content.push(ContentPart::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let at = self
                    .tools
                    .iter()
                    .find(|(i, _)| i == index)
                    .map(|(_, at)| *at);
                if let Some(ContentPart::ToolCall { arguments: a, .. }) =
                    at.and_then(|at| self.content.get_mut(at))
                {
                    a.push_str(arguments);
                }
            }
            StreamEvent::Finish { reason } => self.finish = Some(reason.clone()),
            StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::Done => self.done = true,
        }
    }

    /// Whether `Done` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The response collected so far (finish reason `Stop` when none was seen).
    pub fn finish(self) -> ChatResponse {
        ChatResponse {
            id: self.id,
            model: self.model,
            content: self.content,
            finish: self.finish.unwrap_or(FinishReason::Stop),
            usage: self.usage,
        }
    }
}

impl ChatResponse {
    /// The response as a stream: `Start`, one delta per text part, a start and one delta per
    /// tool call, `Finish`, `Usage`, `Done`.
    pub fn to_events(&self) -> Vec<StreamEvent> {
        let mut out = vec![StreamEvent::Start {
            id: self.id.clone(),
            model: self.model.clone(),
        }];
        let mut index = 0;
        for p in &self.content {
            match p {
                ContentPart::Text(text) => out.push(StreamEvent::TextDelta { text: text.clone() }),
                ContentPart::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: arguments.clone(),
                    });
                    index += 1;
                }
                ContentPart::Image(_) | ContentPart::ToolResult { .. } => {}
            }
        }
        out.push(StreamEvent::Finish {
            reason: self.finish.clone(),
        });
        out.push(StreamEvent::Usage(self.usage));
        out.push(StreamEvent::Done);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_survives_events_round_trip() {
        let resp = ChatResponse {
            id: "msg_1".into(),
            model: "m".into(),
            content: vec![
                ContentPart::Text("hello".into()),
                ContentPart::ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: r#"{"a":1}"#.into(),
                },
                ContentPart::ToolCall {
                    id: "c2".into(),
                    name: "g".into(),
                    arguments: "{}".into(),
                },
            ],
            finish: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
        };
        let mut c = ResponseCollector::new();
        for e in resp.to_events() {
            c.push(&e);
        }
        assert!(c.is_done());
        assert_eq!(c.finish(), resp);
    }

    #[test]
    fn text_deltas_concatenate() {
        let mut c = ResponseCollector::new();
        for t in ["a", "b", "c"] {
            c.push(&StreamEvent::TextDelta { text: t.into() });
        }
        assert_eq!(c.finish().content, vec![ContentPart::Text("abc".into())]);
    }
}
