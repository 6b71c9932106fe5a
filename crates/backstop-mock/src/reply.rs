//! The deterministic answer to one request, before it is put into any wire format.
//!
//! Text replies are the configured chunks (minus a matching prefill, cut at `max_tokens`), or a
//! JSON value of the asked schema for structured output; tool replies call the first tool with
//! the configured arguments (or, when those lack what the tool requires, arguments made from
//! its schema), split into a few deltas so that streamed argument assembly is exercised.

use crate::ask::Ask;
use crate::config::split_text;
use crate::shape::{fits, instance};

/// Why a text reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The whole answer (or its remainder after a prefill) was sent.
    Stop,
    /// `max_tokens` cut it short.
    Length,
    /// The content filter stopped the output (the `output_filter` fault).
    Filtered,
}

/// The body of a reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    Text {
        chunks: Vec<String>,
        finish: Finish,
    },
    Tool {
        name: String,
        arguments: String,
        pieces: Vec<String>,
    },
}

/// One reply, ready to be encoded by a provider module.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// A per-request number that provider modules turn into their id formats.
    pub(crate) serial: u64,
    pub(crate) model: String,
    pub(crate) content: Content,
    pub(crate) input_tokens: u64,
    pub(crate) created: u64,
}

impl Reply {
    /// Output tokens: one per chunk or argument delta served.
    pub(crate) fn output_tokens(&self) -> u64 {
        match &self.content {
            Content::Text { chunks, .. } => chunks.len() as u64,
            Content::Tool { pieces, .. } => pieces.len() as u64,
        }
    }

    /// The whole text of a text reply.
    pub(crate) fn text(&self) -> String {
        match &self.content {
            Content::Text { chunks, .. } => chunks.concat(),
            Content::Tool { .. } => String::new(),
        }
    }
}

impl Reply {
    /// Replaces a text answer's text, or a tool call's arguments.
    pub(crate) fn answer_with(&mut self, text: &str) {
        match &mut self.content {
            Content::Text { chunks, finish } => {
                *chunks = split_text(text, 4);
                *finish = Finish::Stop;
            }
            Content::Tool {
                arguments, pieces, ..
            } => {
                *arguments = text.to_owned();
                *pieces = split_text(text, 4);
            }
        }
    }

    /// Makes the reply one whose output the content filter stopped: no text, no tool call.
    pub(crate) fn filter_output(&mut self) {
        self.content = Content::Text {
            chunks: Vec::new(),
            finish: Finish::Filtered,
        };
    }

    /// Whether the content filter stopped the output.
    pub(crate) fn filtered(&self) -> bool {
        matches!(
            self.content,
            Content::Text {
                finish: Finish::Filtered,
                ..
            }
        )
    }
}

/// What the reply is built from, shared by every request.
pub(crate) struct Script {
    pub(crate) answer: String,
    pub(crate) chunks: Vec<String>,
    /// `tool_arguments` serialized once.
    pub(crate) tool_arguments: String,
}

/// The chunks left after a prefill that is a prefix of the answer (the whole answer otherwise).
fn after_prefill(script: &Script, prefill: Option<&str>) -> Vec<String> {
    let Some(prefix) = prefill.filter(|p| !p.is_empty() && script.answer.starts_with(*p)) else {
        return script.chunks.clone();
    };
    let mut consumed = 0;
    let mut rest = Vec::new();
    for chunk in &script.chunks {
        let end = consumed + chunk.len();
        if end <= prefix.len() {
            consumed = end;
            continue;
        }
        let skip = prefix.len().saturating_sub(consumed);
        rest.push(chunk[skip..].to_owned());
        consumed = end;
    }
    rest
}

/// The configured tool arguments when they have what `schema` requires; else arguments made
/// from the schema.
fn tool_arguments(script: &Script, schema: Option<&serde_json::Value>) -> String {
    let Some(schema) = schema else {
        return script.tool_arguments.clone();
    };
    let configured = serde_json::from_str(&script.tool_arguments).unwrap_or_default();
    if fits(schema, &configured) {
        script.tool_arguments.clone()
    } else {
        instance(schema, &script.answer).to_string()
    }
}

