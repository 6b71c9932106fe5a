//! The protocol-neutral model that translation goes through.
//!
//! Every provider module decodes into and encodes from these types, so N protocols need 2N codecs
//! instead of N² translators. The model keeps what the three APIs share (system prompt, messages
//! with text, images, tool calls and tool results, tools, sampling parameters, usage) and records
//! the rest in [`ChatRequest::extra`], so that an encoder can decide, parameter by parameter,
//! whether dropping it is harmless (a warning in [`Encoded::warnings`]) or would change the meaning
//! of the request ([`crate::ProtocolError::Unsupported`]).

use serde_json::{Map, Value};

use crate::Protocol;

/// A chat request in no particular protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The model the client asked for.
    pub model: String,
    /// The system prompt, as text blocks (OpenAI system/developer messages, Anthropic `system`,
    /// Gemini `systemInstruction`).
    pub system: Vec<ContentPart>,
    /// The conversation, user and assistant turns; tool results live in user turns.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model must use the tools.
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids several tool calls in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Whether the client wants a streamed response.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: the client wants a usage chunk at the end.
    pub include_usage: bool,
    /// OpenAI `response_format` (`{"type":"json_object"}`, `{"type":"json_schema",...}`).
    pub response_format: Option<Value>,
    /// Sampling seed (OpenAI `seed`, Gemini `generationConfig.seed`).
    pub seed: Option<i64>,
    /// An end-user identifier (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// The protocol the request was decoded from; [`ChatRequest::extra`] uses its vocabulary.
    pub origin: Protocol,
    /// Parameters of the origin protocol with no canonical field, by name.
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// An empty request for `model`, as if decoded from `origin`.
    pub fn new(origin: Protocol, model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            system: Vec::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            max_tokens: None,
            temperature: None,
            top_p: None,
            top_k: None,
            stop: Vec::new(),
            stream: false,
            include_usage: false,
            response_format: None,
            seed: None,
            user: None,
            origin,
            extra: Map::new(),
        }
    }

    /// The system prompt as one string (text blocks joined by a blank line).
    pub fn system_text(&self) -> String {
        join_text(&self.system)
    }
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What was said, in order.
    pub content: Vec<ContentPart>,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A URL the provider fetches.
    Url(String),
    /// Inline bytes, base64-encoded.
    Base64 {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// The base64 payload.
        data: String,
    },
}

impl ImageSource {
    /// Parses an OpenAI `image_url.url`: `data:<type>;base64,<data>` becomes inline bytes, anything
    /// else a URL.
    pub fn from_url(url: &str) -> Self {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if let Some(media_type) = meta.strip_suffix(";base64") {
                    return Self::Base64 {
                        media_type: media_type.to_owned(),
                        data: data.to_owned(),
                    };
                }
            }
        }
        Self::Url(url.to_owned())
    }

    /// The OpenAI form: the URL, or a `data:` URL for inline bytes.
    pub fn to_url(&self) -> String {
        match self {
            Self::Url(u) => u.clone(),
            Self::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// Plain text.
    Text(String),
    /// An image.
    Image(ImageSource),
    /// The model calls a tool.
    ToolCall {
        /// The call id that the result refers back to.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, as JSON text.
        arguments: String,
    },
    /// The result of a tool call, sent back by the user.
    ToolResult {
        /// The id of the call this answers.
        call_id: String,
        /// The result: text and images.
        content: Vec<ContentPart>,
        /// Whether the tool failed.
        is_error: bool,
    },
}

/// Concatenates the text parts (blank line between parts), ignoring the others.
pub fn join_text(parts: &[ContentPart]) -> String {
    let mut out = String::new();
    for p in parts {
        if let ContentPart::Text(t) = p {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(t);
        }
    }
    out
}

/// A tool (function) the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON schema of its arguments.
    pub parameters: Value,
}

/// How the model must use the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (Anthropic `any`).
    Required,
    /// This tool must be called.
    Named(String),
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// A natural end of turn.
    Stop,
    /// `max_tokens` (or the context window) was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// A content filter or policy refusal stopped the output.
    ContentFilter,
    /// A stop sequence matched (which one, when the provider says).
    StopSequence(Option<String>),
}

impl FinishReason {
    /// The reason's name, as OpenAI spells it (`stop`, `length`, `tool_calls`,
    /// `content_filter`; `stop_sequence` for a matched stop sequence).
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::StopSequence(_) => "stop_sequence",
        }
    }
}

/// Token counts. `input_tokens` counts every prompt token, cached ones included (OpenAI's
/// convention); the cache fields say how many of them were read from or written to a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cache_read_tokens: Option<u64>,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: Option<u64>,
}

/// A complete (non-streamed) response.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The provider's response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Text and tool calls, in order.
    pub content: Vec<ContentPart>,
    /// Why generation stopped.
    pub finish: FinishReason,
    /// Token counts.
    pub usage: Usage,
}

/// One event of a response stream, in no particular protocol. Decoders produce one sequence per
/// response: `Start`, deltas, `Finish` and `Usage` (in either order), then `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response begins.
    Start {
        /// The response id.
        id: String,
        /// The model that answers.
        model: String,
    },
    /// More text.
    TextDelta {
        /// The text fragment.
        text: String,
    },
    /// A tool call begins. `index` counts tool calls from 0 within the response.
    ToolCallStart {
        /// Position of the call among this response's tool calls.
        index: u32,
        /// The call id.
        id: String,
        /// The tool name.
        name: String,
    },
    /// More of a tool call's arguments (JSON text fragment).
    ToolCallDelta {
        /// Which call.
        index: u32,
        /// The fragment.
        arguments: String,
    },
    /// Why generation stopped.
    Finish {
        /// The reason.
        reason: FinishReason,
    },
    /// Token counts (may come before or after `Finish`, and more than once: the last wins).
    Usage(Usage),
    /// The protocol's terminator was seen.
    Done,
}

/// An encoded request body plus the parameters dropped on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The JSON body to send upstream.
    pub body: Vec<u8>,
    /// One human-readable line per dropped or altered parameter (for a logged warning).
    pub warnings: Vec<String>,
}
