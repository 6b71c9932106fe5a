//! The flat, human-friendly table that scripts and `POST /_mock/faults` use for a [`Fault`].
//!
//! People write these by hand during an incident rehearsal, so the table is flat
//! (`{ "kind": "status", "status": 503, "count": 2 }`), durations are strings, unknown or
//! misplaced keys are errors that name the key, and at most one of `count`, `window`, `always`,
//! `probability` may be given (none means always).

use serde::{Deserialize, Serialize};

use crate::fault::{Fault, FaultKind, Mode, Route, Selector};
use backstop_core::duration::{format_duration, parse_duration};

/// `Retry-After` may be written as `"2"` or `2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringOrNumber {
    Text(String),
    Number(u64),
}

impl StringOrNumber {
    fn into_string(self) -> String {
        match self {
            StringOrNumber::Text(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        }
    }
}

/// Serde form of [`Fault`]; see `docs/mock.md` for every key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route: Option<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<StringOrNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<usize>,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens_remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    always: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probability: Option<f64>,
}

/// Takes a required key out of the spec, or says which kind needs it.
fn need<T>(value: Option<T>, key: &str, kind: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("kind `{kind}` needs the key `{key}`"))
}

fn duration_key(
    value: Option<String>,
    key: &str,
    kind: &str,
) -> Result<std::time::Duration, String> {
    parse_duration(&need(value, key, kind)?).map_err(|e| format!("`{key}`: {e}"))
}

impl FaultSpec {
    /// Names of the kind-specific keys that are present, to reject the ones a kind does not use.
    fn present_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let checks: [(&'static str, bool); 14] = [
            ("limit", self.limit.is_some()),
            ("remaining", self.remaining.is_some()),
            ("reset", self.reset.is_some()),
            ("tokens_limit", self.tokens_limit.is_some()),
            ("tokens_remaining", self.tokens_remaining.is_some()),
            ("status", self.status.is_some()),
            ("retry_after", self.retry_after.is_some()),
            ("delay", self.delay.is_some()),
            ("events", self.events.is_some()),
            ("after", self.after.is_some()),
            ("for", self.for_.is_some()),
            ("at", self.at.is_some()),
            ("name", self.name.is_some()),
            ("text", self.text.is_some()),
        ];
        for (key, present) in checks {
            if present {
                keys.push(key);
            }
        }
        keys
    }

    fn mode(&self) -> Result<Mode, String> {
        let given = [
            self.count.is_some(),
            self.window.is_some(),
            self.always.is_some(),
            self.probability.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(
                "give at most one of `count`, `window`, `always`, `probability`".to_owned(),
            );
        }
        if let Some(n) = self.count {
            return Ok(Mode::Count(n));
        }
        if let Some(window) = &self.window {
            let parse = |s: &String| parse_duration(s).map_err(|e| format!("`window`: {e}"));
            let (from, until) = match window.as_slice() {
                [from] => (parse(from)?, None),
                [from, until] => (parse(from)?, Some(parse(until)?)),
                _ => return Err(
                    "`window` must be [\"FROM\"] or [\"FROM\", \"UNTIL\"], e.g. [\"0s\", \"60s\"]"
                        .to_owned(),
                ),
            };
            if until.is_some_and(|u| u <= from) {
                return Err("`window`: the end must be after the start".to_owned());
            }
            return Ok(Mode::Window { from, until });
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("`probability` must be between 0 and 1, got {p}"));
            }
            return Ok(Mode::Probability { p });
        }
        match self.always {
            Some(false) => {
                Err("`always = false` never applies; remove the fault instead".to_owned())
            }
            Some(true) | None => Ok(Mode::Always),
        }
    }

    fn kind(self) -> Result<FaultKind, String> {
        let kind_name = self.kind.clone();
        let k = kind_name.as_str();
        let allowed: &[&str] = match k {
            "status" => &["status", "retry_after"],
            "rate_limit" => &["retry_after"],
            "delay_headers" | "slow_first_token" | "slow_stream" => &["delay"],
            "cut_after" | "end_after" => &["events"],
            "stall" => &["after", "for", "delay"],
            "malformed_event" | "error_event" => &["at"],
            "wrong_model" => &["name"],
            "answer" => &["text"],
            "quota" => &[
                "limit",
                "remaining",
                "reset",
                "tokens_limit",
                "tokens_remaining",
            ],
            _ => &[],
        };
        if let Some(extra) = self
            .present_keys()
            .into_iter()
            .find(|key| !allowed.contains(key))
        {
            return Err(format!("the key `{extra}` does not apply to kind `{k}`"));
        }
        let retry_after = self.retry_after.map(StringOrNumber::into_string);
        Ok(match k {
            "status" => {
                let status = need(self.status, "status", k)?;
                if !(100..=599).contains(&status) {
                    return Err(format!(
                        "`status` must be an HTTP status between 100 and 599, got {status}"
                    ));
                }
                FaultKind::Status {
                    status,
                    retry_after,
                }
            }
            "rate_limit" => FaultKind::RateLimit { retry_after },
            "overloaded" => FaultKind::Overloaded,
            "context_length" => FaultKind::ContextLength,
            "content_filter" => FaultKind::ContentFilter,
            "unauthorized" => FaultKind::Unauthorized,
            "forbidden" => FaultKind::Forbidden,
            "insufficient_quota" => FaultKind::InsufficientQuota,
            "unknown_model" => FaultKind::UnknownModel,
            "reset" => FaultKind::Reset,
            "hang" => FaultKind::Hang,
            "delay_headers" => FaultKind::DelayHeaders {
                delay: duration_key(self.delay, "delay", k)?,
            },
            "slow_first_token" => FaultKind::SlowFirstToken {
                delay: duration_key(self.delay, "delay", k)?,
            },
            "slow_stream" => FaultKind::SlowStream {
                delay: duration_key(self.delay, "delay", k)?,
            },
            "end_after" => FaultKind::EndAfter {
                events: need(self.events, "events", k)?,
            },
            "cut_after" => FaultKind::CutAfter {
                events: need(self.events, "events", k)?,
            },
            "stall" => FaultKind::Stall {
                after: need(self.after, "after", k)?,
                duration: duration_key(self.for_, "for", k)?,
                every: match self.delay {
                    Some(_) => Some(duration_key(self.delay, "delay", k)?),
                    None => None,
                },
            },
            "malformed_event" => FaultKind::MalformedEvent {
                at: need(self.at, "at", k)?,
            },
            "error_event" => FaultKind::ErrorEvent {
                at: need(self.at, "at", k)?,
            },
            "no_done" => FaultKind::NoDone,
            "reject_prefill" => FaultKind::RejectPrefill,
            "answer" => FaultKind::Answer {
                text: need(self.text, "text", k)?,
            },
            "output_filter" => FaultKind::OutputFilter,
            "wrong_model" => FaultKind::WrongModel {
                name: need(self.name, "name", k)?,
            },
            "quota" => FaultKind::Quota(crate::quota::Quota {
                limit: need(self.limit, "limit", k)?,
                remaining: need(self.remaining, "remaining", k)?,
                reset: duration_key(self.reset, "reset", k)?,
                tokens: match (self.tokens_limit, self.tokens_remaining) {
                    (Some(limit), Some(remaining)) => Some((limit, remaining)),
                    (None, None) => None,
                    _ => {
                        return Err(
                            "give both `tokens_limit` and `tokens_remaining`, or neither"
                                .to_owned(),
                        )
                    }
                },
            }),
            other => {
                return Err(format!(
                    "unknown fault kind `{other}`; known kinds: {}",
                    KINDS.join(", ")
                ))
            }
        })
    }
}

