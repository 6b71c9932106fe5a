//! Answers that have the shape a request asks for: a JSON value that matches a structured-output
//! schema, and tool-call arguments that match the tool's parameters, so that a gateway checking
//! answers against their schema finds the mock's answers valid (faults such as `answer` make
//! them invalid on purpose).

use serde_json::{Map, Value};

/// How deep a schema is followed (a recursive `$ref` ends here).
const MAX_DEPTH: usize = 12;

/// A small value that matches `schema` (JSON Schema, or Gemini's OpenAPI subset with
/// upper-case types); strings are `text`.
pub(crate) fn instance(schema: &Value, text: &str) -> Value {
    Instance { root: schema, text }.of(schema, 0)
}

/// Whether `arguments` has every property `schema` requires (the configured arguments are kept
/// when they fit the tool, and made from its schema when they do not).
pub(crate) fn fits(schema: &Value, arguments: &Value) -> bool {
    let Some(required) = schema.get("required").and_then(Value::as_array) else {
        return true;
    };
    required
        .iter()
        .filter_map(Value::as_str)
        .all(|name| arguments.get(name).is_some())
}

struct Instance<'a> {
    root: &'a Value,
    text: &'a str,
}

impl Instance<'_> {
    fn of(&self, schema: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(map) = schema.as_object() else {
            return Value::String(self.text.to_owned());
        };
        if let Some(target) = map.get("$ref").and_then(Value::as_str) {
            return match self.resolve(target) {
                Some(resolved) => self.of(resolved, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(value) = map.get("const") {
            return value.clone();
        }
        if let Some(first) = map
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(first) = map
                .get(key)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.of(first, depth + 1);
            }
        }
        match kind(map).as_deref() {
            Some("object") => self.object(map, depth),
            Some("array") => {
                let items = map.get("items").cloned().unwrap_or(Value::Null);
                let count = map
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1);
                (0..count.min(8))
                    .map(|_| self.of(&items, depth + 1))
                    .collect()
            }
            Some("integer") => Value::from(bound(map).ceil() as i64),
            Some("number") => Value::from(bound(map)),
            Some("boolean") => Value::Bool(true),
            Some("null") => Value::Null,
            _ => Value::String(self.string(map)),
        }
    }

    fn object(&self, map: &Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        if let Some(properties) = map.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                out.insert(name.clone(), self.of(property, depth + 1));
            }
        }
        Value::Object(out)
    }

    fn string(&self, map: &Map<String, Value>) -> String {
        let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = map
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize);
        let mut text: String = self.text.chars().take(max.unwrap_or(usize::MAX)).collect();
        while text.chars().count() < min {
            text.push('x');
        }
        text
    }

    /// `#/$defs/NAME`, `#/definitions/NAME`, or any JSON pointer into the root schema.
    fn resolve(&self, target: &str) -> Option<&Value> {
        self.root.pointer(target.strip_prefix('#')?)
    }
}

/// The schema's type, lower-cased (Gemini writes `OBJECT`); the first non-null one of a list;
/// `object` for a schema with properties and no type.
fn kind(map: &Map<String, Value>) -> Option<String> {
    match map.get("type") {
        Some(Value::String(t)) => Some(t.to_ascii_lowercase()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_ascii_lowercase),
        _ => map.get("properties").map(|_| "object".to_owned()),
    }
}

/// A number within the schema's bounds: its minimum, or 1.
fn bound(map: &Map<String, Value>) -> f64 {
    let at_least = map
        .get("minimum")
        .or_else(|| map.get("exclusiveMinimum"))
        .and_then(Value::as_f64);
    let at_most = map.get("maximum").and_then(Value::as_f64);
    match (at_least, at_most) {
        (Some(min), _) => {
            min + if map.contains_key("exclusiveMinimum") {
                1.0
            } else {
                0.0
            }
        }
        (None, Some(max)) if max < 1.0 => max,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_instance_has_every_property_of_its_schema_with_the_right_types() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 4},
                "age": {"type": "integer", "minimum": 18},
                "tags": {"type": "array", "items": {"type": "string"}},
                "kind": {"enum": ["a", "b"]},
                "home": {"$ref": "#/$defs/place"},
                "note": {"type": ["string", "null"]}
            },
            "required": ["name", "age"],
            "$defs": {"place": {"type": "object", "properties": {"city": {"type": "string"}}}}
        });
        assert_eq!(
            instance(&schema, "Paris is sunny"),
            json!({"name": "Pari", "age": 18, "tags": ["Paris is sunny"], "kind": "a",
                   "home": {"city": "Paris is sunny"}, "note": "Paris is sunny"})
        );
    }

    #[test]
    fn gemini_upper_case_types_and_recursive_refs_are_followed_to_an_end() {
        let gemini = json!({"type": "OBJECT", "properties": {"ok": {"type": "BOOLEAN"}}});
        assert_eq!(instance(&gemini, "t"), json!({"ok": true}));
        let recursive = json!({"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"});
        assert!(instance(&recursive, "t").is_object());
    }

    #[test]
    fn configured_arguments_fit_a_tool_that_requires_what_they_have() {
        let schema = json!({"type": "object", "required": ["location"]});
        assert!(fits(&schema, &json!({"location": "Paris"})));
        assert!(!fits(&schema, &json!({"city": "Paris"})));
        assert!(fits(&json!({}), &json!({"city": "Paris"})));
    }
}
