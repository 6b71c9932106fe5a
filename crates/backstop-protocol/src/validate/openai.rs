//! The rules of an OpenAI Chat Completions request.

use super::check::{
    array, boolean, each, field, integer, is_string, non_empty_string, number_in, object,
    object_with, one_of, optional, positive_integer, required, required_string, string_or_strings,
    Loc,
};
use super::tree::{Json, Obj};
use super::Checked;

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
/// Content parts of a user message.
const USER_PARTS: &[&str] = &["text", "image_url", "input_audio", "file"];
/// Content parts of an assistant message.
const ASSISTANT_PARTS: &[&str] = &["text", "refusal"];
/// Content parts of system, developer and tool messages.
const TEXT_PARTS: &[&str] = &["text"];
const TOOL_TYPES: &[&str] = &["function", "custom"];
const TOOL_CHOICE_MODES: &[&str] = &["none", "auto", "required"];
const TOOL_CHOICE_TYPES: &[&str] = &["function", "custom", "allowed_tools"];
const RESPONSE_FORMATS: &[&str] = &["text", "json_object", "json_schema"];

/// Checks an OpenAI Chat Completions request body.
pub(super) fn request(body: &Obj<'_>) -> Checked {
    let at = Loc::Root;
    non_empty_string(required(body, "model", &at)?, &at.key("model"))?;
    messages(required(body, "messages", &at)?, &at.key("messages"))?;
    optional(body, "max_tokens", &at, positive_integer)?;
    optional(body, "max_completion_tokens", &at, positive_integer)?;
    optional(body, "n", &at, positive_integer)?;
    optional(body, "temperature", &at, number_in(0.0, 2.0))?;
    optional(body, "top_p", &at, number_in(0.0, 1.0))?;
    optional(body, "presence_penalty", &at, number_in(-2.0, 2.0))?;
    optional(body, "frequency_penalty", &at, number_in(-2.0, 2.0))?;
    optional(body, "seed", &at, integer)?;
    optional(body, "stream", &at, boolean)?;
    optional(
        body,
        "stream_options",
        &at,
        object_with(|o, at| optional(o, "include_usage", at, boolean)),
    )?;
    optional(body, "stop", &at, string_or_strings)?;
    optional(body, "tools", &at, each(tool))?;
    optional(body, "tool_choice", &at, tool_choice)?;
    optional(body, "parallel_tool_calls", &at, boolean)?;
    optional(body, "functions", &at, each(object_with(named)))?;
    optional(body, "function_call", &at, function_call)?;
    optional(body, "response_format", &at, object_with(response_format))
}

/// `messages`: a non-empty array of messages.
fn messages(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    if array(value, at)?.is_empty() {
        return Err(at.error("must contain at least one message"));
    }
    each(object_with(message))(value, at)
}

fn message(m: &Obj<'_>, at: &Loc<'_>) -> Checked {
    let role = one_of(required(m, "role", at)?, &at.key("role"), ROLES, "role")?;
    let content_at = at.key("content");
    match role {
        "system" | "developer" => content(required(m, "content", at)?, &content_at, TEXT_PARTS)?,
        "user" => content(required(m, "content", at)?, &content_at, USER_PARTS)?,
        "assistant" => assistant(m, at)?,
        "tool" => {
            required_string(m, "tool_call_id", at)?;
            content(required(m, "content", at)?, &content_at, TEXT_PARTS)?;
        }
        // The deprecated function result: `content` is a string or null, `name` is required.
        _ => {
            required_string(m, "name", at)?;
            optional(m, "content", at, is_string)?;
        }
    }
    optional(m, "name", at, is_string)
}

/// An assistant turn: content may be left out only when the turn carries something else.
fn assistant(m: &Obj<'_>, at: &Loc<'_>) -> Checked {
    let has_other = ["tool_calls", "function_call", "audio", "refusal"]
        .iter()
        .any(|key| field(m, key).is_some());
    match field(m, "content") {
        Some(v) => content(v, &at.key("content"), ASSISTANT_PARTS)?,
        None if has_other => {}
        None => {
            return Err(at
                .key("content")
                .error("is required unless the message has `tool_calls`"))
        }
    }
    optional(m, "refusal", at, is_string)?;
    optional(m, "tool_calls", at, each(object_with(tool_call)))?;
    optional(m, "function_call", at, object_with(named))
}

