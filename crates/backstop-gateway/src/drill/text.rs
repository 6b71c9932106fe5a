//! The drill report for people: a short summary, then one line per phase.

use super::report::{Phase, Report};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Renders `report` as the text `backstop drill` prints without `--json`.
pub fn render(report: &Report) -> String {
    let s = &report.scenario;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Backstop drill: model {} | fault {} on {} from {} to {} | {} req/s for {}",
        s.model,
        s.fault,
        s.targets.join(", "),
        seconds(s.fault_start_ms),
        seconds(s.fault_end_ms),
        trim(s.rate),
        seconds(s.duration_ms),
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  success rate        {:.2} % ({} of {} requests)",
        report.success_rate * 100.0,
        report.succeeded,
        report.requests
    );
    let _ = writeln!(
        out,
        "  upstream attempts   {:.2} per request ({} in all)",
        report.attempts_per_request, report.upstream_attempts
    );
    let failover = match (report.failover_ms, &report.failover_target) {
        (Some(ms), Some(target)) => format!(
            "{} after the fault began, first served by {target}",
            duration(ms)
        ),
        (Some(ms), None) => format!("{} after the fault began", duration(ms)),
        (None, _) => "none: no other target served a request during or after the fault".to_string(),
    };
    let _ = writeln!(out, "  failover            {failover}");
    let recovery = match report.recovery_ms {
        Some(ms) => format!(
            "{} after the fault ended, the faulted target served again",
            duration(ms)
        ),
        None => "not seen: the faulted target served nothing after the fault \
                 (is its breaker's open_for longer than the time left in the run?)"
            .to_string(),
    };
    let _ = writeln!(out, "  recovery            {recovery}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<7} {:>8} {:>9} {:>12} {:>9} {:>9}  served by",
        "phase", "requests", "success", "attempts/req", "p50", "p99"
    );
    for (name, phase) in [
        ("before", &report.phases.before),
        ("during", &report.phases.during),
        ("after", &report.phases.after),
    ] {
        let _ = writeln!(out, "  {}", phase_line(name, phase));
    }
    if !report.breakers.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "  breakers at the end:");
        for breaker in &report.breakers {
            let trip = match &breaker.last_trip {
                Some(serde_json::Value::String(reason)) => format!(" (last trip: {reason})"),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => format!(" (last trip: {other})"),
            };
            let _ = writeln!(out, "    {:<40} {}{trip}", breaker.target, breaker.state);
        }
    }
    out
}

fn phase_line(name: &str, phase: &Phase) -> String {
    let latency = |v: Option<f64>| v.map_or_else(|| "-".to_string(), duration);
    format!(
        "{:<7} {:>8} {:>8.2}% {:>12.2} {:>9} {:>9}  {}",
        name,
        phase.requests,
        phase.success_rate * 100.0,
        phase.attempts_per_request,
        latency(phase.p50_ms),
        latency(phase.p99_ms),
        served(&phase.served_by),
    )
}

/// `a/m 12, b/m 3`, busiest first.
pub fn served(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "nobody".to_string();
    }
    let mut pairs: Vec<(&String, &usize)> = counts.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    pairs
        .iter()
        .map(|(target, count)| format!("{target} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `850 ms`, `3.2 s`.
pub fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn seconds(ms: f64) -> String {
    format!("{} s", trim(ms / 1000.0))
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::{Phases, Scenario};

    #[test]
    fn the_text_names_the_figures() {
        let mut during = Phase {
            requests: 10,
            succeeded: 10,
            success_rate: 1.0,
            attempts_per_request: 1.5,
            p50_ms: Some(12.0),
            p99_ms: Some(1500.0),
            ..Phase::default()
        };
        during.served_by.insert("b/x".into(), 10);
        let report = Report {
            scenario: Scenario {
                targets: vec!["a/m".into()],
                model: "smart".into(),
                fault: "status:503".into(),
                rate: 20.0,
                duration_ms: 30_000.0,
                fault_start_ms: 5_000.0,
                fault_end_ms: 15_000.0,
            },
            requests: 600,
            succeeded: 599,
            success_rate: 599.0 / 600.0,
            upstream_attempts: 700,
            attempts_per_request: 700.0 / 600.0,
            failover_ms: Some(41.0),
            failover_target: Some("b/x".into()),
            recovery_ms: None,
            served_by: BTreeMap::new(),
            phases: Phases {
                during,
                ..Phases::default()
            },
            breakers: Vec::new(),
        };
        let text = render(&report);
        assert!(
            text.contains("fault status:503 on a/m from 5 s to 15 s | 20 req/s for 30 s"),
            "{text}"
        );
        assert!(text.contains("99.83 % (599 of 600 requests)"), "{text}");
        assert!(text.contains("1.17 per request (700 in all)"), "{text}");
        assert!(
            text.contains("41 ms after the fault began, first served by b/x"),
            "{text}"
        );
        assert!(text.contains("recovery            not seen"), "{text}");
        assert!(text.contains("12 ms     1.5 s  b/x 10"), "{text}");
    }
}
