//! What the proxy needs to know of a JSON-RPC message a client POSTs to an MCP server, and
//! the answers it makes in its place when the server fails.

use serde_json::{json, Value};

/// Methods that read and change nothing: retried like idempotent HTTP calls.
const READ_ONLY: [&str; 9] = [
    "initialize",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// The request a POST carries (none for a notification, a response or a batch).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// Its id, echoed in the answer.
    pub id: Value,
    /// Its method.
    pub method: String,
}

impl RpcRequest {
    /// The request in `body`, when it is one JSON-RPC request; `Err` when `body` is not JSON.
    pub fn parse(body: &[u8]) -> Result<Option<RpcRequest>, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
        let id = value.get("id").filter(|id| !id.is_null()).cloned();
        let method = value.get("method").and_then(Value::as_str);
        Ok(match (id, method) {
            (Some(id), Some(method)) => Some(RpcRequest {
                id,
                method: method.to_string(),
            }),
            _ => None,
        })
    }

    /// Whether sending it twice does no harm (`tools/call` only with `retry.post = true`).
    pub fn repeatable(&self, retry_post: bool) -> bool {
        READ_ONLY.contains(&self.method.as_str()) || retry_post
    }

    /// Whether it calls a tool.
    pub fn is_tool_call(&self) -> bool {
        self.method == "tools/call"
    }

    /// What the client gets when the server failed to answer it: for `tools/call` a tool
    /// result with `isError` that the agent's model reads as text, for any other method a
    /// JSON-RPC error.
    pub fn failure(&self, server: &str, reason: &str) -> Value {
        if self.is_tool_call() {
            let text = format!(
                "The MCP server `{server}` is unavailable ({reason}). The tool was not run or its result was lost. Proceed with the information you have and say that it could not be checked."
            );
            json!({
                "jsonrpc": "2.0",
                "id": self.id,
                "result": {"content": [{"type": "text", "text": text}], "isError": true},
            })
        } else {
            error(self.id.clone(), server, reason)
        }
    }
}

/// The JSON-RPC error of a failed call to `server` (`id` null when it answers no request).
pub fn error(id: Value, server: &str, reason: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32603,
            "message": format!("the MCP server `{server}` is unavailable: {reason}"),
        },
    })
}

/// Whether `message` (one SSE event's data) answers the request `id`.
pub fn answers(message: &Value, id: &Value) -> bool {
    message.get("id") == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_junk() {
        let call =
            RpcRequest::parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#)
                .unwrap()
                .unwrap();
        assert_eq!(call.id, json!(7));
        assert!(call.is_tool_call());
        assert!(!call.repeatable(false));
        assert!(call.repeatable(true));
        let list = RpcRequest::parse(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#)
            .unwrap()
            .unwrap();
        assert!(list.repeatable(false));
        let note = RpcRequest::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(note, Ok(None));
        assert!(RpcRequest::parse(b"{nope").is_err());
    }

    #[test]
    fn failures_in_the_callers_terms() {
        let call = RpcRequest {
            id: json!(3),
            method: "tools/call".into(),
        };
        let result = call.failure("search", "transient: status 500");
        assert_eq!(result["result"]["isError"], true);
        assert_eq!(result["id"], 3);
        assert!(result["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("`search` is unavailable (transient: status 500)"));
        let list = RpcRequest {
            id: json!("x"),
            method: "tools/list".into(),
        };
        let error = list.failure("search", "circuit open");
        assert_eq!(error["error"]["code"], -32603);
        assert_eq!(error["id"], "x");
        assert!(answers(&json!({"id": 3, "result": {}}), &json!(3)));
        assert!(!answers(&json!({"id": 4, "result": {}}), &json!(3)));
        assert!(!answers(
            &json!({"method": "notifications/progress"}),
            &json!(3)
        ));
    }
}
