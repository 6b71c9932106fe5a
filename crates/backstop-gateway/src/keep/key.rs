//! The keys of what Backstop keeps: a hash of what determines a request's answer (computed on
//! the protocol-neutral request, so an OpenAI request and an Anthropic request with the same
//! model and content share it), a hash of a request body for idempotency, and a hash of the
//! client key (stored keys never hold a secret).

use backstop_protocol::{ChatRequest, ContentPart, ImageSource, Role, ToolChoice};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes))
}

/// A digest in lower-case hex.
fn hex(digest: impl IntoIterator<Item = u8>) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// Who asks, for keys kept per client: a hash of the key presented, or `anonymous`.
pub fn client_id(headers: &http::HeaderMap) -> String {
    match crate::http::presented_key(headers) {
        Some(key) if !key.is_empty() => sha256_hex(key.as_bytes())[..32].to_string(),
        _ => "anonymous".to_string(),
    }
}

/// The hash of everything in `request` that determines its answer, for the public `model`:
/// messages, system, tools, tool choice, response format, sampling parameters and the
/// protocol's own extra parameters; not `stream` nor who asks.
pub fn exact(model: &str, request: &ChatRequest) -> String {
    let role = |role: Role| match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({"role": role(m.role), "content": parts(&m.content)}))
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    let tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => "auto".to_string(),
        ToolChoice::None => "none".to_string(),
        ToolChoice::Required => "required".to_string(),
        ToolChoice::Named(name) => format!("tool:{name}"),
    });
    let mut extra = request.extra.clone();
    for ignored in ["stream", "stream_options", "user", "metadata"] {
        extra.remove(ignored);
    }
    let canonical = json!({
        "model": model,
        "system": parts(&request.system),
        "messages": messages,
        "tools": tools,
        "tool_choice": tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": request.response_format,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "stop": request.stop,
        "seed": request.seed,
        "extra": if extra.is_empty() { Value::Null } else { json!({"origin": format!("{:?}", request.origin), "fields": extra}) },
    });
    sha256_hex(canonical.to_string().as_bytes())
}

/// The hash of the public `model` and the text of the last user message, normalised (case,
/// runs of white space): the "similar previous query" key of `match = "last_message"`.
pub fn last_message(model: &str, request: &ChatRequest) -> String {
    let text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| backstop_protocol::join_text(&m.content))
        .unwrap_or_default();
    let normalised: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    sha256_hex(
        json!({"model": model, "last": normalised.join(" ")})
            .to_string()
            .as_bytes(),
    )
}

/// The hash of a JSON request body without `stream` and `stream_options`, so that a
/// streamed repeat of a request compares equal to it. A body that is not a JSON object is
/// hashed as it is.
pub fn body(bytes: &[u8]) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut fields)) => {
            fields.remove("stream");
            fields.remove("stream_options");
            let mut hasher = Hashing(Sha256::new());
            // Writing into a hasher cannot fail; the JSON is hashed as it is written, not copied.
            let _ = serde_json::to_writer(&mut hasher, &fields);
            hex(hasher.0.finalize())
        }
        _ => sha256_hex(bytes),
    }
}

/// Feeds what is written to a SHA-256.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn parts(parts: &[ContentPart]) -> Vec<Value> {
    parts
        .iter()
        .map(|part| match part {
            ContentPart::Text(text) => json!({"text": text}),
            ContentPart::Image(ImageSource::Url(url)) => json!({"image": url}),
            ContentPart::Image(ImageSource::Base64 { media_type, data }) => {
                json!({"image": sha256_hex(data.as_bytes()), "type": media_type})
            }
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => json!({"call": id, "name": name, "arguments": arguments}),
            ContentPart::ToolResult {
                call_id,
                content,
                is_error,
            } => json!({"result": call_id, "content": self::parts(content), "error": is_error}),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_protocol::{anthropic, openai};

    #[test]
    fn the_same_question_in_two_protocols_has_one_key() {
        let openai = openai::decode_request(
            br#"{"model":"m","temperature":0.2,"max_tokens":50,"stream":true,"messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"Say hello"}]}"#,
        )
        .unwrap();
        let anthropic = anthropic::decode_request(
            br#"{"model":"m","temperature":0.2,"max_tokens":50,"system":"Be brief","messages":[{"role":"user","content":"Say hello"}]}"#,
        )
        .unwrap();
        assert_eq!(exact("m", &openai), exact("m", &anthropic));
        let mut warmer = anthropic.clone();
        warmer.temperature = Some(0.9);
        assert_ne!(exact("m", &warmer), exact("m", &anthropic));
        assert_ne!(exact("other", &anthropic), exact("m", &anthropic));
        let mut shouted = anthropic.clone();
        shouted.messages[0].content = vec![ContentPart::Text("  SAY   hello ".into())];
        assert_eq!(last_message("m", &shouted), last_message("m", &openai));
        assert_ne!(exact("m", &shouted), exact("m", &openai));
    }

    #[test]
    fn a_hash_is_sha256_in_lower_case_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_body_is_hashed_as_compact_json_with_sorted_keys() {
        // Records stored by earlier builds compare against this form: it must not change.
        assert_eq!(
            body(br#"{"stream": true, "b": 1, "a": {"y": "\u00e9", "x": [1, 2.5]}}"#),
            sha256_hex(r#"{"a":{"x":[1,2.5],"y":"é"},"b":1}"#.as_bytes())
        );
        assert_eq!(body(b"[1, 2]"), sha256_hex(b"[1, 2]"));
    }

    #[test]
    fn a_body_hash_ignores_stream() {
        assert_eq!(
            body(br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#),
            body(br#"{"model":"m","messages":[]}"#)
        );
        assert_ne!(
            body(br#"{"model":"m","messages":[1]}"#),
            body(br#"{"model":"m","messages":[]}"#)
        );
    }
}
