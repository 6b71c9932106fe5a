//! Reading only why a complete response ended and which model answered, for a trace: the
//! rest of the answer (its content, tool calls, usage) is skipped over, not decoded, and the
//! strings read are borrowed from the body where they can be.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::{anthropic, gemini, openai, FinishReason, Protocol};

/// Why a whole answer ended and the model its upstream says answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSummary {
    /// Why it ended, in canonical terms.
    pub finish: FinishReason,
    /// The model the answer names (empty when it names none).
    pub model: String,
}

#[derive(Deserialize)]
struct OpenAiBody<'a> {
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow, default)]
    choices: Vec<OpenAiChoice<'a>>,
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicBody<'a> {
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stop_sequence: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiBody<'a> {
    #[serde(borrow, default)]
    model_version: Cow<'a, str>,
    #[serde(borrow, default)]
    candidates: Vec<GeminiCandidate<'a>>,
    prompt_feedback: Option<GeminiFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate<'a> {
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
    content: Option<GeminiContent>,
}

#[derive(Deserialize)]
struct GeminiContent {
    #[serde(default)]
    parts: Vec<GeminiPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPart {
    function_call: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiFeedback {
    block_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ResponsesBody<'a> {
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow, default)]
    output: Vec<ResponsesItem<'a>>,
    #[serde(borrow)]
    incomplete_details: Option<ResponsesIncomplete<'a>>,
}

#[derive(Deserialize)]
struct ResponsesItem<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesIncomplete<'a> {
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

