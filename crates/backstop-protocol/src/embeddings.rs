//! Embeddings in OpenAI's shape (`POST /v1/embeddings`), and their translation to and from
//! Gemini's `batchEmbedContents`.
//!
//! A request's `input` is a string, an array of strings, an array of token ids or an array of
//! token-id arrays; `encoding_format` is `float` (the default) or `base64` (little-endian `f32`
//! values); `dimensions` asks for shorter vectors. OpenAI-compatible upstreams get the request
//! as the client wrote it; Gemini gets one `EmbedContentRequest` per input text, and its answer
//! comes back as an OpenAI list.

use base64::Engine;
use serde_json::{json, Value};

use crate::json::{obj, parse_object};
use crate::{InvalidRequest, Protocol, ProtocolError, Usage};

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// What is to be embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingInput {
    /// Texts, one vector each.
    Texts(Vec<String>),
    /// Token-id arrays, one vector each (only OpenAI-compatible upstreams read them).
    Tokens(Vec<Vec<u64>>),
}

impl EmbeddingInput {
    /// How many vectors the answer holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Texts(texts) => texts.len(),
            Self::Tokens(tokens) => tokens.len(),
        }
    }

    /// Whether there is nothing to embed (never true of a validated request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EmbeddingsRequest {
    /// The request in parts of at most `max` inputs each, in order (the whole request when it
    /// fits; `max` 0 counts as 1).
    pub fn split(&self, max: usize) -> Vec<EmbeddingsRequest> {
        let max = max.max(1);
        let part = |input| EmbeddingsRequest {
            input,
            ..self.clone()
        };
        match &self.input {
            _ if self.input.len() <= max => vec![self.clone()],
            EmbeddingInput::Texts(texts) => texts
                .chunks(max)
                .map(|c| part(EmbeddingInput::Texts(c.to_vec())))
                .collect(),
            EmbeddingInput::Tokens(tokens) => tokens
                .chunks(max)
                .map(|c| part(EmbeddingInput::Tokens(c.to_vec())))
                .collect(),
        }
    }
}

/// A validated embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsRequest {
    /// The public model asked for.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `encoding_format: "base64"`.
    pub base64: bool,
    /// `dimensions`, when given.
    pub dimensions: Option<u64>,
}

fn field_error(param: &str, message: &str) -> InvalidRequest {
    InvalidRequest {
        param: Some(param.to_owned()),
        message: message.to_owned(),
    }
}

/// Checks an embeddings request body, naming the offending field.
pub fn validate_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, InvalidRequest> {
    let o = parse_object(body).map_err(|error| InvalidRequest {
        param: None,
        message: error.to_string(),
    })?;
    let model = match o.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(field_error("model", "is required"))
        }
        Some(_) => return Err(field_error("model", "must be a string")),
    };
    let input = match o.get("input") {
        None | Some(Value::Null) => return Err(field_error("input", "is required")),
        Some(v) => read_input(v)?,
    };
    if input.is_empty() {
        return Err(field_error("input", "must not be empty"));
    }
    if input.len() > MAX_EMBEDDING_INPUTS {
        return Err(field_error(
            "input",
            &format!("may hold at most {MAX_EMBEDDING_INPUTS} items"),
        ));
    }
    let base64 = match o.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(field_error(
                "encoding_format",
                "must be `float` or `base64`",
            ))
        }
    };
    let dimensions = match o.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => return Err(field_error("dimensions", "must be a positive integer")),
        },
    };
    if o.get("user")
        .is_some_and(|u| !u.is_string() && !u.is_null())
    {
        return Err(field_error("user", "must be a string"));
    }
    Ok(EmbeddingsRequest {
        model,
        input,
        base64,
        dimensions,
    })
}

