//! The drill report: what the clients saw, before, during and after the fault.
//!
//! Everything is computed from the client side only (status, `x-backstop-*` headers,
//! timings), so the same report is true for an in-process gateway and for a remote
//! one. Requests belong to a phase by the time they were sent.

use super::admin::TargetState;
use super::load::Sample;
use super::target::{matches_any, TargetRef};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What was drilled: the setting of the run, copied into the report.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// The faulted targets (`provider/model`, `provider/*` for every model of a provider).
    pub targets: Vec<String>,
    /// The public model the load asked for.
    pub model: String,
    /// The fault, e.g. `status:503`.
    pub fault: String,
    /// Requests per second sent.
    pub rate: f64,
    /// Length of the load, in milliseconds.
    pub duration_ms: f64,
    /// When the fault began, in milliseconds since the start.
    pub fault_start_ms: f64,
    /// When the fault ended, in milliseconds since the start.
    pub fault_end_ms: f64,
}

/// Figures for the requests sent in one phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phase {
    /// Requests sent in the phase.
    pub requests: usize,
    /// Of which answered 2xx.
    pub succeeded: usize,
    /// `succeeded / requests` (1.0 when there were none).
    pub success_rate: f64,
    /// Sum of `x-backstop-attempts` divided by requests.
    pub attempts_per_request: f64,
    /// Median client latency in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile client latency in milliseconds.
    pub p99_ms: Option<f64>,
    /// Successful requests per serving target.
    pub served_by: BTreeMap<String, usize>,
}

/// The three phases of a drill.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Sent before the fault began.
    pub before: Phase,
    /// Sent while the fault was in force.
    pub during: Phase,
    /// Sent after the fault ended.
    pub after: Phase,
}

/// The whole report (`backstop drill --json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was drilled.
    #[serde(flatten)]
    pub scenario: Scenario,
    /// Requests sent and completed.
    pub requests: usize,
    /// Of which answered 2xx.
    pub succeeded: usize,
    /// Client-visible success rate over the whole run.
    pub success_rate: f64,
    /// Sum of `x-backstop-attempts` over all requests.
    pub upstream_attempts: u64,
    /// Upstream calls per client request over the whole run.
    pub attempts_per_request: f64,
    /// From the fault's start to the first answer (to a request sent after it)
    /// served by another target, in milliseconds; `null` if none was.
    pub failover_ms: Option<f64>,
    /// The target that served that first answer.
    pub failover_target: Option<String>,
    /// From the fault's end to the first answer (to a request sent after it) served
    /// again by a faulted target, in milliseconds; `null` if not seen in the run.
    pub recovery_ms: Option<f64>,
    /// Successful requests per serving target over the whole run.
    pub served_by: BTreeMap<String, usize>,
    /// Per-phase figures.
    pub phases: Phases,
    /// Breaker states from `/admin/targets` at the end of the run (empty if unavailable).
    pub breakers: Vec<TargetState>,
}

impl Report {
    /// Computes the report of `samples` for `scenario`, where `faulted` are the targets hit.
    pub fn compute(scenario: Scenario, faulted: &[TargetRef], samples: &[Sample]) -> Self {
        let start = Duration::from_secs_f64(scenario.fault_start_ms / 1000.0);
        let end = Duration::from_secs_f64(scenario.fault_end_ms / 1000.0);
        let whole = phase(samples.iter());
        let phases = Phases {
            before: phase(samples.iter().filter(|s| s.sent < start)),
            during: phase(samples.iter().filter(|s| s.sent >= start && s.sent < end)),
            after: phase(samples.iter().filter(|s| s.sent >= end)),
        };
        let failover = first_done(samples, start, |t| !matches_any(faulted, t));
        let recovery = first_done(samples, end, |t| matches_any(faulted, t));
        Report {
            scenario,
            requests: whole.requests,
            succeeded: whole.succeeded,
            success_rate: whole.success_rate,
            upstream_attempts: samples.iter().map(|s| u64::from(s.outcome.attempts)).sum(),
            attempts_per_request: whole.attempts_per_request,
            failover_ms: failover.map(|s| millis(s.done().saturating_sub(start))),
            failover_target: failover.and_then(|s| s.served_by()).map(str::to_string),
            recovery_ms: recovery.map(|s| millis(s.done().saturating_sub(end))),
            served_by: whole.served_by,
            phases,
            breakers: Vec::new(),
        }
    }
}

