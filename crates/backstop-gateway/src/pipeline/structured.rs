//! Structured output, checked before an answer is committed: when a request asks for JSON (a
//! `response_format` with or without a schema) or offers tools with parameter schemas, the
//! answer's text must parse (and match the schema) and every tool call's arguments must parse
//! and match its tool's parameters. An answer that does not is corrected: the same request is
//! sent again to the same target with the invalid answer and the validator's errors appended
//! (the answer quoted as assistant text, so every provider accepts it, then a user turn asking
//! for valid JSON), up to the model's `structured.max_corrections`.

use backstop_protocol::{ChatRequest, ChatResponse, ContentPart, Message, Role};
use jsonschema::Validator;
use serde_json::Value;

/// The most validator errors quoted back to the model.
const MAX_ERRORS: usize = 5;

/// One way an answer misses its shape.
pub struct Mismatch {
    /// Where, without any of the answer's content (`the answer at /n`): fit for logs and errors.
    pub place: String,
    /// What is wrong, quoting the answer's values: only for the correction sent to the model.
    detail: String,
}

/// The places of `mismatches`, for logs and error messages.
pub fn places(mismatches: &[Mismatch]) -> String {
    let places: Vec<&str> = mismatches.iter().map(|m| m.place.as_str()).collect();
    places.join("; ")
}

/// What a request asks the answer's shape to be.
pub struct Shape {
    /// The answer's text must be JSON (and match this schema, when there is one).
    json: Option<Option<Validator>>,
    /// Each tool's parameters.
    tools: Vec<(String, Validator)>,
}

impl Shape {
    /// The shape `request` asks for; `None` when it asks for none (or its schemas are not
    /// valid JSON schemas, which the upstream will say itself).
    pub fn of(request: &ChatRequest) -> Option<Shape> {
        let json = request.response_format.as_ref().and_then(|format| {
            match format.get("type").and_then(Value::as_str) {
                Some("json_object") => Some(None),
                Some("json_schema") => Some(
                    format
                        .pointer("/json_schema/schema")
                        .and_then(|schema| jsonschema::validator_for(schema).ok()),
                ),
                _ => None,
            }
        });
        let tools: Vec<(String, Validator)> = request
            .tools
            .iter()
            .filter_map(|tool| {
                let validator = jsonschema::validator_for(&tool.parameters).ok()?;
                Some((tool.name.clone(), validator))
            })
            .collect();
        (json.is_some() || !tools.is_empty()).then_some(Shape { json, tools })
    }

    /// Whether the answer's text must be JSON (not only its tool calls' arguments).
    pub fn asks_for_json(&self) -> bool {
        self.json.is_some()
    }

    /// What is wrong with `answer`, if anything.
    pub fn check(&self, answer: &ChatResponse) -> Result<(), Vec<Mismatch>> {
        let mut errors = Vec::new();
        let calls: Vec<(&str, &str)> = answer
            .content
            .iter()
            .filter_map(|part| match part {
                ContentPart::ToolCall {
                    name, arguments, ..
                } => Some((name.as_str(), arguments.as_str())),
                _ => None,
            })
            .collect();
        for (name, arguments) in &calls {
            let Some((_, validator)) = self.tools.iter().find(|(tool, _)| tool == name) else {
                continue;
            };
            check_json(
                &format!("the arguments of `{name}`"),
                arguments,
                Some(validator),
                &mut errors,
            );
        }
        if let (Some(schema), true) = (&self.json, calls.is_empty()) {
            let text = backstop_protocol::join_text(&answer.content);
            check_json(
                "the answer",
                strip_fence(&text),
                schema.as_ref(),
                &mut errors,
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            errors.truncate(MAX_ERRORS);
            Err(errors)
        }
    }
}

/// The text of a JSON answer without a Markdown code fence around it.
fn strip_fence(text: &str) -> &str {
    let trimmed = text.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map_or(trimmed, str::trim)
}

fn check_json(what: &str, text: &str, validator: Option<&Validator>, errors: &mut Vec<Mismatch>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            errors.push(Mismatch {
                place: format!("{what} is not valid JSON"),
                detail: format!("{what} is not valid JSON ({error})"),
            });
            return;
        }
    };
    if let Some(validator) = validator {
        for error in validator.iter_errors(&value) {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            errors.push(Mismatch {
                place: format!("{what} at {at}"),
                detail: format!("{what} at {at}: {error}"),
            });
        }
    }
}

