//! The building blocks of the rules: where a value sits in the body ([`Loc`]), and checks of
//! one value each that fail with an [`InvalidRequest`] naming that place.
//!
//! A location is a chain of borrowed segments on the stack, turned into text only when a check
//! fails, so a valid body costs no allocation for its field names.

use std::fmt;

use super::tree::{Json, Obj};
use super::{Checked, InvalidRequest};

/// Where a value sits in the request body, written as the APIs write it: `messages[2].role`.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    /// The body itself.
    Root,
    /// A key of an object.
    Key(&'a Loc<'a>, &'a str),
    /// An element of an array.
    Index(&'a Loc<'a>, usize),
}

impl<'a> Loc<'a> {
    /// The location of `key` inside this object.
    pub(crate) fn key(&'a self, key: &'a str) -> Loc<'a> {
        Loc::Key(self, key)
    }

    /// The location of element `index` of this array.
    pub(crate) fn index(&'a self, index: usize) -> Loc<'a> {
        Loc::Index(self, index)
    }

    /// An error at this location.
    pub(crate) fn error(&self, message: impl Into<String>) -> InvalidRequest {
        InvalidRequest {
            param: match self {
                Loc::Root => None,
                _ => Some(self.to_string()),
            },
            message: message.into(),
        }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Root => Ok(()),
            Loc::Key(Loc::Root, key) => f.write_str(key),
            Loc::Key(parent, key) => write!(f, "{parent}.{key}"),
            Loc::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// A field of `object`; `null` counts as absent, as the APIs treat it for optional fields.
pub(crate) fn field<'v, 'a>(object: &'v Obj<'a>, key: &str) -> Option<&'v Json<'a>> {
    object.get(key).filter(|v| !v.is_null())
}

/// A required field of the object at `at`.
pub(crate) fn required<'v, 'a>(
    object: &'v Obj<'a>,
    key: &str,
    at: &Loc<'_>,
) -> Checked<&'v Json<'a>> {
    field(object, key).ok_or_else(|| at.key(key).error("is required"))
}

/// Runs `check` on a field when it is present (and not null).
pub(crate) fn optional<'v, 'a>(
    object: &'v Obj<'a>,
    key: &str,
    at: &Loc<'_>,
    check: impl FnOnce(&'v Json<'a>, &Loc<'_>) -> Checked,
) -> Checked {
    match field(object, key) {
        Some(value) => check(value, &at.key(key)),
        None => Ok(()),
    }
}

/// The value as an object.
pub(crate) fn object<'v, 'a>(value: &'v Json<'a>, at: &Loc<'_>) -> Checked<&'v Obj<'a>> {
    value
        .as_object()
        .ok_or_else(|| at.error("must be an object"))
}

/// The value as an array.
pub(crate) fn array<'v, 'a>(value: &'v Json<'a>, at: &Loc<'_>) -> Checked<&'v [Json<'a>]> {
    value.as_array().ok_or_else(|| at.error("must be an array"))
}

/// The value as a string.
pub(crate) fn string<'v, 'a>(value: &'v Json<'a>, at: &Loc<'_>) -> Checked<&'v str> {
    value.as_str().ok_or_else(|| at.error("must be a string"))
}

/// The value as a string that is not empty.
pub(crate) fn non_empty_string<'v, 'a>(value: &'v Json<'a>, at: &Loc<'_>) -> Checked<&'v str> {
    match string(value, at)? {
        "" => Err(at.error("must not be empty")),
        s => Ok(s),
    }
}

/// The value is a string.
pub(crate) fn is_string(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    string(value, at).map(|_| ())
}

/// A string field that must be there.
pub(crate) fn required_string<'v, 'a>(
    object: &'v Obj<'a>,
    key: &str,
    at: &Loc<'_>,
) -> Checked<&'v str> {
    string(required(object, key, at)?, &at.key(key))
}

/// The value is a boolean.
pub(crate) fn boolean(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    match value {
        Json::Bool(_) => Ok(()),
        _ => Err(at.error("must be a boolean")),
    }
}

/// The value is an integer of at least 1.
pub(crate) fn positive_integer(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    match value.as_u64() {
        Some(n) if n >= 1 => Ok(()),
        _ => Err(at.error("must be a positive integer")),
    }
}

/// The value is an integer of at least 0.
pub(crate) fn non_negative_integer(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    match value.as_u64() {
        Some(_) => Ok(()),
        None => Err(at.error("must be a non-negative integer")),
    }
}

/// The value is an integer (of either sign).
pub(crate) fn integer(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    if value.is_integer() {
        Ok(())
    } else {
        Err(at.error("must be an integer"))
    }
}

/// Checks that a number lies in `min..=max`.
pub(crate) fn number_in(min: f64, max: f64) -> impl Fn(&Json<'_>, &Loc<'_>) -> Checked {
    move |value, at| match value.as_f64() {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        Some(_) => Err(at.error(format!("must be between {min} and {max}"))),
        None => Err(at.error("must be a number")),
    }
}

/// The value is an object; runs `check` on it.
pub(crate) fn object_with(
    check: impl Fn(&Obj<'_>, &Loc<'_>) -> Checked,
) -> impl Fn(&Json<'_>, &Loc<'_>) -> Checked {
    move |value, at| check(object(value, at)?, at)
}

/// The value is an array; runs `check` on each element.
pub(crate) fn each(
    check: impl Fn(&Json<'_>, &Loc<'_>) -> Checked,
) -> impl Fn(&Json<'_>, &Loc<'_>) -> Checked {
    move |value, at| {
        for (i, item) in array(value, at)?.iter().enumerate() {
            check(item, &at.index(i))?;
        }
        Ok(())
    }
}

/// The value is a string or an array of strings (`stop`).
pub(crate) fn string_or_strings(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    match value {
        Json::String(_) => Ok(()),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| string(item, &at.index(i)).map(|_| ())),
        _ => Err(at.error("must be a string or an array of strings")),
    }
}

/// The value is a string among `known`; `what` names it in the error (`unknown role "wizard"`).
pub(crate) fn one_of<'v, 'a>(
    value: &'v Json<'a>,
    at: &Loc<'_>,
    known: &[&str],
    what: &str,
) -> Checked<&'v str> {
    let s = string(value, at)?;
    if known.contains(&s) {
        return Ok(s);
    }
    let expected = known
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(at.error(format!(
        "unknown {what} {} (expected one of {expected})",
        quoted(s)
    )))
}

/// A string quoted for an error message, cut short: an error must not echo a whole prompt.
fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}...", &s[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::Str;
    use super::*;
    use std::borrow::Cow;

    fn json(text: &str) -> Json<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn locations_read_as_the_apis_write_them() {
        let root = Loc::Root;
        let messages = root.key("messages");
        let second = messages.index(2);
        let role = second.key("role");
        assert_eq!(role.to_string(), "messages[2].role");
        assert_eq!(root.key("model").to_string(), "model");
        assert_eq!(root.error("x").param, None);
        assert_eq!(role.error("x").param.as_deref(), Some("messages[2].role"));
    }

    #[test]
    fn unknown_values_are_quoted_and_cut_short() {
        let at = Loc::Root;
        let role = at.key("role");
        let long = Json::String(Str::decoded(Cow::Owned("w".repeat(500))));
        let error = one_of(&long, &role, &["user"], "role").unwrap_err();
        assert!(error.message.len() < 150, "{}", error.message);
        assert!(
            error.message.starts_with("unknown role \"www"),
            "{}",
            error.message
        );
        let error = one_of(&json(r#""wiz\"ard""#), &role, &["user"], "role").unwrap_err();
        assert_eq!(
            error.message,
            r#"unknown role "wiz\"ard" (expected one of "user")"#
        );
    }

    #[test]
    fn numbers_and_integers() {
        let at = Loc::Root;
        let t = at.key("t");
        let range = number_in(0.0, 2.0);
        assert!(range(&json("0"), &t).is_ok());
        assert!(range(&json("2.0"), &t).is_ok());
        assert_eq!(
            range(&json("2.5"), &t).unwrap_err().message,
            "must be between 0 and 2"
        );
        assert_eq!(
            range(&json(r#""hot""#), &t).unwrap_err().message,
            "must be a number"
        );
        assert!(positive_integer(&json("1"), &t).is_ok());
        for bad in ["0", "-1", "1.5", r#""5""#] {
            assert!(positive_integer(&json(bad), &t).is_err(), "{bad}");
        }
        assert!(non_negative_integer(&json("0"), &t).is_ok());
        assert!(integer(&json("-3"), &t).is_ok());
        assert!(integer(&json("3.5"), &t).is_err());
    }
}