/// Builds the reply to `ask`; `model` is what the response will claim (normally the requested one).
pub(crate) fn plan(script: &Script, ask: &Ask, model: String, serial: u64, created: u64) -> Reply {
    let content = match (&ask.tool, &ask.format) {
        (Some(name), _) => {
            let arguments = tool_arguments(script, ask.tool_schema.as_ref());
            Content::Tool {
                name: name.clone(),
                pieces: split_text(&arguments, 4),
                arguments,
            }
        }
        (None, Some(schema)) => {
            let json = instance(schema, &script.answer).to_string();
            Content::Text {
                chunks: split_text(&json, 4),
                finish: Finish::Stop,
            }
        }
        (None, None) => {
            let mut chunks = after_prefill(script, ask.prefill.as_deref());
            let limit = ask
                .max_tokens
                .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
            let finish = if chunks.len() > limit {
                chunks.truncate(limit);
                Finish::Length
            } else {
                Finish::Stop
            };
            Content::Text { chunks, finish }
        }
    };
    Reply {
        serial,
        model,
        content,
        input_tokens: ask.input_tokens,
        created,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Script {
        Script {
            answer: "one two three four".into(),
            chunks: vec!["one".into(), " two".into(), " three".into(), " four".into()],
            tool_arguments: r#"{"city":"Paris"}"#.into(),
        }
    }

    fn ask() -> Ask {
        Ask {
            model: "m".into(),
            input_tokens: 3,
            ..Ask::default()
        }
    }

    #[test]
    fn prefill_continues_from_the_middle_of_a_chunk() {
        let a = Ask {
            prefill: Some("one tw".into()),
            ..ask()
        };
        let reply = plan(&script(), &a, "m".into(), 1, 0);
        assert_eq!(reply.text(), "o three four");
        assert_eq!(reply.output_tokens(), 3);
        let a = Ask {
            prefill: Some("not the answer".into()),
            ..ask()
        };
        assert_eq!(
            plan(&script(), &a, "m".into(), 1, 0).text(),
            "one two three four"
        );
    }

    #[test]
    fn max_tokens_truncates_with_length() {
        let a = Ask {
            max_tokens: Some(2),
            ..ask()
        };
        let reply = plan(&script(), &a, "m".into(), 1, 0);
        assert_eq!(
            reply.content,
            Content::Text {
                chunks: vec!["one".into(), " two".into()],
                finish: Finish::Length
            }
        );
    }

    #[test]
    fn tool_calls_split_arguments_into_deltas() {
        let a = Ask {
            tool: Some("get_weather".into()),
            ..ask()
        };
        let Content::Tool {
            name,
            arguments,
            pieces,
        } = plan(&script(), &a, "m".into(), 1, 0).content
        else {
            panic!("expected a tool call");
        };
        assert_eq!(name, "get_weather");
        assert_eq!(pieces.concat(), arguments);
        assert!(pieces.len() > 1);
    }

    #[test]
    fn structured_requests_get_json_of_their_schema_and_tools_arguments_they_require() {
        let a = Ask {
            format: Some(
                serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            ),
            ..ask()
        };
        assert_eq!(plan(&script(), &a, "m".into(), 1, 0).text(), r#"{"n":1}"#);
        let tool = |schema| Ask {
            tool: Some("t".into()),
            tool_schema: Some(schema),
            ..ask()
        };
        let arguments = |a: &Ask| match plan(&script(), a, "m".into(), 1, 0).content {
            Content::Tool { arguments, .. } => arguments,
            Content::Text { .. } => String::new(),
        };
        let fitting = tool(serde_json::json!({"type": "object", "required": ["city"]}));
        assert_eq!(arguments(&fitting), r#"{"city":"Paris"}"#);
        let other = tool(
            serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
        );
        assert_eq!(arguments(&other), r#"{"q":"one two three four"}"#);
    }
}