/// `request` with `answer` and what is wrong with it appended, asking for a valid answer.
pub fn correction(
    request: &ChatRequest,
    answer: &ChatResponse,
    errors: &[Mismatch],
) -> ChatRequest {
    let errors: Vec<&str> = errors.iter().map(|e| e.detail.as_str()).collect();
    let mut quoted = backstop_protocol::join_text(&answer.content);
    for part in &answer.content {
        if let ContentPart::ToolCall {
            name, arguments, ..
        } = part
        {
            if !quoted.is_empty() {
                quoted.push('\n');
            }
            quoted.push_str(&format!(
                "Call of tool `{name}` with arguments: {arguments}"
            ));
        }
    }
    let mut corrected = request.clone();
    corrected.messages.push(Message {
        role: Role::Assistant,
        content: vec![ContentPart::Text(quoted)],
    });
    corrected.messages.push(Message {
        role: Role::User,
        content: vec![ContentPart::Text(format!(
            "Your previous answer did not match the schema: {}. Answer again with only valid JSON.",
            errors.join("; ")
        ))],
    });
    corrected
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_protocol::{FinishReason, Protocol, Tool, Usage};
    use serde_json::json;

    fn answer(content: Vec<ContentPart>) -> ChatResponse {
        ChatResponse {
            id: "a".into(),
            model: "m".into(),
            content,
            finish: FinishReason::Stop,
            usage: Usage::default(),
        }
    }

    fn asking(format: Value) -> ChatRequest {
        let mut request = ChatRequest::new(Protocol::OpenAi, "m");
        request.response_format = Some(format);
        request
    }

    #[test]
    fn a_schema_is_checked_and_its_errors_named() {
        let request = asking(
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema":
            {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}),
        );
        let shape = Shape::of(&request).unwrap();
        let good = answer(vec![ContentPart::Text("{\"n\": 3}".into())]);
        assert!(shape.check(&good).is_ok());
        let fenced = answer(vec![ContentPart::Text("```json\n{\"n\": 3}\n```".into())]);
        assert!(shape.check(&fenced).is_ok());
        let wrong = answer(vec![ContentPart::Text("{\"n\": \"three\"}".into())]);
        let errors = shape.check(&wrong).unwrap_err();
        assert_eq!(places(&errors), "the answer at /n");
        assert!(
            errors[0].detail.contains("\"three\""),
            "the detail quotes the value for the model"
        );
        let prose = answer(vec![ContentPart::Text("Sure! Here it is".into())]);
        let prose_errors = shape.check(&prose).unwrap_err();
        assert_eq!(places(&prose_errors), "the answer is not valid JSON");
        let fixed = correction(&request, &wrong, &errors);
        assert_eq!(fixed.messages.len(), 2);
        assert_eq!(fixed.messages[1].role, Role::User);
    }

    #[test]
    fn tool_arguments_are_checked_against_their_tool() {
        let mut request = ChatRequest::new(Protocol::OpenAi, "m");
        request.tools.push(Tool {
            name: "weather".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        });
        let shape = Shape::of(&request).unwrap();
        let call = |arguments: &str| {
            answer(vec![ContentPart::ToolCall {
                id: "c".into(),
                name: "weather".into(),
                arguments: arguments.into(),
            }])
        };
        assert!(shape.check(&call("{\"city\": \"Paris\"}")).is_ok());
        assert!(shape.check(&call("{\"city\": ")).is_err());
        assert!(shape.check(&call("{}")).unwrap_err()[0]
            .place
            .contains("weather"));
        assert!(shape
            .check(&answer(vec![ContentPart::Text("plain text".into())]))
            .is_ok());
        assert!(Shape::of(&ChatRequest::new(Protocol::OpenAi, "m")).is_none());
    }
}
