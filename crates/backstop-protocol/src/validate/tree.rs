//! A JSON tree that borrows its strings from the request body.
//!
//! Validation needs the whole structure of a request but keeps none of it: parsing into
//! `serde_json::Value` would copy every key and string and build a map per object, which costs
//! about twice as much on a typical request as this tree, whose strings point into the body (only
//! strings with escapes are decoded into their own buffer) and whose objects are vectors of pairs.
//! serde_json still checks everything as it parses: UTF-8, escapes, lone surrogates, nesting depth.
//!
//! [`parse_keeping_text`] builds the same tree but keeps the strings of free-text keys as
//! written ([`Str`]): a large prompt is scanned in place rather than decoded and copied.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Number;

use super::text::{Str, TEXT_KEYS};

/// A JSON value whose strings borrow from the text it was parsed from.
#[derive(Debug, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Str<'a>),
    Array(Vec<Json<'a>>),
    Object(Obj<'a>),
}

/// A JSON object: its pairs in the order of the text.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Obj<'a>(pub(crate) Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Obj<'a> {
    /// The value of `key`; when a nested object repeats a key, the last one, as serde_json
    /// (and the upstreams' parsers) read it.
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'a> Json<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&Obj<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Whether the value is a number written as an integer.
    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, Json::Number(n) if n.is_i64() || n.is_u64())
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Parse {
            text_levels: 0,
            depth: 0,
            max_depth: usize::MAX,
        }
        .deserialize(deserializer)
    }
}

/// How deeply a tree parsed by [`parse_keeping_text`] may nest: below serde_json's own limit,
/// which each parse of a kept container starts afresh, so that the whole stays bounded.
const MAX_DEPTH: usize = 100;

/// How many containers under text keys, one inside the other, are parsed keeping text (an
/// Anthropic tool result's blocks inside a message's blocks are two): deeper ones are decoded
/// in full, so that no body is scanned more than this many times over, plus once.
const TEXT_LEVELS: u8 = 3;

/// Parses `text` into a tree whose strings under [`TEXT_KEYS`] are kept as written.
///
/// Fails on whatever a full parse would refuse (and, nested deeper than [`MAX_DEPTH`], on
/// what it may accept): the caller parses again in full for an error that names the problem.
pub(crate) fn parse_keeping_text(text: &str) -> Result<Json<'_>, serde_json::Error> {
    parse_with(
        text,
        Parse {
            text_levels: TEXT_LEVELS,
            depth: 0,
            max_depth: MAX_DEPTH,
        },
    )
}

/// Parses the whole of `text` with `parse`.
fn parse_with(text: &str, parse: Parse) -> Result<Json<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = parse.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A value under a text key, scanned without decoding: a string is kept as written, anything
/// else is parsed from its text.
fn kept_value(raw: &RawValue, parse: Parse) -> Result<Json<'_>, serde_json::Error> {
    let token = raw.get();
    if token.starts_with('"') {
        return Str::written(token)
            .map(Json::String)
            .ok_or_else(|| serde_json::Error::custom("lone surrogate"));
    }
    parse_with(
        token,
        Parse {
            text_levels: parse.text_levels - 1,
            ..parse
        },
    )
}

/// The parse of one value.
#[derive(Clone, Copy)]
struct Parse {
    /// How many more containers under text keys, one inside the other, keep text (none: the
    /// parse decodes every string).
    text_levels: u8,
    /// How many containers enclose the value.
    depth: usize,
    /// How many may.
    max_depth: usize,
}

impl Parse {
    /// The parse of the values inside a container this one opens.
    fn inside<E: Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom("nested too deeply"));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Parse {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Parse {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Str::decoded(Cow::Borrowed(s))))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Str::decoded(Cow::Owned(s.to_owned()))))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::String(Str::decoded(Cow::Owned(s))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let inside = self.inside()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(inside)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let inside = self.inside()?;
        let mut pairs = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            let value = if inside.text_levels > 0 && TEXT_KEYS.contains(&key.as_ref()) {
                let raw: &'de RawValue = map.next_value()?;
                kept_value(raw, inside).map_err(A::Error::custom)?
            } else {
                map.next_value_seed(inside)?
            };
            pairs.push((key, value));
        }
        Ok(Json::Object(Obj(pairs)))
    }
}

/// An object key (or any string), borrowed from the text unless it holds escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let text = r#"{"a":"plain","b\"":"esc\naped","n":[1,-2,2.5,null,true]}"#;
        let json: Json = serde_json::from_str(text).unwrap();
        let o = json.as_object().unwrap();
        assert_eq!(o.get("a").and_then(Json::as_str), Some("plain"));
        assert!(matches!(&o.0[1].0, Cow::Owned(k) if k == "b\""));
        assert_eq!(o.get("b\"").and_then(Json::as_str), Some("esc\naped"));
        let n = o.get("n").and_then(Json::as_array).unwrap();
        assert_eq!(n[0].as_u64(), Some(1));
        assert!(n[1].is_integer() && n[1].as_u64().is_none());
        assert!(!n[2].is_integer());
        assert_eq!(n[2].as_f64(), Some(2.5));
        assert!(n[3].is_null());
        assert_eq!(n[4].as_bool(), Some(true));
    }

    #[test]
    fn text_is_kept_as_written_until_read() {
        let text = r#"{"role":"user\n","content":"a\nb","x":{"text":[{"text":"c\td"}]}}"#;
        let json = parse_keeping_text(text).unwrap();
        let o = json.as_object().unwrap();
        let string = |value: Option<&Json<'_>>| match value {
            Some(Json::String(s)) => s.is_decoded(),
            other => panic!("{other:?}"),
        };
        assert!(
            string(o.get("role")),
            "a key outside the text keys is decoded"
        );
        assert!(!string(o.get("content")));
        let inner = &o.get("x").and_then(Json::as_object).unwrap();
        let part = &inner.get("text").and_then(Json::as_array).unwrap()[0];
        assert!(!string(part.as_object().unwrap().get("text")));
        assert_eq!(o.get("content").and_then(Json::as_str), Some("a\nb"));
        assert!(string(o.get("content")));
        assert_eq!(json, serde_json::from_str::<Json>(text).unwrap());
    }

    #[test]
    fn a_repeated_nested_key_reads_as_the_last() {
        let json: Json = serde_json::from_str(r#"{"role":"user","role":"wizard"}"#).unwrap();
        assert_eq!(
            json.as_object().unwrap().get("role").and_then(Json::as_str),
            Some("wizard")
        );
    }
}
