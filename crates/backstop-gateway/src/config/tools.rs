//! The validated settings of tool APIs (`[tools.NAME]`), MCP servers (`[mcp.NAME]`) and
//! provider status pages (`status_page` on a provider).

use super::types::{BreakerSettings, Secret};
use std::fmt::Write;
use std::time::Duration;

/// How a tool or MCP server is reached and how hard the gateway tries it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUpstream {
    /// Where calls go: the tool's base URL or the MCP endpoint, without a trailing slash.
    pub url: String,
    /// Headers set on every call (the tool's own credentials), replacing the client's.
    pub headers: Vec<(String, Secret)>,
    /// Its timeouts.
    pub timeouts: ToolTimeouts,
    /// Its retry rule.
    pub retry: ToolRetry,
    /// Its breaker's settings (one breaker per tool).
    pub breaker: BreakerSettings,
    /// The most bytes of one answer the gateway reads or relays.
    pub max_response_bytes: u64,
}

/// Timeouts of a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolTimeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// From sending the call to the answer's headers, per attempt.
    pub first_byte: Duration,
    /// The whole call, every retry and fallback included (an MCP stream's whole life).
    pub total: Duration,
}

impl Default for ToolTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(30),
            total: Duration::from_secs(60),
        }
    }
}

/// When and how a tool call is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRetry {
    /// Attempts per tool, the first included.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub base_delay: Duration,
    /// Longest wait; a longer server hint means "move on".
    pub max_delay: Duration,
    /// Honour `Retry-After`.
    pub respect_retry_after: bool,
    /// Whether calls that are not idempotent (POST, PATCH; MCP `tools/call`) are retried too.
    pub post: bool,
}

/// What a tool's final failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The upstream's status and body (a 502 or 503 of the gateway when there is none).
    Error,
    /// A 200 with `{"ok": false, ...}` that the agent can show its model.
    Text,
}

/// The default `message` of a tool with `on_failure = "text"`.
pub const DEFAULT_TOOL_MESSAGE: &str =
    "{tool} is unavailable ({error}). Proceed with the information you have and say that it could not be checked.";

/// `[tools.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name, the `NAME` of `/tools/NAME/...`.
    pub name: String,
    /// Where and how it is called.
    pub upstream: ToolUpstream,
    /// Other tools tried, in order, when it fails.
    pub fallbacks: Vec<String>,
    /// What a final failure answers.
    pub on_failure: OnFailure,
    /// The message template of a text failure: `{tool}` and `{error}` are replaced.
    pub message: String,
}

/// `[mcp.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    /// Its name, the `NAME` of `/mcp/NAME`.
    pub name: String,
    /// Where and how it is called.
    pub upstream: ToolUpstream,
}

/// What a provider's `major` or `critical` status page indicator does to its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMajorIncident {
    /// Its targets go to the end of their model's balanced order.
    Deprioritize,
    /// Its targets are left out while any other target of the model is not.
    Avoid,
    /// Shown, nothing more.
    Ignore,
}

/// A provider's status page (Statuspage v2 `status.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPage {
    /// The `.../api/v2/status.json` URL.
    pub url: String,
    /// How often it is read.
    pub poll: Duration,
    /// What a major incident does.
    pub on_major_incident: OnMajorIncident,
}

/// The official status page of a provider whose `base_url` is that provider's official API
/// host, so that a gateway in front of a mock or a private server never polls the internet.
pub fn official_status_page(base_url: &str) -> Option<&'static str> {
    let host = url::Url::parse(base_url)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    match host.as_str() {
        "api.openai.com" => Some("https://status.openai.com/api/v2/status.json"),
        "api.anthropic.com" => Some("https://status.anthropic.com/api/v2/status.json"),
        _ => None,
    }
}

/// The part of `backstop check`'s plan about status pages, tools and MCP servers.
pub fn tools_plan(config: &super::Config) -> String {
    let mut out = String::new();
    for (name, provider) in &config.providers {
        if let Some(page) = &provider.status_page {
            let _ = writeln!(
                out,
                "\nstatus page of {name}: {} every {:?}, on a major incident: {:?}",
                crate::redact::url(&page.url),
                page.poll,
                page.on_major_incident
            );
        }
    }
    let describe = |out: &mut String, what: &str, upstream: &ToolUpstream| {
        let t = &upstream.timeouts;
        let r = &upstream.retry;
        let _ = writeln!(
            out,
            "\n{what} at {}\n  timeouts: connect {:?}, first byte {:?}, total {:?}\n  retry: {} attempts, backoff {:?}..{:?}, {}",
            crate::redact::url(&upstream.url),
            t.connect,
            t.first_byte,
            t.total,
            r.max_attempts,
            r.base_delay,
            r.max_delay,
            if r.post { "every method" } else { "idempotent calls only" }
        );
    };
    for tool in config.tools.values() {
        describe(
            &mut out,
            &format!("tool {} (/tools/{}/...)", tool.name, tool.name),
            &tool.upstream,
        );
        let fallbacks = if tool.fallbacks.is_empty() {
            "none".to_string()
        } else {
            tool.fallbacks.join(" -> ")
        };
        let on_failure = match tool.on_failure {
            OnFailure::Error => "the tool's error",
            OnFailure::Text => "a 200 with a text the agent can read",
        };
        let _ = writeln!(out, "  fallbacks: {fallbacks}; on failure: {on_failure}");
    }
    for server in config.mcp.values() {
        describe(
            &mut out,
            &format!("MCP server {} (/mcp/{})", server.name, server.name),
            &server.upstream,
        );
    }
    out
}