/// The earliest-completing success, among requests sent at or after `from`, whose target passes `serving`.
fn first_done(
    samples: &[Sample],
    from: Duration,
    serving: impl Fn(&str) -> bool,
) -> Option<&Sample> {
    samples
        .iter()
        .filter(|s| s.sent >= from && s.served_by().is_some_and(&serving))
        .min_by_key(|s| s.done())
}

fn phase<'a>(samples: impl Iterator<Item = &'a Sample>) -> Phase {
    let mut latencies = Vec::new();
    let mut result = Phase::default();
    let mut attempts = 0u64;
    for sample in samples {
        result.requests += 1;
        attempts += u64::from(sample.outcome.attempts);
        latencies.push(millis(sample.latency));
        if let Some(target) = sample.served_by() {
            result.succeeded += 1;
            *result.served_by.entry(target.to_string()).or_default() += 1;
        } else if sample.ok() {
            result.succeeded += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    result.success_rate = ratio(result.succeeded as f64, result.requests, 1.0);
    result.attempts_per_request = ratio(attempts as f64, result.requests, 0.0);
    result.p50_ms = percentile(&latencies, 0.50);
    result.p99_ms = percentile(&latencies, 0.99);
    result
}

fn ratio(part: f64, whole: usize, empty: f64) -> f64 {
    if whole == 0 {
        empty
    } else {
        part / whole as f64
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// A duration in milliseconds, to a tenth.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::drill::load::Outcome;

    fn sample(sent_ms: u64, latency_ms: u64, status: u16, target: &str, attempts: u32) -> Sample {
        Sample {
            sent: Duration::from_millis(sent_ms),
            latency: Duration::from_millis(latency_ms),
            outcome: Outcome {
                status: Some(status),
                target: Some(target.into()),
                model: Some("smart".into()),
                attempts,
                fallback: false,
            },
        }
    }

    fn scenario() -> Scenario {
        Scenario {
            targets: vec!["p/m".into()],
            model: "smart".into(),
            fault: "status:503".into(),
            rate: 10.0,
            duration_ms: 3000.0,
            fault_start_ms: 1000.0,
            fault_end_ms: 2000.0,
        }
    }

    #[test]
    fn figures_follow_the_phases() {
        let faulted = [TargetRef::parse("p/m").unwrap()];
        let samples = vec![
            sample(0, 10, 200, "p/m", 1),
            sample(500, 20, 200, "p/m", 1),
            sample(1000, 300, 200, "b/x", 3), // done at 1300
            sample(1100, 50, 200, "b/x", 1),  // done at 1150: the first failover
            sample(1500, 40, 503, "p/m", 3),
            sample(2000, 30, 200, "b/x", 1),
            sample(2200, 10, 200, "p/m", 1), // done at 2210: recovery
        ];
        let report = Report::compute(scenario(), &faulted, &samples);
        assert_eq!((report.requests, report.succeeded), (7, 6));
        assert_eq!(report.upstream_attempts, 11);
        assert!((report.attempts_per_request - 11.0 / 7.0).abs() < 1e-9);
        assert_eq!(report.failover_ms, Some(150.0));
        assert_eq!(report.failover_target.as_deref(), Some("b/x"));
        assert_eq!(report.recovery_ms, Some(210.0));
        assert_eq!(report.phases.before.requests, 2);
        assert_eq!(report.phases.during.requests, 3);
        assert!((report.phases.during.success_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.phases.during.p50_ms, Some(50.0));
        assert_eq!(report.phases.during.p99_ms, Some(300.0));
        assert_eq!(report.phases.after.served_by.get("p/m"), Some(&1));
        assert_eq!(report.served_by.get("b/x"), Some(&3));
    }

    #[test]
    fn no_failover_and_no_recovery_are_null() {
        let faulted = [TargetRef::parse("p").unwrap()];
        let samples = vec![
            sample(0, 10, 200, "p/m", 1),
            sample(1200, 10, 503, "p/m", 3),
        ];
        let report = Report::compute(scenario(), &faulted, &samples);
        assert_eq!((report.failover_ms, report.recovery_ms), (None, None));
        assert_eq!(
            report.phases.after,
            Phase {
                success_rate: 1.0,
                ..Phase::default()
            }
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["failover_ms"].is_null());
        assert_eq!(json["fault"], "status:503");
        assert_eq!(json["phases"]["during"]["success_rate"], 0.0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
