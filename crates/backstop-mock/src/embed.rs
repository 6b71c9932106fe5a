//! Embeddings: OpenAI's `POST /v1/embeddings` and Gemini's `:batchEmbedContents`, answered
//! with deterministic vectors (the same input always gives the same vector, different inputs
//! different ones), so tests can check that every input came back in its place.

use base64::Engine;
use serde_json::{json, Value};

use crate::ask::Ask;

/// Vector length when the request names none.
const DEFAULT_DIMENSIONS: u64 = 8;
/// The longest vector served.
const MAX_DIMENSIONS: u64 = 4096;
/// The most requests in one Gemini `batchEmbedContents` call (Gemini's own limit).
const GEMINI_MAX_BATCH: usize = 100;

/// A deterministic vector of `dimensions` values in [-1, 1] for `input`.
pub fn vector(input: &str, dimensions: u64) -> Vec<f32> {
    // FNV-1a, then a xorshift sequence seeded by it: stable across runs and platforms.
    let mut state = input.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (0..dimensions.min(MAX_DIMENSIONS))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state % 2001) as f32 - 1000.0) / 1000.0
        })
        .collect()
}

/// The texts of an OpenAI `input` (token arrays as their JSON text).
fn openai_inputs(body: &Value) -> Result<Vec<String>, String> {
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if items.first().is_some_and(Value::is_number) => {
            Ok(vec![Value::Array(items.clone()).to_string()])
        }
        Some(Value::Array(items)) if !items.is_empty() => Ok(items.iter().map(as_text).collect()),
        _ => Err("'input' is a required property".to_owned()),
    }
}

/// The texts of a Gemini `batchEmbedContents` body, and the dimensions asked for.
fn gemini_inputs(body: &Value) -> Result<Vec<(String, Option<u64>)>, String> {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| "* BatchEmbedContentsRequest.requests: requests is required".to_owned())?;
    if requests.len() > GEMINI_MAX_BATCH {
        return Err(format!(
            "* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_BATCH} requests can be in one batch"
        ));
    }
    requests
        .iter()
        .map(|r| {
            let text: String = r
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect()
                })
                .ok_or_else(|| "* EmbedContentRequest.content: content is required".to_owned())?;
            let dimensions = r.get("outputDimensionality").and_then(Value::as_u64);
            Ok((text, dimensions))
        })
        .collect()
}

fn estimate(texts: impl Iterator<Item = usize>) -> u64 {
    texts.map(|chars| (chars as u64 / 4).max(1)).sum()
}

/// What an OpenAI embeddings request asks for.
pub(crate) fn openai_ask(body: &Value) -> Result<Ask, String> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or("you must provide a model parameter")?;
    let inputs = openai_inputs(body)?;
    Ok(Ask {
        model: model.to_owned(),
        input_tokens: estimate(inputs.iter().map(String::len)),
        ..Ask::default()
    })
}

/// What a Gemini `batchEmbedContents` request asks for.
pub(crate) fn gemini_ask(model: &str, body: &Value) -> Result<Ask, String> {
    let inputs = gemini_inputs(body)?;
    Ok(Ask {
        model: model.to_owned(),
        input_tokens: estimate(inputs.iter().map(|(text, _)| text.len())),
        ..Ask::default()
    })
}

/// The OpenAI answer to `body` (already accepted by [`openai_ask`]).
pub(crate) fn openai_body(body: &Value, model: &str, input_tokens: u64) -> Vec<u8> {
    let dimensions = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_DIMENSIONS);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = openai_inputs(body)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let values = vector(input, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let usage = json!({"prompt_tokens": input_tokens, "total_tokens": input_tokens});
    serde_json::to_vec(&json!({"object": "list", "data": data, "model": model, "usage": usage}))
        .unwrap_or_default()
}

/// The Gemini answer to `body` (already accepted by [`gemini_ask`]).
pub(crate) fn gemini_body(body: &Value) -> Vec<u8> {
    let embeddings: Vec<Value> = gemini_inputs(body)
        .unwrap_or_default()
        .iter()
        .map(|(text, dimensions)| {
            json!({"values": vector(text, dimensions.unwrap_or(DEFAULT_DIMENSIONS))})
        })
        .collect();
    serde_json::to_vec(&json!({"embeddings": embeddings})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_and_distinct() {
        assert_eq!(vector("a", 8), vector("a", 8));
        assert_ne!(vector("a", 8), vector("b", 8));
        assert_eq!(vector("a", 3).len(), 3);
        assert!(vector("x", 64).iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn both_formats_answer_every_input_in_order() {
        let body = json!({"model": "e", "input": ["a", "b"], "dimensions": 4});
        let ask = openai_ask(&body).unwrap();
        let answer: Value =
            serde_json::from_slice(&openai_body(&body, "e", ask.input_tokens)).unwrap();
        assert_eq!(answer["data"][1]["index"], 1);
        assert_eq!(answer["data"][1]["embedding"].as_array().unwrap().len(), 4);
        let gemini = json!({"requests": [{"content": {"parts": [{"text": "b"}]}, "outputDimensionality": 4}]});
        gemini_ask("g", &gemini).unwrap();
        let answer: Value = serde_json::from_slice(&gemini_body(&gemini)).unwrap();
        let values: Vec<f32> =
            serde_json::from_value(answer["embeddings"][0]["values"].clone()).unwrap();
        assert_eq!(values, vector("b", 4));
        assert!(openai_ask(&json!({"model": "e"})).is_err());
        assert!(gemini_ask("g", &json!({"requests": []})).is_err());
    }
}