/// Why the complete response `body` in protocol `p` ended and which model it names, as
/// [`crate::decode_response`] would read them; `None` when `body` is not such a response.
pub fn read_summary(p: Protocol, body: &[u8]) -> Option<AnswerSummary> {
    let (finish, model) = match p {
        Protocol::OpenAi => {
            let body: OpenAiBody = serde_json::from_slice(body).ok()?;
            let choice = body.choices.into_iter().next()?;
            let finish = choice
                .finish_reason
                .map_or(FinishReason::Stop, |reason| openai::finish_from(&reason));
            (finish, body.model)
        }
        Protocol::Anthropic => {
            let body: AnthropicBody = serde_json::from_slice(body).ok()?;
            let finish = body.stop_reason.map_or(FinishReason::Stop, |reason| {
                anthropic::finish_from(&reason, body.stop_sequence.as_deref())
            });
            (finish, body.model)
        }
        Protocol::Gemini => {
            let body: GeminiBody = serde_json::from_slice(body).ok()?;
            let blocked = body
                .prompt_feedback
                .is_some_and(|feedback| feedback.block_reason.is_some());
            let candidate = body.candidates.into_iter().next();
            let called_tools = candidate
                .as_ref()
                .and_then(|c| c.content.as_ref())
                .is_some_and(|c| c.parts.iter().any(|part| part.function_call.is_some()));
            let finish = match candidate.as_ref().and_then(|c| c.finish_reason.as_deref()) {
                Some(reason) => gemini::finish_from(reason, called_tools),
                None if blocked => FinishReason::ContentFilter,
                None if called_tools => FinishReason::ToolCalls,
                None => FinishReason::Stop,
            };
            if candidate.is_none() && finish != FinishReason::ContentFilter {
                return None;
            }
            (finish, body.model_version)
        }
        Protocol::Responses => {
            let body: ResponsesBody = serde_json::from_slice(body).ok()?;
            let reason = body.incomplete_details.and_then(|d| d.reason);
            let has_calls = body
                .output
                .iter()
                .any(|item| item.kind.as_deref() == Some("function_call"));
            let finish = match reason.as_deref() {
                Some("max_output_tokens") => FinishReason::Length,
                Some("content_filter") => FinishReason::ContentFilter,
                _ if has_calls => FinishReason::ToolCalls,
                _ => FinishReason::Stop,
            };
            (finish, body.model)
        }
    };
    Some(AnswerSummary {
        finish,
        model: model.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_response;
    use serde_json::json;

    /// The summary agrees with the whole decoding of `body`.
    fn agrees(p: Protocol, body: serde_json::Value) -> AnswerSummary {
        let bytes = serde_json::to_vec(&body).unwrap();
        let decoded = decode_response(p, &bytes).unwrap();
        let summary = read_summary(p, &bytes).unwrap();
        assert_eq!(summary.finish, decoded.finish, "{body}");
        assert_eq!(summary.model, decoded.model, "{body}");
        summary
    }

    #[test]
    fn openai_finish_and_model() {
        let answer = |finish: serde_json::Value| {
            json!({"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": "hi \"there\"",
                    "tool_calls": [{"id": "t", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]},
                "finish_reason": finish}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
        };
        for (finish, expected) in [
            (json!("stop"), FinishReason::Stop),
            (json!("length"), FinishReason::Length),
            (json!("tool_calls"), FinishReason::ToolCalls),
            (json!("content_filter"), FinishReason::ContentFilter),
            (json!(null), FinishReason::Stop),
        ] {
            let summary = agrees(Protocol::OpenAi, answer(finish));
            assert_eq!(summary.finish, expected);
            assert_eq!(summary.model, "gpt-4o-mini");
        }
    }

    #[test]
    fn anthropic_finish_stop_sequence_and_model() {
        let answer = |reason: &str| {
            json!({"id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-\u{e9}", "content": [{"type": "text", "text": "hi"}],
                "stop_reason": reason, "stop_sequence": "END",
                "usage": {"input_tokens": 1, "output_tokens": 2}})
        };
        let summary = agrees(Protocol::Anthropic, answer("stop_sequence"));
        assert_eq!(
            summary.finish,
            FinishReason::StopSequence(Some("END".into()))
        );
        assert_eq!(summary.model, "claude-\u{e9}");
        for reason in ["end_turn", "max_tokens", "tool_use", "refusal"] {
            agrees(Protocol::Anthropic, answer(reason));
        }
    }

    #[test]
    fn gemini_finish_tools_blocks_and_model() {
        let with_parts = |parts: serde_json::Value, finish: serde_json::Value| {
            json!({"candidates": [{"content": {"role": "model", "parts": parts},
                "finishReason": finish}], "modelVersion": "gemini-2.0-flash",
                "usageMetadata": {"promptTokenCount": 1}})
        };
        let call = json!([{"functionCall": {"name": "f", "args": {"a": [1, 2]}}}]);
        let text = json!([{"text": "hi"}]);
        let summary = agrees(Protocol::Gemini, with_parts(call.clone(), json!("STOP")));
        assert_eq!(summary.finish, FinishReason::ToolCalls);
        assert_eq!(summary.model, "gemini-2.0-flash");
        agrees(Protocol::Gemini, with_parts(call, json!(null)));
        agrees(
            Protocol::Gemini,
            with_parts(text.clone(), json!("MAX_TOKENS")),
        );
        agrees(Protocol::Gemini, with_parts(text, json!("SAFETY")));
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        assert_eq!(
            agrees(Protocol::Gemini, blocked).finish,
            FinishReason::ContentFilter
        );
        assert_eq!(read_summary(Protocol::Gemini, b"{}"), None);
    }

    #[test]
    fn responses_finish_and_model() {
        let answer = |output: serde_json::Value, incomplete: serde_json::Value| {
            json!({"id": "r", "object": "response", "model": "gpt-4.1", "output": output,
                "incomplete_details": incomplete})
        };
        let call =
            json!([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]);
        let text = json!([{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}]);
        assert_eq!(
            agrees(Protocol::Responses, answer(call, json!(null))).finish,
            FinishReason::ToolCalls
        );
        assert_eq!(
            agrees(
                Protocol::Responses,
                answer(text, json!({"reason": "max_output_tokens"}))
            )
            .finish,
            FinishReason::Length
        );
    }

    #[test]
    fn a_body_that_is_not_an_answer_has_no_summary() {
        for p in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Gemini] {
            assert_eq!(
                read_summary(p, b"{\"choices\": [{\"finish_reason\": "),
                None
            );
            assert_eq!(read_summary(p, b"[]"), None);
        }
        assert_eq!(read_summary(Protocol::OpenAi, b"{\"choices\": []}"), None);
    }
}