/// Message content: a string, or an array of content parts of the `allowed` types.
fn content(value: &Json<'_>, at: &Loc<'_>, allowed: &[&str]) -> Checked {
    match value {
        Json::String(_) => Ok(()),
        Json::Array(parts) => parts
            .iter()
            .enumerate()
            .try_for_each(|(i, part)| content_part(part, &at.index(i), allowed)),
        _ => Err(at.error("must be a string or an array of content parts")),
    }
}

fn content_part(part: &Json<'_>, at: &Loc<'_>, allowed: &[&str]) -> Checked {
    let part = object(part, at)?;
    let kind = one_of(
        required(part, "type", at)?,
        &at.key("type"),
        allowed,
        "content part type",
    )?;
    match kind {
        "text" | "refusal" => {
            required_string(part, kind, at)?;
        }
        // `image_url` is an object with a `url`; a bare URL string is accepted as well.
        "image_url" => match required(part, kind, at)? {
            Json::String(_) => {}
            image => {
                let image_at = at.key(kind);
                required_string(object(image, &image_at)?, "url", &image_at)?;
            }
        },
        _ => {
            object(required(part, kind, at)?, &at.key(kind))?;
        }
    }
    Ok(())
}

/// A tool call in an assistant turn.
fn tool_call(call: &Obj<'_>, at: &Loc<'_>) -> Checked {
    required_string(call, "id", at)?;
    let kind = match field(call, "type") {
        Some(kind) => one_of(kind, &at.key("type"), TOOL_TYPES, "tool call type")?,
        None => "function",
    };
    let inner_at = at.key(kind);
    let inner = object(required(call, kind, at)?, &inner_at)?;
    required_string(inner, "name", &inner_at)?;
    let payload = if kind == "function" {
        "arguments"
    } else {
        "input"
    };
    optional(inner, payload, &inner_at, is_string)
}

/// A tool definition: `{"type": "function", "function": {"name", "parameters"?}}` or a custom tool.
fn tool(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    let tool = object(value, at)?;
    let kind = one_of(
        required(tool, "type", at)?,
        &at.key("type"),
        TOOL_TYPES,
        "tool type",
    )?;
    let inner_at = at.key(kind);
    let inner = object(required(tool, kind, at)?, &inner_at)?;
    non_empty_string(required(inner, "name", &inner_at)?, &inner_at.key("name"))?;
    optional(inner, "description", &inner_at, is_string)?;
    optional(inner, "parameters", &inner_at, |v, at| {
        object(v, at).map(|_| ())
    })?;
    optional(inner, "strict", &inner_at, boolean)
}

/// `tool_choice`: a mode, or an object naming a tool (or listing the allowed ones).
fn tool_choice(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    if let Json::String(_) = value {
        return one_of(value, at, TOOL_CHOICE_MODES, "tool_choice").map(|_| ());
    }
    let choice = object(value, at)
        .map_err(|_| at.error("must be \"none\", \"auto\", \"required\" or an object"))?;
    let kind = one_of(
        required(choice, "type", at)?,
        &at.key("type"),
        TOOL_CHOICE_TYPES,
        "tool_choice type",
    )?;
    let inner_at = at.key(kind);
    let inner = object(required(choice, kind, at)?, &inner_at)?;
    if kind == "allowed_tools" {
        one_of(
            required(inner, "mode", &inner_at)?,
            &inner_at.key("mode"),
            &["auto", "required"],
            "mode",
        )?;
        return array(required(inner, "tools", &inner_at)?, &inner_at.key("tools")).map(|_| ());
    }
    required_string(inner, "name", &inner_at).map(|_| ())
}

/// The deprecated `function_call`: `"none"`, `"auto"` or `{"name": ...}`.
fn function_call(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    match value {
        Json::String(_) => one_of(value, at, &["none", "auto"], "function_call").map(|_| ()),
        _ => object_with(named)(value, at),
    }
}

/// An object with a `name` string.
fn named(o: &Obj<'_>, at: &Loc<'_>) -> Checked {
    required_string(o, "name", at).map(|_| ())
}

/// `response_format`: text, a JSON object, or a JSON schema with a name.
fn response_format(format: &Obj<'_>, at: &Loc<'_>) -> Checked {
    let kind = one_of(
        required(format, "type", at)?,
        &at.key("type"),
        RESPONSE_FORMATS,
        "response_format type",
    )?;
    if kind == "json_schema" {
        let schema_at = at.key("json_schema");
        let schema = object(required(format, "json_schema", at)?, &schema_at)?;
        required_string(schema, "name", &schema_at)?;
    }
    Ok(())
}
