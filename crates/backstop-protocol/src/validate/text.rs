//! Strings of the request body, decoded only when a rule reads them.
//!
//! Most of a large request is free text (a prompt, a system prompt, a tool's result, a base64
//! image), and validation only needs to know that it is a string. Decoding it (every line of
//! prose holds a `\n`) would copy it into serde_json's scratch buffer and then into the tree; a
//! [`Str`] read from one of the free-text keys instead keeps the string as written, which
//! serde_json scans in place (checking its escapes, hex digits and control characters), and
//! decodes it on first read. The one thing that scan does not check, a `\u` escape of half a
//! UTF-16 surrogate pair, [`Str::written`] checks.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

/// The keys whose string values are kept as written: free text and data, which no rule reads.
/// A container under one of these keys is parsed as usual (its value is scanned twice, once to
/// find its end and once to build it).
pub(crate) const TEXT_KEYS: [&str; 8] = [
    "content",
    "text",
    "system",
    "thinking",
    "arguments",
    "input",
    "data",
    "url",
];

/// A JSON string: decoded, or kept as written until first read.
pub(crate) struct Str<'a> {
    /// The string token as written, quotes included, when it was kept so.
    written: Option<&'a str>,
    /// Its value, once decoded (at once for a string decoded by the parser).
    decoded: OnceCell<Cow<'a, str>>,
}

impl<'a> Str<'a> {
    /// A string the parser decoded.
    pub(crate) fn decoded(value: Cow<'a, str>) -> Self {
        Self {
            written: None,
            decoded: OnceCell::from(value),
        }
    }

    /// A string token as written (quotes included) that serde_json has scanned; `None` when it
    /// holds a lone surrogate, which its value as a Rust string cannot.
    pub(crate) fn written(token: &'a str) -> Option<Self> {
        let text = Self {
            written: Some(token),
            decoded: OnceCell::new(),
        };
        if has_surrogate_escape(token) {
            // Rare (text escaped to ASCII with characters outside the BMP): decode now, and a
            // lone half fails to decode.
            let value = decode(token)?;
            let _ = text.decoded.set(value);
        }
        Some(text)
    }

    /// Whether the string's value has been decoded.
    #[cfg(test)]
    pub(crate) fn is_decoded(&self) -> bool {
        self.decoded.get().is_some()
    }

    /// The string's value.
    pub(crate) fn as_str(&self) -> &str {
        self.decoded
            .get_or_init(|| decode(self.written.unwrap_or("\"\"")).unwrap_or_default())
    }
}

/// A scanned string token's value: borrowed from the token unless it holds escapes.
fn decode(token: &str) -> Option<Cow<'_, str>> {
    serde_json::from_str::<super::Key<'_>>(token)
        .ok()
        .map(|super::Key(value)| value)
}

/// Whether a scanned string token holds a `\u` escape in `D800`-`DFFF` (half a surrogate pair).
/// One vectorised pass over the backslashes of the token (prose has one in every line).
fn has_surrogate_escape(token: &str) -> bool {
    let bytes = token.as_bytes();
    // The first position where a backslash starts an escape: past an escaped character, so
    // that the second backslash of `\\` does not start one.
    let mut next = 0;
    for at in memchr::memchr_iter(b'\\', bytes) {
        if at < next {
            continue;
        }
        if let Some([b'u', d, second]) = bytes.get(at + 1..at + 4) {
            if d.eq_ignore_ascii_case(&b'd')
                && matches!(second, b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            {
                return true;
            }
        }
        next = at + 2;
    }
    false
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_string_decodes_on_first_read() {
        let token = r#""line\nquote\" \u00e9 \ud83d\ude00 \\ud800""#;
        let text = Str::written(token).unwrap();
        assert_eq!(text.as_str(), "line\nquote\" é 😀 \\ud800");
        let plain = Str::written(r#""plain""#).unwrap();
        assert!(plain.decoded.get().is_none());
        assert_eq!(plain.as_str(), "plain");
        assert!(matches!(plain.decoded.get(), Some(Cow::Borrowed("plain"))));
    }

    #[test]
    fn only_real_surrogate_escapes_are_found() {
        for (token, found) in [
            (r#""\ud800""#, true),
            (r#""\uDFFF""#, true),
            (r#""a \ud83d\ude00""#, true),
            (r#""\\ud800""#, false),
            (r#""\\\ud800""#, true),
            (r#""\u00e9 \uD7FF \n""#, false),
            (r#""\""#, false),
        ] {
            assert_eq!(has_surrogate_escape(token), found, "{token}");
        }
    }

    /// The scan, one byte at a time: what the vectorised one must agree with.
    fn reference(token: &str) -> bool {
        let bytes = token.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b'\\' {
                let escape = bytes.get(at + 1..at + 4).unwrap_or_default();
                if let [b'u', b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'] = escape {
                    return true;
                }
                at += 2;
            } else {
                at += 1;
            }
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn the_scan_agrees_with_a_byte_by_byte_one(token in "[\\\\udD8aAfF0 x]{0,40}") {
            proptest::prop_assert_eq!(has_surrogate_escape(&token), reference(&token));
        }
    }

    #[test]
    fn a_lone_surrogate_is_refused() {
        for token in [r#""\ud800""#, r#""\udc00 x""#, r#""\ud83d\u0041""#] {
            assert!(Str::written(token).is_none(), "{token}");
        }
    }
}
