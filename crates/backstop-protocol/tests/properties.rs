//! Property tests for the code that reads untrusted bytes: the envelope reader, the model
//! rewrite and the SSE decoder must never panic, and must agree with a full JSON parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use backstop_protocol::{read_envelope, rewrite_model, write_sse, SseDecoder, SseEvent};
use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Arbitrary JSON values, nested a few levels, with keys that sometimes say "model".
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z\"\\\\/ \u{e9}\u{1F600}\n]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (prop_oneof![Just("model".to_owned()), "[a-z]{1,6}"], inner),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A request-like object: arbitrary top-level fields plus a top-level model, serialised with
/// either compact or pretty formatting.
fn request() -> impl Strategy<Value = (Value, String)> {
    (
        prop::collection::vec(("[a-z]{1,6}", json_value()), 0..5),
        "[ -~\u{e9}]{0,20}",
        any::<bool>(),
    )
        .prop_map(|(fields, model, pretty)| {
            let mut o = Map::new();
            for (k, v) in fields {
                if k != "model" {
                    o.insert(k, v);
                }
            }
            o.insert("model".into(), Value::String(model));
            let v = Value::Object(o);
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                v.to_string()
            };
            (v, text)
        })
}

proptest! {
    #[test]
    fn rewrite_agrees_with_a_full_parse((value, text) in request(), new_model in "[ -~\u{e9}]{0,20}") {
        let out = rewrite_model(text.as_bytes(), &new_model).unwrap();
        let mut expected = value.clone();
        expected["model"] = Value::String(new_model.clone());
        prop_assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), expected);
        prop_assert_eq!(read_envelope(&out).unwrap().model, new_model);
        // Only the model value changed: what differs between input and output is at most the
        // old value's bytes.
        let old = serde_json::to_string(&value["model"]).unwrap();
        let (a, b) = (text.as_bytes(), &out[..]);
        let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let max_suffix = a.len().min(b.len()) - prefix;
        let suffix = a.iter().rev().zip(b.iter().rev()).take(max_suffix).take_while(|(x, y)| x == y).count();
        prop_assert!(a.len() - prefix - suffix <= old.len());
    }

    #[test]
    fn readers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_envelope(&bytes);
        let _ = rewrite_model(&bytes, "m");
        let mut d = SseDecoder::new();
        let _ = d.push(&bytes);
        let _ = d.finish();
    }

    #[test]
    fn sse_chunking_does_not_matter(
        events in prop::collection::vec((prop::option::of("[a-z_]{1,8}"), "[ -~\u{e9}\n]{0,30}"), 1..6),
        cuts in prop::collection::vec(0usize..400, 0..8),
    ) {
        let mut wire = BytesMut::new();
        for (name, data) in &events {
            write_sse(&mut wire, name.as_deref(), data);
        }
        let expected: Vec<SseEvent> = events
            .iter()
            .map(|(name, data)| SseEvent { event: name.clone(), data: data.clone() })
            .collect();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
        cuts.sort_unstable();
        let mut d = SseDecoder::new();
        let mut got = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([wire.len()]) {
            got.extend(d.push(&wire[prev..c]));
            prev = c;
        }
        got.extend(d.finish());
        prop_assert_eq!(got, expected);
    }
}