/// Every `kind` a script may use.
pub(crate) const KINDS: [&str; 25] = [
    "status",
    "rate_limit",
    "overloaded",
    "context_length",
    "content_filter",
    "unauthorized",
    "forbidden",
    "insufficient_quota",
    "unknown_model",
    "reset",
    "hang",
    "delay_headers",
    "slow_first_token",
    "slow_stream",
    "cut_after",
    "end_after",
    "stall",
    "malformed_event",
    "error_event",
    "no_done",
    "reject_prefill",
    "wrong_model",
    "answer",
    "output_filter",
    "quota",
];

impl TryFrom<FaultSpec> for Fault {
    type Error = String;

    fn try_from(spec: FaultSpec) -> Result<Self, String> {
        let mode = spec.mode()?;
        let selector = Selector {
            route: spec.route,
            model: spec.model.clone(),
        };
        let kind = spec.kind()?;
        Ok(Fault {
            selector,
            mode,
            kind,
        })
    }
}

impl From<Fault> for FaultSpec {
    fn from(fault: Fault) -> Self {
        let mut spec = FaultSpec {
            route: fault.selector.route,
            model: fault.selector.model,
            kind: fault.kind.name().to_owned(),
            ..FaultSpec::default()
        };
        match fault.mode {
            Mode::Count(n) => spec.count = Some(n),
            Mode::Window { from, until } => {
                let mut window = vec![format_duration(from)];
                window.extend(until.map(format_duration));
                spec.window = Some(window);
            }
            Mode::Always => spec.always = Some(true),
            Mode::Probability { p } => spec.probability = Some(p),
        }
        match fault.kind {
            FaultKind::Status {
                status,
                retry_after,
            } => {
                spec.status = Some(status);
                spec.retry_after = retry_after.map(StringOrNumber::Text);
            }
            FaultKind::RateLimit { retry_after } => {
                spec.retry_after = retry_after.map(StringOrNumber::Text)
            }
            FaultKind::DelayHeaders { delay }
            | FaultKind::SlowFirstToken { delay }
            | FaultKind::SlowStream { delay } => {
                spec.delay = Some(format_duration(delay));
            }
            FaultKind::CutAfter { events } | FaultKind::EndAfter { events } => {
                spec.events = Some(events)
            }
            FaultKind::Stall {
                after,
                duration,
                every,
            } => {
                spec.after = Some(after);
                spec.for_ = Some(format_duration(duration));
                spec.delay = every.map(format_duration);
            }
            FaultKind::MalformedEvent { at } | FaultKind::ErrorEvent { at } => spec.at = Some(at),
            FaultKind::WrongModel { name } => spec.name = Some(name),
            FaultKind::Answer { text } => spec.text = Some(text),
            FaultKind::Quota(quota) => {
                spec.limit = Some(quota.limit);
                spec.remaining = Some(quota.remaining);
                spec.reset = Some(format_duration(quota.reset));
                if let Some((limit, remaining)) = quota.tokens {
                    spec.tokens_limit = Some(limit);
                    spec.tokens_remaining = Some(remaining);
                }
            }
            FaultKind::Overloaded
            | FaultKind::ContextLength
            | FaultKind::ContentFilter
            | FaultKind::Unauthorized
            | FaultKind::Forbidden
            | FaultKind::InsufficientQuota
            | FaultKind::UnknownModel
            | FaultKind::Reset
            | FaultKind::Hang
            | FaultKind::NoDone
            | FaultKind::RejectPrefill
            | FaultKind::OutputFilter => {}
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> Result<Fault, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_documented_examples() {
        let f = parse(json!({ "route": "openai", "model": "gpt-*", "kind": "status", "status": 503, "count": 2 })).unwrap();
        assert_eq!(
            f,
            Fault::status(503)
                .route(Route::Openai)
                .model("gpt-*")
                .count(2)
        );
        let f = parse(json!({ "kind": "cut_after", "events": 40 })).unwrap();
        assert_eq!(f, Fault::new(FaultKind::CutAfter { events: 40 }));
        let f = parse(
            json!({ "kind": "status", "status": 429, "retry_after": "2", "window": ["0s", "60s"] }),
        )
        .unwrap();
        assert_eq!(
            f.mode,
            Mode::Window {
                from: Duration::ZERO,
                until: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            f.kind,
            FaultKind::Status {
                status: 429,
                retry_after: Some("2".into())
            }
        );
        let f =
            parse(json!({ "kind": "slow_stream", "delay": "50ms", "probability": 0.1 })).unwrap();
        assert_eq!(
            f,
            Fault::new(FaultKind::SlowStream {
                delay: Duration::from_millis(50)
            })
            .probability(0.1)
        );
        let f = parse(json!({ "kind": "error_event", "at": 0, "route": "anthropic" })).unwrap();
        assert_eq!(
            f,
            Fault::new(FaultKind::ErrorEvent { at: 0 }).route(Route::Anthropic)
        );
        let f = parse(json!({ "kind": "stall", "after": 3, "for": "2s" })).unwrap();
        assert_eq!(
            f.kind,
            FaultKind::Stall {
                after: 3,
                duration: Duration::from_secs(2),
                every: None,
            }
        );
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in KINDS {
            let mut value = json!({ "kind": kind });
            match kind {
                "status" => value["status"] = json!(500),
                "delay_headers" | "slow_first_token" | "slow_stream" => {
                    value["delay"] = json!("1s")
                }
                "cut_after" | "end_after" => value["events"] = json!(3),
                "stall" => {
                    value["after"] = json!(1);
                    value["for"] = json!("1m");
                }
                "malformed_event" | "error_event" => value["at"] = json!(2),
                "wrong_model" => value["name"] = json!("other"),
                "answer" => value["text"] = json!("{\"n\": 1}"),
                "quota" => {
                    value["limit"] = json!(100);
                    value["remaining"] = json!(3);
                    value["reset"] = json!("20s");
                    value["tokens_limit"] = json!(1000);
                    value["tokens_remaining"] = json!(10);
                }
                _ => {}
            }
            let fault = parse(value).unwrap();
            assert_eq!(fault.kind.name(), kind);
            let back = serde_json::to_value(&fault).unwrap();
            assert_eq!(parse(back).unwrap(), fault);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (json!({ "kind": "explode" }), "unknown fault kind `explode`"),
            (json!({ "kind": "status" }), "needs the key `status`"),
            (json!({ "kind": "error_event" }), "needs the key `at`"),
            (
                json!({ "kind": "status", "status": 42 }),
                "between 100 and 599",
            ),
            (
                json!({ "kind": "reset", "delay": "1s" }),
                "`delay` does not apply to kind `reset`",
            ),
            (
                json!({ "kind": "hang", "count": 1, "always": true }),
                "at most one of",
            ),
            (
                json!({ "kind": "hang", "probability": 1.5 }),
                "between 0 and 1",
            ),
            (
                json!({ "kind": "hang", "window": ["5s", "1s"] }),
                "end must be after",
            ),
            (
                json!({ "kind": "slow_stream", "delay": "fast" }),
                "`delay`: `fast` is not a duration",
            ),
            (
                json!({ "kind": "hang", "colour": "red" }),
                "unknown field `colour`",
            ),
            (
                json!({ "kind": "hang", "route": "watsonx" }),
                "unknown variant `watsonx`",
            ),
        ];
        for (value, expected) in cases {
            let err = parse(value.clone()).unwrap_err();
            assert!(err.contains(expected), "{value}: {err}");
        }
    }
}
