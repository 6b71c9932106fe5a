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
//! order included, reaches the upstream unchanged. Where the envelope already knows where
//! `model` is ([`Envelope::model_span`]), [`forward_pieces`] does the same without the scan and
//! without a copy: the upstream body is slices of the caller's around the new name.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;

use crate::validate::Key;
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
    /// Where the value of the top-level `model` is in the body it was read from: the bytes of
    /// the JSON string, quotes included. `None` when the name holds escapes (then a rewrite
    /// finds it by a scan).
    pub model_span: Option<Range<usize>>,
    /// Whether the body has a top-level key that can ask for the shape of the answer
    /// (`tools`, OpenAI's `response_format`, Anthropic's `output_config`); `true` where
    /// that is not known.
    pub may_ask_for_shape: bool,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    model: Option<Key<'a>>,
    stream: Option<bool>,
    stream_options: Option<RawStreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    tools: Option<serde::de::IgnoredAny>,
    response_format: Option<serde::de::IgnoredAny>,
    output_config: Option<serde::de::IgnoredAny>,
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
    let Key(model) = raw.model.ok_or(ProtocolError::MissingField("model"))?;
    Ok(Envelope {
        model_span: string_span(body, &model),
        model: model.into_owned(),
        may_ask_for_shape: raw.tools.is_some()
            || raw.response_format.is_some()
            || raw.output_config.is_some(),
        stream: raw.stream.unwrap_or(false),
        has_stream_options: raw.stream_options.is_some(),
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens: raw.max_tokens.or(raw.max_completion_tokens),
    })
}

/// The member that asks an OpenAI stream for its final usage chunk.
const STREAM_USAGE: &[u8] = br#""stream_options":{"include_usage":true}"#;

/// Returns an OpenAI request `body` that also asks for the final usage chunk of a stream
/// (`"stream_options":{"include_usage":true}` inserted as its first key), so that a
/// gateway can count the tokens of streams whose client did not ask for them. Only for
/// bodies without `stream_options` ([`Envelope::has_stream_options`] is false).
pub fn with_stream_usage(body: &[u8]) -> Result<Bytes, ProtocolError> {
    let edits = vec![stream_usage_edit(body)?];
    Ok(concat(body, &edits))
}

/// Returns `body` with the value of its top-level `"model"` key replaced by `new_model`.
///
/// Only the bytes of that string value change; `"model"` keys nested deeper (inside messages or
/// tool schemas) are left alone. Every top-level `"model"` key is rewritten if the body repeats it.
/// Fails with [`ProtocolError::MissingField`] when there is no top-level `model` key, and with
/// [`ProtocolError::Invalid`] when its value is not a string or the body is not a JSON object.
pub fn rewrite_model(body: &[u8], new_model: &str) -> Result<Bytes, ProtocolError> {
    let edits = model_edits(body, None, new_model)?;
    Ok(concat(body, &edits))
}

/// The body of `envelope` for an upstream of the same protocol, as pieces to send one after
/// the other: [`rewrite_model`] to `new_model`, then [`with_stream_usage`] when `ask_usage`,
/// with every unchanged byte a slice of `body` rather than a copy. Uses
/// [`Envelope::model_span`] when it is known, else scans for `model` as [`rewrite_model`] does.
pub fn forward_pieces(
    body: &Bytes,
    envelope: &Envelope,
    new_model: &str,
    ask_usage: bool,
) -> Result<Vec<Bytes>, ProtocolError> {
    let mut edits = Vec::with_capacity(2);
    if ask_usage {
        edits.push(stream_usage_edit(body)?);
    }
    edits.extend(model_edits(body, envelope.model_span.clone(), new_model)?);
    let mut pieces = Vec::with_capacity(2 * edits.len() + 1);
    let mut pos = 0;
    for (range, insert) in edits {
        if range.start > pos {
            pieces.push(body.slice(pos..range.start));
        }
        pieces.push(insert);
        pos = range.end;
    }
    if pos < body.len() {
        pieces.push(body.slice(pos..));
    }
    Ok(pieces)
}

/// A replacement of the bytes in a range of a body (an insertion when the range is empty).
type Edit = (Range<usize>, Bytes);

/// `body` with `edits` (in order, not overlapping) applied, in one new buffer.
fn concat(body: &[u8], edits: &[Edit]) -> Bytes {
    let added: usize = edits.iter().map(|(_, insert)| insert.len()).sum();
    let mut out = Vec::with_capacity(body.len() + added);
    let mut pos = 0;
    for (range, insert) in edits {
        out.extend_from_slice(&body[pos..range.start]);
        out.extend_from_slice(insert);
        pos = range.end;
    }
    out.extend_from_slice(&body[pos..]);
    Bytes::from(out)
}

