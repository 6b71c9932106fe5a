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
    let (open, insert) = stream_usage_at(body)?;
    let pieces = [
        Piece::Body(0..open + 1),
        Piece::Insert(insert),
        Piece::Body(open + 1..body.len()),
    ];
    Ok(concat(body, &pieces, b""))
}

/// Returns `body` with the value of its top-level `"model"` key replaced by `new_model`.
///
/// Only the bytes of that string value change; `"model"` keys nested deeper (inside messages or
/// tool schemas) are left alone. Every top-level `"model"` key is rewritten if the body repeats it.
/// Fails with [`ProtocolError::MissingField`] when there is no top-level `model` key, and with
/// [`ProtocolError::Invalid`] when its value is not a string or the body is not a JSON object.
pub fn rewrite_model(body: &[u8], new_model: &str) -> Result<Bytes, ProtocolError> {
    let quoted = serde_json::to_string(new_model)?;
    Ok(concat(body, &edits(body, false)?, quoted.as_bytes()))
}

/// The body of a request forwarded in the caller's own protocol: [`rewrite_model`], and with
/// `stream_usage` also [`with_stream_usage`], without copying the caller's bytes. The result
/// is a list of slices of `body` around the new model name (and the inserted key), to be sent
/// one after the other: a 1 MB prompt is never copied to change a model name of a few bytes.
pub fn forward_parts(
    body: &Bytes,
    new_model: &str,
    stream_usage: bool,
) -> Result<Vec<Bytes>, ProtocolError> {
    let quoted = Bytes::from(serde_json::to_string(new_model)?);
    let parts = edits(body, stream_usage)?
        .into_iter()
        .map(|piece| match piece {
            Piece::Body(range) => body.slice(range),
            Piece::Model => quoted.clone(),
            Piece::Insert(insert) => Bytes::from_static(insert),
        })
        .filter(|part| !part.is_empty())
        .collect();
    Ok(parts)
}

/// One piece of a rewritten body.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// These bytes of the original body.
    Body(std::ops::Range<usize>),
    /// The new model name, quoted.
    Model,
    /// Bytes inserted.
    Insert(&'static [u8]),
}

/// The pieces of `body` with its top-level `model` values replaced (and the usage option
/// inserted first with `stream_usage`), in order.
fn edits(body: &[u8], stream_usage: bool) -> Result<Vec<Piece>, ProtocolError> {
    let spans = model_spans(body)?;
    if spans.is_empty() {
        return Err(ProtocolError::MissingField("model"));
    }
    let mut pieces = Vec::with_capacity(2 * spans.len() + 3);
    let mut pos = 0;
    if stream_usage {
        let (open, insert) = stream_usage_at(body)?;
        pieces.push(Piece::Body(0..open + 1));
        pieces.push(Piece::Insert(insert));
        pos = open + 1;
    }
    for (start, end) in spans {
        pieces.push(Piece::Body(pos..start));
        pieces.push(Piece::Model);
        pos = end;
    }
    pieces.push(Piece::Body(pos..body.len()));
    Ok(pieces)
}

/// Where the opening brace of `body` is, and the usage option to insert after it.
fn stream_usage_at(body: &[u8]) -> Result<(usize, &'static [u8]), ProtocolError> {
    let open = body
        .iter()
        .position(|b| *b == b'{')
        .ok_or_else(|| ProtocolError::Invalid("the body is not a JSON object".into()))?;
    let empty = body[open + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let insert: &[u8] = if empty {
        br#""stream_options":{"include_usage":true}"#
    } else {
        br#""stream_options":{"include_usage":true},"#
    };
    Ok((open, insert))
}

/// The pieces joined into one buffer.
fn concat(body: &[u8], pieces: &[Piece], model: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + model.len() + 64);
    for piece in pieces {
        out.extend_from_slice(match piece {
            Piece::Body(range) => &body[range.clone()],
            Piece::Model => model,
            Piece::Insert(insert) => insert,
        });
    }
    Bytes::from(out)
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

#[cfg(test)]
mod forward_parts_tests {
    use super::*;

    fn joined(parts: &[Bytes]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn parts_join_into_the_copying_rewrites() {
        let body = Bytes::from_static(
            br#"{"messages":[{"role":"user","content":"a \"model\": x"}],"model":"smart","stream":true}"#,
        );
        let parts = forward_parts(&body, "gpt-4o", false).unwrap();
        assert_eq!(joined(&parts), &rewrite_model(&body, "gpt-4o").unwrap()[..]);
        let parts = forward_parts(&body, "gpt-4o", true).unwrap();
        let both = with_stream_usage(&rewrite_model(&body, "gpt-4o").unwrap()).unwrap();
        assert_eq!(joined(&parts), &both[..]);
    }

    #[test]
    fn parts_are_slices_of_the_body_not_copies() {
        let body = Bytes::from(format!(
            r#"{{"model":"m","messages":"{}"}}"#,
            "x".repeat(4096)
        ));
        let parts = forward_parts(&body, "upstream", false).unwrap();
        let tail = parts.last().unwrap();
        assert!(tail.len() > 4096);
        let offset = tail.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(&body[offset..], &tail[..]);
    }

    #[test]
    fn parts_refuse_what_the_rewrite_refuses() {
        let body = Bytes::from_static(br#"{"messages":[]}"#);
        assert!(matches!(
            forward_parts(&body, "m", false),
            Err(ProtocolError::MissingField("model"))
        ));
        assert!(forward_parts(&Bytes::from_static(b"[1]"), "m", true).is_err());
    }
}
