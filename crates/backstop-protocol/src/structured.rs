//! Structured output across the three protocols. The canonical form is OpenAI's
//! `response_format` (`{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
//! {"name", "schema", "strict"}}`); Anthropic says it with `output_config.format` (a JSON schema
//! only) and Gemini with `generationConfig.responseMimeType` plus `responseJsonSchema` (or the
//! older OpenAPI-style `responseSchema`). Each codec reads its own field into the canonical one
//! and writes the canonical one as its own native field, so a request never loses the shape it
//! asked for on the way to another provider.

use serde_json::{json, Map, Value};

/// The name given to a schema that came without one (Anthropic and Gemini do not name theirs).
const UNNAMED: &str = "response";

/// The canonical `response_format` of an Anthropic `output_config`, if it asks for a format.
pub fn from_anthropic(output_config: &Value) -> Option<Value> {
    let format = output_config.get("format")?;
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => Some(json_schema(format.get("schema")?.clone())),
        _ => None,
    }
}

/// Anthropic's `output_config.format` for a canonical `response_format`; `None` where it has
/// no equivalent (a JSON object of any shape, or plain text).
pub fn to_anthropic(response_format: &Value) -> Option<Value> {
    match response_format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = response_format.pointer("/json_schema/schema")?;
            Some(json!({"type": "json_schema", "schema": schema}))
        }
        _ => None,
    }
}

/// The canonical `response_format` of a Gemini `generationConfig`, if it asks for JSON.
pub fn from_gemini(generation_config: &Map<String, Value>) -> Option<Value> {
    let mime = generation_config.get("responseMimeType")?.as_str()?;
    if mime != "application/json" {
        return None;
    }
    let schema = generation_config
        .get("responseJsonSchema")
        .or_else(|| generation_config.get("responseSchema"));
    Some(match schema {
        Some(schema) => json_schema(schema.clone()),
        None => json!({"type": "json_object"}),
    })
}

fn json_schema(schema: Value) -> Value {
    json!({"type": "json_schema", "json_schema": {"name": UNNAMED, "schema": schema, "strict": true}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anthropic_schema_round_trips_through_the_canonical_form() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": false});
        let config = json!({"effort": "low", "format": {"type": "json_schema", "schema": schema}});
        let canonical = from_anthropic(&config).unwrap();
        assert_eq!(canonical["type"], "json_schema");
        assert_eq!(canonical["json_schema"]["schema"], schema);
        assert_eq!(
            to_anthropic(&canonical).unwrap(),
            json!({"type": "json_schema", "schema": schema})
        );
        assert_eq!(from_anthropic(&json!({"effort": "low"})), None);
    }

    #[test]
    fn gemini_json_with_and_without_a_schema() {
        let with = json!({"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}});
        let canonical = from_gemini(with.as_object().unwrap()).unwrap();
        assert_eq!(
            canonical["json_schema"]["schema"],
            json!({"type": "object"})
        );
        let bare = json!({"responseMimeType": "application/json"});
        assert_eq!(
            from_gemini(bare.as_object().unwrap()),
            Some(json!({"type": "json_object"}))
        );
        let text = json!({"responseMimeType": "text/plain"});
        assert_eq!(from_gemini(text.as_object().unwrap()), None);
        assert_eq!(to_anthropic(&json!({"type": "json_object"})), None);
    }
}