/// The insertion of [`STREAM_USAGE`] as the first member of the body's object.
fn stream_usage_edit(body: &[u8]) -> Result<Edit, ProtocolError> {
    let open = body
        .iter()
        .position(|b| *b == b'{')
        .ok_or_else(|| ProtocolError::Invalid("the body is not a JSON object".into()))?;
    let rest = &body[open + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut insert = STREAM_USAGE.to_vec();
    if !empty {
        insert.push(b',');
    }
    Ok((open + 1..open + 1, Bytes::from(insert)))
}

/// The replacements of the top-level `model` value(s) by `new_model`: at `known` when given,
/// else wherever a scan finds them.
fn model_edits(
    body: &[u8],
    known: Option<Range<usize>>,
    new_model: &str,
) -> Result<Vec<Edit>, ProtocolError> {
    let spans = match known {
        Some(span) => vec![span],
        None => model_spans(body)?,
    };
    if spans.is_empty() {
        return Err(ProtocolError::MissingField("model"));
    }
    let quoted = Bytes::from(serde_json::to_vec(new_model)?);
    Ok(spans
        .into_iter()
        .map(|span| (span, quoted.clone()))
        .collect())
}

/// Where `value`, a string borrowed from `body`, is in it: its bytes with the quotes around
/// them. `None` for a string that is not a slice of `body` (one decoded from escapes).
pub(crate) fn string_span(body: &[u8], value: &str) -> Option<Range<usize>> {
    let start = (value.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start.checked_add(value.len())?;
    let quoted = start.checked_sub(1)?..end.checked_add(1)?;
    let inside = body.get(quoted.clone())?;
    (inside.first() == Some(&b'"')
        && inside.last() == Some(&b'"')
        && &inside[1..inside.len() - 1] == value.as_bytes())
    .then_some(quoted)
}

/// Byte ranges (quotes included) of every top-level `"model"` string value.
fn model_spans(body: &[u8]) -> Result<Vec<Range<usize>>, ProtocolError> {
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
            spans.push(value_start..s.pos);
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
                model_span: Some(68..75),
                may_ask_for_shape: false,
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
mod forward_tests {
    use super::*;
    use crate::{validate_request, Protocol};

    fn joined(pieces: &[Bytes]) -> String {
        String::from_utf8(pieces.concat()).unwrap()
    }

    #[test]
    fn validation_and_the_envelope_know_where_model_is() {
        let body = br#"{"messages":[{"role":"user","content":"a \"model\": \"x\"","model":"no"}], "model" : "smart"}"#;
        let validated = validate_request(Protocol::OpenAi, body).unwrap();
        let span = validated.model_span.clone().unwrap();
        assert_eq!(&body[span.clone()], br#""smart""#);
        assert_eq!(read_envelope(body).unwrap().model_span, Some(span.clone()));
        assert_eq!(model_spans(body).unwrap(), vec![span]);
        let escaped = br#"{"model":"sm\u0061rt","messages":[]}"#;
        assert_eq!(read_envelope(escaped).unwrap().model_span, None);
    }

    #[test]
    fn pieces_are_the_rewritten_body_and_slices_of_the_original() {
        let body = Bytes::from_static(
            br#" {"stream":true,"model":"smart","messages":[{"role":"user","content":"hi"}]}"#,
        );
        let envelope = validate_request(Protocol::OpenAi, &body).unwrap();
        for ask_usage in [false, true] {
            let pieces = forward_pieces(&body, &envelope, "gpt-\"4o\"", ask_usage).unwrap();
            let mut expected = rewrite_model(&body, "gpt-\"4o\"").unwrap();
            if ask_usage {
                expected = with_stream_usage(&expected).unwrap();
            }
            assert_eq!(joined(&pieces).as_bytes(), &expected[..]);
            let tail = pieces.last().unwrap();
            assert_eq!(tail.as_ptr(), body[body.len() - tail.len()..].as_ptr());
        }
    }

    #[test]
    fn pieces_without_a_known_span_scan_for_model() {
        let body = Bytes::from_static(br#"{"mod\u0065l":"\u0061","x":[]}"#);
        let envelope = read_envelope(&body).unwrap();
        assert_eq!(envelope.model_span, None);
        let pieces = forward_pieces(&body, &envelope, "b", false).unwrap();
        assert_eq!(joined(&pieces), r#"{"mod\u0065l":"b","x":[]}"#);
        let no_model = Bytes::from_static(br#"{"x":1}"#);
        assert!(matches!(
            forward_pieces(&no_model, &envelope_without_span(), "b", false),
            Err(ProtocolError::MissingField("model"))
        ));
    }

    fn envelope_without_span() -> Envelope {
        Envelope {
            model: "m".into(),
            stream: false,
            include_usage: false,
            max_tokens: None,
            has_stream_options: false,
            model_span: None,
            may_ask_for_shape: false,
        }
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
