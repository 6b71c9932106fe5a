//! What can go wrong, for whom, and how often.
//!
//! A [`Fault`] is three independent answers: *which requests* ([`Selector`]: route and model),
//! *how often* ([`Mode`]: the next N, a time window, always, or a seeded probability) and
//! *what happens* ([`FaultKind`]). Keeping them apart lets a drill say "503 on `gpt-*` for the
//! first minute" without a dedicated fault type for every combination.
//!
//! Scripts and the control API use a flat table for the same thing (see `spec.rs` and
//! `docs/mock.md`); `Fault` serializes to and from that table.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::effect::{Effect, ErrorFault, StreamFault};
use crate::errors::ErrorCase;

/// The API surface a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// `POST /v1/chat/completions`.
    Openai,
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
    /// `GET /v1/models` and `GET /v1beta/models`.
    Models,
    /// Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions`.
    Azure,
    /// AWS Bedrock: `POST /model/{model}/invoke` and `/invoke-with-response-stream`.
    Bedrock,
    /// Google Vertex AI: `POST /v1/projects/.../publishers/{anthropic|google}/models/{model}:...`.
    Vertex,
}

impl Route {
    /// The lowercase name used in scripts and the request log.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Openai => "openai",
            Route::Anthropic => "anthropic",
            Route::Gemini => "gemini",
            Route::Models => "models",
            Route::Azure => "azure",
            Route::Bedrock => "bedrock",
            Route::Vertex => "vertex",
        }
    }
}

/// Which requests a fault applies to. An empty selector matches every request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// Only requests on this route, or any route.
    pub route: Option<Route>,
    /// Only requests for this model: an exact name, or a glob where `*` matches any run of characters.
    pub model: Option<String>,
}

impl Selector {
    /// Whether a request on `route` for `model` is selected.
    pub fn matches(&self, route: Route, model: &str) -> bool {
        self.route.is_none_or(|r| r == route)
            && self
                .model
                .as_deref()
                .is_none_or(|pattern| glob_match(pattern, model))
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters (possibly empty).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// How often a selected request is hit by the fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// The next `n` selected requests, then never again.
    Count(u64),
    /// Every selected request between `from` and `until` after the fault was added (for a script:
    /// after the mock started). `until: None` means forever after `from`.
    Window {
        /// Start of the window, relative to when the fault was added.
        from: Duration,
        /// End of the window (exclusive), or open-ended.
        until: Option<Duration>,
    },
    /// Every selected request.
    Always,
    /// Each selected request with probability `p`, drawn from an RNG seeded with `MockConfig::seed`.
    Probability {
        /// Between 0.0 and 1.0.
        p: f64,
    },
}

/// What the mock does to a request hit by a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Any HTTP status with the route's real error body for it (429 and 529 as for `RateLimit`
    /// and `Overloaded`). `retry_after` sets the `Retry-After` header (e.g. `"2"`).
    Status {
        /// The HTTP status code.
        status: u16,
        /// Value of the `Retry-After` header, if any.
        retry_after: Option<String>,
    },
    /// 429 with the provider's rate-limit body and headers (`x-ratelimit-*`, `anthropic-ratelimit-*`).
    RateLimit {
        /// Value of the `Retry-After` header, if any.
        retry_after: Option<String>,
    },
    /// Anthropic 529 `overloaded_error`; OpenAI and Gemini 503.
    Overloaded,
    /// 400 context length exceeded with each provider's wording and code.
    ContextLength,
    /// The provider's content-filter refusal.
    ContentFilter,
    /// 401 invalid API key.
    Unauthorized,
    /// 403 permission denied.
    Forbidden,
    /// Quota or billing exhausted (OpenAI 429 `insufficient_quota`).
    InsufficientQuota,
    /// 404 unknown model.
    UnknownModel,
    /// TCP reset before any response byte.
    Reset,
    /// Accept the request and never answer.
    Hang,
    /// Wait before sending the response headers.
    DelayHeaders {
        /// How long.
        delay: Duration,
    },
    /// Send the headers, then wait before the first event (or the body).
    SlowFirstToken {
        /// How long.
        delay: Duration,
    },
    /// Wait before every stream event.
    SlowStream {
        /// Delay per event.
        delay: Duration,
    },
    /// Send `events` stream events, then close the connection without a terminator.
    CutAfter {
        /// Events sent before the cut.
        events: usize,
    },
    /// Send `events` stream events, then end the body cleanly, with no finish and no terminator.
    EndAfter {
        /// Events sent before the end.
        events: usize,
    },
    /// After `after` events, stay silent for `duration` with the connection open, then go on.
    Stall {
        /// Events sent before the stall.
        after: usize,
        /// How long the stream is silent.
        duration: Duration,
        /// A wait before every event too (a slow stream that also pauses once).
        every: Option<Duration>,
    },
    /// Replace the event at index `at` (0-based) with invalid JSON, then go on.
    MalformedEvent {
        /// Index of the broken event.
        at: usize,
    },
    /// After `at` events, send the provider's mid-stream error event and end the stream
    /// (OpenAI `data: {"error": ...}`, Anthropic `event: error` with `overloaded_error`, Gemini
    /// its error JSON). A request that does not stream gets the provider's 500 instead.
    ErrorEvent {
        /// Events sent before the error event (0: it is the first).
        at: usize,
    },
    /// End the stream cleanly after the finish event but without `[DONE]` / `message_stop`.
    NoDone,
    /// Reject a request whose last message is an assistant prefill with the provider's 400.
    RejectPrefill,
    /// Answer with this model name instead of the requested one.
    WrongModel {
        /// The model name the response claims.
        name: String,
    },
    /// Answer normally, with this text instead of the configured answer; a tool call gets it
    /// as its arguments (e.g. arguments that do not parse, or miss a required property).
    Answer {
        /// The answer's text, or the tool call's arguments.
        text: String,
    },
    /// Answer 200, but with the output stopped by the content filter: no text, OpenAI's and
    /// Azure's `finish_reason: "content_filter"` (with `content_filter_results` on the choice),
    /// Anthropic's `stop_reason: "refusal"`, Gemini's `finishReason: "SAFETY"`.
    OutputFilter,
    /// Answer normally, with the provider's rate-limit headers reporting these counts.
    Quota(crate::quota::Quota),
}

