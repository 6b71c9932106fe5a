//! Drift: the model a provider says answered, compared with the version a target is pinned to in the catalog. A
//! mismatch is counted (`backstop_model_drift_total{target,reported}`), logged once per new value, listed in
//! `/status`, and with the model's `on_drift = "fail"` the answer is refused as from a broken target, so the
//! request fails over to a channel that still serves the pinned version. A stream is checked on its start event:
//! before the commit point a drift under `"fail"` fails the attempt the same way; after it (a continuation on
//! another channel) it is counted and logged only.
//!
//! A reported name that contains the pin, or is contained in it, is not a drift: providers report the same
//! version in their own spelling (Bedrock's `anthropic.claude-...-v1:0` answers with `claude-...`).

use crate::config::DriftPolicy;
use crate::metrics::Metrics;
use crate::pipeline::{record_usage, Failure, Route};
use backstop_core::FailureClass;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// The most distinct (target, reported) pairs kept; past it new ones are counted as `reported="other"`, so an
/// upstream cannot grow the metrics without bound.
const MAX_PAIRS: usize = 256;

/// The longest reported name kept.
const MAX_NAME: usize = 128;

/// The drifts seen by this process.
#[derive(Default)]
pub struct Drifts {
    seen: Mutex<BTreeMap<(String, String), u64>>,
}

impl Drifts {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), u64>> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `target` answering as `reported`; `true` the first time this pair is seen.
    fn observe(&self, metrics: &Metrics, target: &str, reported: &str) -> bool {
        let mut seen = self.lock();
        let mut reported: String = reported.chars().take(MAX_NAME).collect();
        let key = (target.to_string(), reported.clone());
        if !seen.contains_key(&key) && seen.len() >= MAX_PAIRS {
            reported = "other".to_string();
        }
        let count = seen
            .entry((target.to_string(), reported.clone()))
            .or_insert(0);
        *count += 1;
        metrics.governance().drift(target, &reported);
        *count == 1
    }

    /// Every drift seen, for `/status`: `[{target, reported, count}]`.
    pub fn report(&self) -> Value {
        let seen = self.lock();
        Value::Array(
            seen.iter()
                .map(|((target, reported), count)| {
                    json!({"target": target, "reported": reported, "count": count})
                })
                .collect(),
        )
    }
}

/// The two fields of an answer that name the model it came from; every other field is skipped unread.
#[derive(serde::Deserialize)]
struct ReportedModel<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "modelVersion")]
    model_version: Option<Cow<'a, str>>,
}

/// The model an answer body says it came from (`model`; Gemini's `modelVersion`), borrowed from the body
/// unless it holds escapes.
fn reported_model(body: &[u8]) -> Option<Cow<'_, str>> {
    let fields: ReportedModel = serde_json::from_slice(body).ok()?;
    fields.model.or(fields.model_version)
}

/// Whether `route`'s target is pinned to a version in the catalog: only then is what it reports compared.
fn pinned(route: &Route) -> bool {
    route.model.policy.pinned.contains(&*route.target.label)
}

/// Whether `reported` is the pinned `version`, in the provider's spelling.
fn same_version(version: &str, reported: &str) -> bool {
    version.contains(reported) || reported.contains(version)
}

/// Whether `reported` is a drift of `route`'s pinned target: counted, and logged the first time.
fn drifted(drifts: &Drifts, metrics: &Metrics, route: &Route, reported: &str) -> bool {
    let target = &route.target;
    if !pinned(route) || same_version(&target.model, reported) {
        return false;
    }
    if drifts.observe(metrics, &target.label, reported) {
        tracing::warn!(
            target = %target.label,
            pinned = %target.model,
            reported = %reported,
            "model drift: the target answered as another model than its pinned version"
        );
    }
    true
}

/// The failure of a target that answered as `reported` under `on_drift = "fail"`.
fn drift_failure(route: &Route, reported: &str) -> Failure {
    Failure::local(
        FailureClass::TargetBroken,
        format!(
            "answered as model `{reported}`, not its pinned version `{}` (on_drift = \"fail\")",
            route.target.model
        ),
    )
}

/// Checks a whole answer of `route` against its pin: a drift is counted and logged; with `on_drift = "fail"` the
/// answer's usage is still charged and the attempt fails as from a broken target.
pub fn check_answer(
    drifts: &Drifts,
    metrics: &Metrics,
    route: &Route,
    body: &[u8],
) -> Result<(), Failure> {
    if !pinned(route) {
        return Ok(());
    }
    let Some(reported) = reported_model(body) else {
        return Ok(());
    };
    if !drifted(drifts, metrics, route, &reported)
        || route.model.policy.on_drift == DriftPolicy::Log
    {
        return Ok(());
    }
    if let Ok(Some(usage)) = backstop_protocol::read_usage(route.target.spec().protocol, body) {
        record_usage(metrics, route, &usage);
    }
    Err(drift_failure(route, &reported))
}

/// Checks the model a stream of `route` reports (its start event) against the pin: a drift is counted and logged;
/// with `on_drift = "fail"` and nothing of the stream `committed` to the client yet, the attempt fails as from a
/// broken target (the request fails over). Past the commit point the stream goes on: the client already has part
/// of the answer.
pub fn check_stream(
    drifts: &Drifts,
    metrics: &Metrics,
    route: &Route,
    reported: &str,
    committed: bool,
) -> Result<(), Failure> {
    if !drifted(drifts, metrics, route, reported)
        || route.model.policy.on_drift == DriftPolicy::Log
        || committed
    {
        return Ok(());
    }
    Err(drift_failure(route, reported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_version_in_another_spelling_is_no_drift() {
        assert!(same_version(
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5-20250929"
        ));
        assert!(same_version(
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5-20250929"
        ));
        assert!(!same_version("gpt-4o-2024-08-06", "gpt-4o-2024-11-20"));
        assert_eq!(
            reported_model(br#"{"model":"m1","choices":[]}"#).as_deref(),
            Some("m1")
        );
        assert_eq!(
            reported_model(br#"{"modelVersion":"g1"}"#).as_deref(),
            Some("g1")
        );
        assert_eq!(
            reported_model(br#"{"id":"x","model":"m\u0031","usage":{"model":3}}"#).as_deref(),
            Some("m1")
        );
        assert_eq!(reported_model(b"not json"), None);
    }

    #[test]
    fn new_pairs_are_bounded() {
        let (drifts, metrics) = (Drifts::default(), Metrics::new());
        assert!(drifts.observe(&metrics, "p/m", "x"));
        assert!(!drifts.observe(&metrics, "p/m", "x"));
        for index in 0..MAX_PAIRS + 10 {
            drifts.observe(&metrics, "p/m", &format!("v{index}"));
        }
        assert_eq!(drifts.lock().len(), MAX_PAIRS + 1);
        assert!(metrics.render().contains(r#"reported="other""#));
    }
}
