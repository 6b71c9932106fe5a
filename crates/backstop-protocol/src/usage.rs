//! Reading only the token usage of a complete response body, for accounting on the
//! passthrough path, where the body is forwarded unchanged and never fully decoded.
//! The whole body is still validated as JSON: a truncated answer is an error.

use serde::Deserialize;

use crate::{Protocol, ProtocolError, Usage};

#[derive(Deserialize)]
struct OpenAiBody {
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<OpenAiPromptDetails>,
}

#[derive(Deserialize)]
struct OpenAiPromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ResponsesBody {
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    input_tokens_details: Option<OpenAiPromptDetails>,
}

#[derive(Deserialize)]
struct AnthropicBody {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiBody {
    usage_metadata: Option<GeminiUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    cached_content_token_count: Option<u64>,
}

/// The usage of a complete response body in protocol `p`, if it reports one.
/// Fails with [`ProtocolError::Json`] when the body is not whole, valid JSON.
pub fn read_usage(p: Protocol, body: &[u8]) -> Result<Option<Usage>, ProtocolError> {
    Ok(match p {
        Protocol::OpenAi => serde_json::from_slice::<OpenAiBody>(body)?
            .usage
            .map(|u| Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
                cache_read_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
                cache_write_tokens: None,
            }),
        Protocol::Responses => serde_json::from_slice::<ResponsesBody>(body)?
            .usage
            .map(|u| Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_read_tokens: u.input_tokens_details.and_then(|d| d.cached_tokens),
                cache_write_tokens: None,
            }),
        Protocol::Anthropic => serde_json::from_slice::<AnthropicBody>(body)?
            .usage
            .map(|u| {
                let read = u.cache_read_input_tokens;
                let write = u.cache_creation_input_tokens;
                Usage {
                    input_tokens: u.input_tokens + read.unwrap_or(0) + write.unwrap_or(0),
                    output_tokens: u.output_tokens,
                    cache_read_tokens: read,
                    cache_write_tokens: write,
                }
            }),
        Protocol::Gemini => serde_json::from_slice::<GeminiBody>(body)?
            .usage_metadata
            .map(|u| Usage {
                input_tokens: u.prompt_token_count,
                output_tokens: u.candidates_token_count,
                cache_read_tokens: u.cached_content_token_count,
                cache_write_tokens: None,
            }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_providers_usage() {
        let openai = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let usage = read_usage(Protocol::OpenAi, openai).unwrap().unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens
            ),
            (12, 3, Some(4))
        );

        let anthropic = br#"{"type":"message","content":[],"usage":{"input_tokens":10,"output_tokens":7,"cache_read_input_tokens":5}}"#;
        let usage = read_usage(Protocol::Anthropic, anthropic).unwrap().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (15, 7));

        let gemini = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2,"totalTokenCount":10}}"#;
        let usage = read_usage(Protocol::Gemini, gemini).unwrap().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (8, 2));

        assert!(read_usage(Protocol::OpenAi, br#"{"choices":[]}"#)
            .unwrap()
            .is_none());
        assert!(read_usage(Protocol::OpenAi, br#"{"choices":[{"message":"#).is_err());
    }
}