impl FaultKind {
    /// What this fault does to a provider request.
    pub(crate) fn effect(&self) -> Effect<'_> {
        let error = |case| Effect::Error(ErrorFault::plain(case));
        match self {
            FaultKind::Status {
                status,
                retry_after,
            } => Effect::Error(ErrorFault {
                case: ErrorCase::Status(*status),
                retry_after: retry_after.as_deref(),
            }),
            FaultKind::RateLimit { retry_after } => Effect::Error(ErrorFault {
                case: ErrorCase::RateLimit,
                retry_after: retry_after.as_deref(),
            }),
            FaultKind::Overloaded => error(ErrorCase::Overloaded),
            FaultKind::ContextLength => error(ErrorCase::ContextLength),
            FaultKind::ContentFilter => error(ErrorCase::ContentFilter),
            FaultKind::Unauthorized => error(ErrorCase::Unauthorized),
            FaultKind::Forbidden => error(ErrorCase::Forbidden),
            FaultKind::InsufficientQuota => error(ErrorCase::InsufficientQuota),
            FaultKind::UnknownModel => error(ErrorCase::UnknownModel),
            FaultKind::RejectPrefill => error(ErrorCase::RejectPrefill),
            FaultKind::Reset => Effect::Reset,
            FaultKind::Hang => Effect::Hang,
            FaultKind::DelayHeaders { delay } => Effect::DelayHeaders(*delay),
            FaultKind::WrongModel { name } => Effect::WrongModel(name),
            FaultKind::Answer { text } => Effect::Answer(text),
            FaultKind::OutputFilter => Effect::FilterOutput,
            FaultKind::Quota(quota) => Effect::Quota(quota),
            FaultKind::SlowFirstToken { delay } => {
                Effect::Deliver(StreamFault::SlowFirstToken(*delay))
            }
            FaultKind::SlowStream { delay } => Effect::Deliver(StreamFault::SlowStream(*delay)),
            FaultKind::CutAfter { events } => Effect::Deliver(StreamFault::CutAfter(*events)),
            FaultKind::EndAfter { events } => Effect::Deliver(StreamFault::EndAfter(*events)),
            FaultKind::Stall {
                after,
                duration,
                every,
            } => Effect::Deliver(StreamFault::Stall {
                after: *after,
                duration: *duration,
                every: *every,
            }),
            FaultKind::MalformedEvent { at } => Effect::Deliver(StreamFault::MalformedEvent(*at)),
            FaultKind::ErrorEvent { at } => Effect::Deliver(StreamFault::ErrorEvent(*at)),
            FaultKind::NoDone => Effect::Deliver(StreamFault::NoDone),
        }
    }

    /// The error this fault answers `GET /v1/models` with, or `None` where it does not apply
    /// there: only error faults that need neither a prompt nor a model name do.
    pub(crate) fn models_error(&self) -> Option<ErrorCase> {
        match self.effect() {
            Effect::Error(error) if error.case.on_model_list() => Some(error.case),
            Effect::Error(_)
            | Effect::Reset
            | Effect::Hang
            | Effect::DelayHeaders(_)
            | Effect::WrongModel(_)
            | Effect::Answer(_)
            | Effect::FilterOutput
            | Effect::Quota(_)
            | Effect::Deliver(_) => None,
        }
    }

    /// The snake_case name used as `kind` in scripts and as `fault` in the request log.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Status { .. } => "status",
            FaultKind::RateLimit { .. } => "rate_limit",
            FaultKind::Overloaded => "overloaded",
            FaultKind::ContextLength => "context_length",
            FaultKind::ContentFilter => "content_filter",
            FaultKind::Unauthorized => "unauthorized",
            FaultKind::Forbidden => "forbidden",
            FaultKind::InsufficientQuota => "insufficient_quota",
            FaultKind::UnknownModel => "unknown_model",
            FaultKind::Reset => "reset",
            FaultKind::Hang => "hang",
            FaultKind::DelayHeaders { .. } => "delay_headers",
            FaultKind::SlowFirstToken { .. } => "slow_first_token",
            FaultKind::SlowStream { .. } => "slow_stream",
            FaultKind::CutAfter { .. } => "cut_after",
            FaultKind::EndAfter { .. } => "end_after",
            FaultKind::Stall { .. } => "stall",
            FaultKind::MalformedEvent { .. } => "malformed_event",
            FaultKind::ErrorEvent { .. } => "error_event",
            FaultKind::NoDone => "no_done",
            FaultKind::RejectPrefill => "reject_prefill",
            FaultKind::WrongModel { .. } => "wrong_model",
            FaultKind::Answer { .. } => "answer",
            FaultKind::OutputFilter => "output_filter",
            FaultKind::Quota(_) => "quota",
        }
    }
}

