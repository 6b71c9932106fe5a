//! The passthrough hot path: read the routing envelope, rewrite the model name.
//!
//! When a client and its upstream speak the same protocol, the gateway forwards the request body
//! as it came. It needs only a handful of fields to route (`model`, `stream`, the OpenAI
//! `stream_options.include_usage` and `max_tokens`), so [`read_envelope`] deserialises exactly those
//! into a small struct and lets serde skip everything else without building a tree. The body is
//! still fully validated as JSON, so malformed input is rejected before any upstream call.
//!
//! [`rewrite_model`] then swaps the top-level `"model"` string for the upstream model name with a
//! single scan that understands JSON strings and nesting: every other byte, whitespace and key
//! order included, reaches the upstream unchanged.

use bytes::Bytes;
use serde::Deserialize;

use crate::ProtocolError;

/// The fields of a request body that routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The model the client asked for (a public model name).
    pub model: String,
    /// Whether the client asked for a streamed (SSE) response.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: the client wants a final usage chunk.
    pub include_usage: bool,
    /// `max_tokens` (or OpenAI's newer `max_completion_tokens`), when given.
    pub max_tokens: Option<u64>,
    /// Whether the body has an OpenAI `stream_options` object at all.
    pub has_stream_options: bool,
}

#[derive(Deserialize)]
struct RawEnvelope {
    model: Option<String>,
    stream: Option<bool>,
    stream_options: Option<RawStreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct RawStreamOptions {
    include_usage: Option<bool>,
}

/// Reads the routing envelope of a request body without deserialising the rest of it.
///
/// Fails with [`ProtocolError::Json`] (with serde's line/column) on malformed JSON or a field of the
/// wrong type, and with [`ProtocolError::MissingField`] when `model` is absent or null.
pub fn read_envelope(body: &[u8]) -> Result<Envelope, ProtocolError> {
    let raw: RawEnvelope = serde_json::from_slice(body)?;
    let model = raw.model.ok_or(ProtocolError::MissingField("model"))?;
    Ok(Envelope {
        model,
        stream: raw.stream.unwrap_or(false),
        has_stream_options: raw.stream_options.is_some(),
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens: raw.max_tokens.or(raw.max_completion_tokens),
    })
}

/// Returns an OpenAI request `body` that also asks for the final usage chunk of a stream
/// (`"stream_options":{"include_usage":true}` inserted as its first key), so that a
/// gateway can count the tokens of streams whose client did not ask for them. Only for
/// bodies without `stream_options` ([`Envelope::has_stream_options`] is false).
pub fn with_stream_usage(body: &[u8]) -> Result<Bytes, ProtocolError> {
    let open = body
        .iter()
        .position(|b| *b == b'{')
        .ok_or_else(|| ProtocolError::Invalid("the body is not a JSON object".into()))?;
    let rest = &body[open + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let insert: &[u8] = if empty {
        br#""stream_options":{"include_usage":true}"#
    } else {
        br#""stream_options":{"include_usage":true},"#
    };
    let mut out = Vec::with_capacity(body.len() + insert.len());
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(insert);
    out.extend_from_slice(rest);
    Ok(Bytes::from(out))
}

/// Returns `body` with the value of its top-level `"model"` key replaced by `new_model`.
///
/// Only the bytes of that string value change; `"model"` keys nested deeper (inside messages or
/// tool schemas) are left alone. Every top-level `"model"` key is rewritten if the body repeats it.
/// Fails with [`ProtocolError::MissingField`] when there is no top-level `model` key, and with
/// [`ProtocolError::Invalid`] when its value is not a string or the body is not a JSON object.
pub fn rewrite_model(body: &[u8], new_model: &str) -> Result<Bytes, ProtocolError> {
    let spans = model_spans(body)?;
    if spans.is_empty() {
        return Err(ProtocolError::MissingField("model"));
    }
    let quoted = serde_json::to_string(new_model)?;
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    let mut pos = 0;
    for (start, end) in spans {
        out.extend_from_slice(&body[pos..start]);
        out.extend_from_slice(quoted.as_bytes());
        pos = end;
    }
    out.extend_from_slice(&body[pos..]);
    Ok(Bytes::from(out))
}

/// Byte ranges (quotes included) of every top-level `"model"` string value.
fn model_spans(body: &[u8]) -> Result<Vec<(usize, usize)>, ProtocolError> {
    let mut s = Scanner { buf: body, pos: 0 };
    let mut spans = Vec::new();
    s.skip_ws();
    s.expect(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        return Ok(spans);
    }
    loop {
        s.skip_ws();
        let (key_start, key_end, escaped) = s.string()?;
        let is_model = key_is_model(&body[key_start..key_end], escaped);
        s.skip_ws();
        s.expect(b':')?;
        s.skip_ws();
        let value_start = s.pos;
        if is_model {
            if s.peek() != Some(b'"') {
                return Err(ProtocolError::Invalid("`model` must be a string".into()));
            }
            s.string()?;
            spans.push((value_start, s.pos));
        } else {
            s.skip_value()?;
        }
        s.skip_ws();
        match s.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(spans),
            _ => return Err(s.error("expected `,` or `}` in the top-level object")),
        }
    }
}

/// Whether a key (bytes between the quotes) spells `model`, decoding escapes only when present.
fn key_is_model(raw: &[u8], escaped: bool) -> bool {
    if !escaped {
        return raw == b"model";
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).is_ok_and(|k| k == "model")
}

/// A minimal JSON scanner: enough structure to find value boundaries, no allocation.
struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> ProtocolError {
        ProtocolError::Invalid(format!("{what} at byte {}", self.pos))
    }