fn read_input(v: &Value) -> Result<EmbeddingInput, InvalidRequest> {
    let not_empty = |s: &str, param: &str| {
        if s.is_empty() {
            Err(field_error(param, "must not be an empty string"))
        } else {
            Ok(s.to_owned())
        }
    };
    let tokens = |items: &[Value], param: &str| {
        items
            .iter()
            .map(|t| {
                t.as_u64()
                    .ok_or_else(|| field_error(param, "must hold only non-negative token ids"))
            })
            .collect::<Result<Vec<u64>, _>>()
    };
    let shape = "must be a string, an array of strings, an array of token ids or an array of token-id arrays";
    match v {
        Value::String(s) => Ok(EmbeddingInput::Texts(vec![not_empty(s, "input")?])),
        Value::Array(items) => match items.first() {
            None => Ok(EmbeddingInput::Texts(Vec::new())),
            Some(Value::String(_)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => not_empty(s, &format!("input[{i}]")),
                    _ => Err(field_error(&format!("input[{i}]"), "must be a string")),
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Texts),
            Some(Value::Number(_)) => Ok(EmbeddingInput::Tokens(vec![tokens(items, "input")?])),
            Some(Value::Array(_)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let param = format!("input[{i}]");
                    match item {
                        Value::Array(inner) if !inner.is_empty() => tokens(inner, &param),
                        _ => Err(field_error(
                            &param,
                            "must be a non-empty array of token ids",
                        )),
                    }
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Tokens),
            Some(_) => Err(field_error("input", shape)),
        },
        _ => Err(field_error("input", shape)),
    }
}

/// A Gemini `batchEmbedContents` body for `req` on `upstream_model`. Token-id input has no
/// Gemini equivalent.
pub fn encode_gemini_embeddings(
    req: &EmbeddingsRequest,
    upstream_model: &str,
) -> Result<Vec<u8>, ProtocolError> {
    let EmbeddingInput::Texts(texts) = &req.input else {
        return Err(ProtocolError::Unsupported {
            param: "input (token ids)".into(),
            target: Protocol::Gemini,
        });
    };
    let name = format!("models/{upstream_model}");
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut one = json!({"model": name, "content": {"parts": [{"text": text}]}});
            if let Some(d) = req.dimensions {
                one["outputDimensionality"] = d.into();
            }
            one
        })
        .collect();
    Ok(json!({"requests": requests}).to_string().into_bytes())
}

/// The vectors of a Gemini `batchEmbedContents` answer, checked to number `expected`.
pub fn decode_gemini_embeddings(
    body: &[u8],
    expected: usize,
) -> Result<Vec<Vec<f64>>, ProtocolError> {
    let o = parse_object(body)?;
    let embeddings = o
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or(ProtocolError::MissingField("embeddings"))?;
    if embeddings.len() != expected {
        return Err(ProtocolError::Invalid(format!(
            "{} embeddings for {expected} inputs",
            embeddings.len()
        )));
    }
    embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let values = obj(e, &format!("embeddings[{i}]"))?
                .get("values")
                .and_then(Value::as_array)
                .ok_or(ProtocolError::MissingField("values"))?;
            values
                .iter()
                .map(|v| {
                    v.as_f64().ok_or_else(|| {
                        ProtocolError::Invalid(format!("embeddings[{i}].values holds a non-number"))
                    })
                })
                .collect()
        })
        .collect()
}

/// An OpenAI embeddings list for `vectors`, as floats or base64 (little-endian `f32`).
pub fn encode_openai_embeddings(
    vectors: &[Vec<f64>],
    model: &str,
    base64: bool,
    usage: &Usage,
) -> Vec<u8> {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}})
    .to_string()
    .into_bytes()
}

