//! The rules of an Anthropic Messages request.

use super::check::{
    array, boolean, each, field, is_string, non_empty_string, non_negative_integer, number_in,
    object, object_with, one_of, optional, positive_integer, required, required_string, string,
    Loc,
};
use super::tree::{Json, Obj};
use super::Checked;

/// `system` turns inside `messages` are what the 2.x SDKs send for a mid-conversation system prompt.
const ROLES: &[&str] = &["user", "assistant", "system"];
/// Every content block type the Messages API (stable and beta) accepts in a request, including
/// the blocks of a previous response sent back as they came.
const BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "advisor_tool_result",
    "container_upload",
    "mcp_tool_use",
    "mcp_tool_result",
    "mcp_tool_listing",
    "compaction",
    "tool_addition",
    "tool_removal",
    "fallback",
];
/// What a `tool_result` may hold.
const TOOL_RESULT_BLOCKS: &[&str] = &["text", "image", "document", "search_result"];
const TEXT_BLOCKS: &[&str] = &["text"];
const TOOL_CHOICE_TYPES: &[&str] = &["auto", "any", "tool", "none"];

/// Checks an Anthropic Messages request body.
pub(super) fn request(body: &Obj<'_>) -> Checked {
    let at = Loc::Root;
    non_empty_string(required(body, "model", &at)?, &at.key("model"))?;
    messages(required(body, "messages", &at)?, &at.key("messages"))?;
    positive_integer(required(body, "max_tokens", &at)?, &at.key("max_tokens"))?;
    optional(body, "system", &at, |v, at| content(v, at, TEXT_BLOCKS))?;
    optional(body, "temperature", &at, number_in(0.0, 1.0))?;
    optional(body, "top_p", &at, number_in(0.0, 1.0))?;
    optional(body, "top_k", &at, non_negative_integer)?;
    optional(body, "stream", &at, boolean)?;
    optional(body, "stop_sequences", &at, each(is_string))?;
    optional(body, "tools", &at, each(object_with(tool)))?;
    optional(body, "tool_choice", &at, object_with(tool_choice))?;
    optional(
        body,
        "metadata",
        &at,
        object_with(|o, at| optional(o, "user_id", at, is_string)),
    )?;
    optional(
        body,
        "thinking",
        &at,
        object_with(|o, at| required_string(o, "type", at).map(|_| ())),
    )
}

/// `messages`: a non-empty array of turns.
fn messages(value: &Json<'_>, at: &Loc<'_>) -> Checked {
    if array(value, at)?.is_empty() {
        return Err(at.error("must contain at least one message"));
    }
    each(object_with(message))(value, at)
}

fn message(m: &Obj<'_>, at: &Loc<'_>) -> Checked {
    let role = one_of(required(m, "role", at)?, &at.key("role"), ROLES, "role")?;
    let allowed = if role == "system" {
        TEXT_BLOCKS
    } else {
        BLOCKS
    };
    content(required(m, "content", at)?, &at.key("content"), allowed)
}

/// Content: a string, or an array of blocks of the `allowed` types.
fn content(value: &Json<'_>, at: &Loc<'_>, allowed: &[&str]) -> Checked {
    match value {
        Json::String(_) => Ok(()),
        Json::Array(blocks) => blocks
            .iter()
            .enumerate()
            .try_for_each(|(i, b)| block(b, &at.index(i), allowed)),
        _ => Err(at.error("must be a string or an array of content blocks")),
    }
}

/// One content block: a known `type` and, for the common ones, their required fields.
fn block(value: &Json<'_>, at: &Loc<'_>, allowed: &[&str]) -> Checked {
    let b = object(value, at)?;
    let kind = one_of(
        required(b, "type", at)?,
        &at.key("type"),
        allowed,
        "content block type",
    )?;
    match kind {
        "text" => required_string(b, "text", at).map(|_| ()),
        "image" | "document" => object(required(b, "source", at)?, &at.key("source")).map(|_| ()),
        "tool_use" | "server_tool_use" => {
            required_string(b, "id", at)?;
            required_string(b, "name", at)?;
            object(required(b, "input", at)?, &at.key("input")).map(|_| ())
        }
        "tool_result" => {
            required_string(b, "tool_use_id", at)?;
            optional(b, "is_error", at, boolean)?;
            optional(b, "content", at, |v, at| content(v, at, TOOL_RESULT_BLOCKS))
        }
        "thinking" => required_string(b, "thinking", at).map(|_| ()),
        "redacted_thinking" => required_string(b, "data", at).map(|_| ()),
        _ => Ok(()),
    }
}

/// A tool definition: a client tool `{name, input_schema}`, or a server tool with its `type`.
fn tool(t: &Obj<'_>, at: &Loc<'_>) -> Checked {
    let custom = match field(t, "type") {
        None => true,
        Some(kind) => string(kind, &at.key("type"))? == "custom",
    };
    if !custom {
        return Ok(());
    }
    non_empty_string(required(t, "name", at)?, &at.key("name"))?;
    object(required(t, "input_schema", at)?, &at.key("input_schema"))?;
    optional(t, "description", at, is_string)
}

/// `tool_choice`: `{"type": "auto" | "any" | "none"}` or `{"type": "tool", "name": ...}`.
fn tool_choice(choice: &Obj<'_>, at: &Loc<'_>) -> Checked {
    let kind = one_of(
        required(choice, "type", at)?,
        &at.key("type"),
        TOOL_CHOICE_TYPES,
        "tool_choice type",
    )?;
    if kind == "tool" {
        required_string(choice, "name", at)?;
    }
    optional(choice, "disable_parallel_tool_use", at, boolean)
}