/// One scripted misbehaviour: which requests, how often, what happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "crate::spec::FaultSpec", into = "crate::spec::FaultSpec")]
pub struct Fault {
    /// Which requests.
    pub selector: Selector,
    /// How often.
    pub mode: Mode,
    /// What happens.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault that hits every request on every route; narrow it with the builder methods.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            selector: Selector::default(),
            mode: Mode::Always,
            kind,
        }
    }

    /// Shorthand for `Fault::new(FaultKind::Status { status, retry_after: None })`.
    pub fn status(status: u16) -> Self {
        Fault::new(FaultKind::Status {
            status,
            retry_after: None,
        })
    }

    /// Restricts the fault to one route.
    pub fn route(mut self, route: Route) -> Self {
        self.selector.route = Some(route);
        self
    }

    /// Restricts the fault to a model name or glob (`"gpt-*"`).
    pub fn model(mut self, pattern: impl Into<String>) -> Self {
        self.selector.model = Some(pattern.into());
        self
    }

    /// Applies the fault to the next `n` selected requests only.
    pub fn count(mut self, n: u64) -> Self {
        self.mode = Mode::Count(n);
        self
    }

    /// Applies the fault between `from` and `until` after it is added.
    pub fn window(mut self, from: Duration, until: Option<Duration>) -> Self {
        self.mode = Mode::Window { from, until };
        self
    }

    /// Applies the fault to each selected request with probability `p` (seeded).
    pub fn probability(mut self, p: f64) -> Self {
        self.mode = Mode::Probability { p };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("gpt-4o", "gpt-4o"));
        assert!(!glob_match("gpt-4o", "gpt-4o-mini"));
        assert!(glob_match("gpt-*", "gpt-4o-mini"));
        assert!(glob_match("*-mini", "gpt-4o-mini"));
        assert!(glob_match("claude-*-4-5*", "claude-sonnet-4-5-20250929"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("gpt-*", "claude-3"));
        assert!(!glob_match("a*b*c", "abca"));
        assert!(glob_match("a*a", "aa"));
        assert!(!glob_match("a*a", "a"));
    }

    #[test]
    fn selector_needs_route_and_model_to_match() {
        let sel = Selector {
            route: Some(Route::Openai),
            model: Some("gpt-*".into()),
        };
        assert!(sel.matches(Route::Openai, "gpt-4o"));
        assert!(!sel.matches(Route::Anthropic, "gpt-4o"));
        assert!(!sel.matches(Route::Openai, "o3"));
        assert!(Selector::default().matches(Route::Gemini, "anything"));
    }
}