/// The usage of an OpenAI embeddings answer, checked to hold `expected` vectors.
pub fn read_openai_embeddings(body: &[u8], expected: usize) -> Result<Usage, ProtocolError> {
    let o = parse_object(body)?;
    let data = o
        .get("data")
        .and_then(Value::as_array)
        .ok_or(ProtocolError::MissingField("data"))?;
    if data.len() != expected {
        return Err(ProtocolError::Invalid(format!(
            "{} embeddings for {expected} inputs",
            data.len()
        )));
    }
    let prompt = o
        .get("usage")
        .and_then(|u| u.get("prompt_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(Usage {
        input_tokens: prompt,
        ..Usage::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> Result<EmbeddingsRequest, InvalidRequest> {
        validate_embeddings(v.to_string().as_bytes())
    }

    #[test]
    fn every_input_shape_is_read() {
        let r = check(json!({"model": "e", "input": "a"})).unwrap();
        assert_eq!(r.input, EmbeddingInput::Texts(vec!["a".into()]));
        let r = check(json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 4})).unwrap();
        assert_eq!(r.input.len(), 2);
        assert!(r.base64);
        assert_eq!(r.dimensions, Some(4));
        let r = check(json!({"model": "e", "input": [1, 2, 3]})).unwrap();
        assert_eq!(r.input, EmbeddingInput::Tokens(vec![vec![1, 2, 3]]));
        let r = check(json!({"model": "e", "input": [[1], [2, 3]]})).unwrap();
        assert_eq!(r.input.len(), 2);
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (body, param) in [
            (json!({"input": "a"}), "model"),
            (json!({"model": "e"}), "input"),
            (json!({"model": "e", "input": []}), "input"),
            (json!({"model": "e", "input": ""}), "input"),
            (json!({"model": "e", "input": ["a", 1]}), "input[1]"),
            (json!({"model": "e", "input": [[1], []]}), "input[1]"),
            (
                json!({"model": "e", "input": "a", "encoding_format": "hex"}),
                "encoding_format",
            ),
            (
                json!({"model": "e", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
        ] {
            let error = check(body.clone()).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{body}: {error}");
        }
    }

    #[test]
    fn a_large_request_splits_in_order() {
        let texts: Vec<String> = (0..250).map(|i| i.to_string()).collect();
        let r = check(json!({"model": "e", "input": texts, "dimensions": 3})).unwrap();
        let parts = r.split(100);
        assert_eq!(
            parts.iter().map(|p| p.input.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(parts[2].input, EmbeddingInput::Texts(texts[200..].to_vec()));
        assert!(parts.iter().all(|p| p.dimensions == Some(3)));
        assert_eq!(r.split(2048), vec![r.clone()]);
    }

    #[test]
    fn gemini_round_trip() {
        let r = check(json!({"model": "e", "input": ["a", "b"], "dimensions": 2})).unwrap();
        let body: Value =
            serde_json::from_slice(&encode_gemini_embeddings(&r, "text-embedding-004").unwrap())
                .unwrap();
        assert_eq!(body["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(body["requests"][0]["model"], "models/text-embedding-004");
        assert_eq!(body["requests"][0]["outputDimensionality"], 2);
        let answer = br#"{"embeddings":[{"values":[0.5,-1]},{"values":[0.25,1]}]}"#;
        let vectors = decode_gemini_embeddings(answer, 2).unwrap();
        assert_eq!(vectors[1], vec![0.25, 1.0]);
        assert!(decode_gemini_embeddings(answer, 3).is_err());
        let tokens = check(json!({"model": "e", "input": [1, 2]})).unwrap();
        assert!(encode_gemini_embeddings(&tokens, "m").is_err());
    }

    #[test]
    fn base64_holds_little_endian_f32() {
        let out = encode_openai_embeddings(&[vec![1.0, -2.0]], "m", true, &Usage::default());
        let v: Value = serde_json::from_slice(&out).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes[..4], 1.0f32.to_le_bytes());
        assert_eq!(bytes[4..], (-2.0f32).to_le_bytes());
        let floats = encode_openai_embeddings(&[vec![0.5]], "m", false, &Usage::default());
        let v: Value = serde_json::from_slice(&floats).unwrap();
        assert_eq!(v["data"][0]["embedding"][0], 0.5);
        assert_eq!(read_openai_embeddings(&floats, 1).unwrap().input_tokens, 0);
        assert!(read_openai_embeddings(&floats, 2).is_err());
    }
}