    fn expect(&mut self, want: u8) -> Result<(), ProtocolError> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", want as char)))
        }
    }

    /// Consumes a string starting at the opening quote. Returns the content range (without
    /// quotes) and whether it contains escapes.
    fn string(&mut self) -> Result<(usize, usize, bool), ProtocolError> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        while let Some(i) = self.buf[self.pos..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
        {
            self.pos += i;
            if self.buf[self.pos] == b'"' {
                let end = self.pos;
                self.pos += 1;
                return Ok((start, end, escaped));
            }
            escaped = true;
            // A backslash and the character it escapes.
            self.pos = (self.pos + 2).min(self.buf.len());
        }
        self.pos = self.buf.len();
        Err(self.error("unterminated string"))
    }

    /// Skips one value of any kind.
    fn skip_value(&mut self) -> Result<(), ProtocolError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => self.skip_nested(),
            Some(_) => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    Err(self.error("expected a value"))
                } else {
                    Ok(())
                }
            }
            None => Err(self.error("unexpected end of body")),
        }
    }

    /// Skips an object or array, tracking depth and stepping over strings.
    fn skip_nested(&mut self) -> Result<(), ProtocolError> {
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.error("unterminated object or array"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_envelope_fields() {
        let body = br#"{"messages":[{"role":"user","content":"x","model":"inner"}],"model":"smart",
            "stream":true,"stream_options":{"include_usage":true},"max_tokens":77,"extra":{"a":[1,2]}}"#;
        let env = read_envelope(body).unwrap();
        assert_eq!(
            env,
            Envelope {
                model: "smart".into(),
                stream: true,
                include_usage: true,
                max_tokens: Some(77),
                has_stream_options: true,
            }
        );
    }

    #[test]
    fn envelope_defaults_and_max_completion_tokens() {
        let env =
            read_envelope(br#"{"model":"m","stream":null,"max_completion_tokens":5}"#).unwrap();
        assert!(!env.stream && !env.include_usage);
        assert_eq!(env.max_tokens, Some(5));
    }

    #[test]
    fn envelope_errors() {
        let err = read_envelope(b"{\"model\": \"m\",\n  \"stream\": tru}").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(matches!(err, ProtocolError::Json { .. }));
        assert!(matches!(
            read_envelope(br#"{"messages":[]}"#),
            Err(ProtocolError::MissingField("model"))
        ));
        assert!(matches!(
            read_envelope(br#"{"model":"m","stream":"yes"}"#),
            Err(ProtocolError::Json { .. })
        ));
        assert!(read_envelope(b"[1]").is_err());
    }

    fn rewrite(body: &str, model: &str) -> String {
        String::from_utf8(rewrite_model(body.as_bytes(), model).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn rewrite_keeps_other_bytes() {
        let body = "{ \"messages\" : [ {\"model\":\"no\", \"content\": \"a \\\"model\\\": \\\"x\\\"\"} ],\n\t\"model\" :  \"smart\" ,\"tools\":{\"model\":\"n\"} }";
        let out = rewrite(body, "gpt-4o");
        assert_eq!(out, body.replace("\"smart\"", "\"gpt-4o\""));
    }

    #[test]
    fn rewrite_escaped_values_and_keys() {
        assert_eq!(
            rewrite(r#"{"model":"a\"b\\","x":1}"#, "c\"d"),
            r#"{"model":"c\"d","x":1}"#
        );
        assert_eq!(
            rewrite(r#"{"mod\u0065l":"a","x":[]}"#, "b"),
            r#"{"mod\u0065l":"b","x":[]}"#
        );
        assert_eq!(
            rewrite(r#"{"a":"}]\\","model":"a"}"#, "z"),
            r#"{"a":"}]\\","model":"z"}"#
        );
        assert_eq!(rewrite("{\"model\":\"é\"}", "ü"), "{\"model\":\"ü\"}");
    }

    #[test]
    fn rewrite_errors() {
        assert!(matches!(
            rewrite_model(br#"{"messages":[{"model":"x"}]}"#, "m"),
            Err(ProtocolError::MissingField("model"))
        ));
        assert!(matches!(
            rewrite_model(br#"{"model":5}"#, "m"),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(rewrite_model(br#"{"model":"x""#, "m").is_err());
        assert!(rewrite_model(br#"["model"]"#, "m").is_err());
        assert!(rewrite_model(br#"{"a":"unterminated}"#, "m").is_err());
        assert!(matches!(
            rewrite_model(b"{}", "m"),
            Err(ProtocolError::MissingField("model"))
        ));
    }
}

#[cfg(test)]
mod stream_usage_tests {
    use super::*;

    #[test]
    fn asks_for_stream_usage_without_touching_the_rest() {
        let body = br#" {"model":"m","stream":true}"#;
        let out = with_stream_usage(body).unwrap();
        assert_eq!(
            &out[..],
            br#" {"stream_options":{"include_usage":true},"model":"m","stream":true}"#
        );
        let envelope = read_envelope(&out).unwrap();
        assert!(envelope.include_usage && envelope.has_stream_options);
        assert!(!read_envelope(body).unwrap().has_stream_options);
        assert_eq!(
            &with_stream_usage(b"{ }").unwrap()[..],
            br#"{"stream_options":{"include_usage":true} }"#
        );
    }
}
