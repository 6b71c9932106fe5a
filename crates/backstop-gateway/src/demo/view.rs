//! The demo's live view: one line per second with the progress, the act, what the
//! clients got in that second, who served them, and every breaker's state.

use super::story::Act;
use crate::drill::admin::TargetState;
use crate::drill::load::Sample;
use crate::drill::text::served;
use std::collections::BTreeMap;
use std::time::Duration;

const BAR: usize = 20;

/// One line of the live view for the second ending at `at`.
pub fn line(
    at: Duration,
    total: Duration,
    act: Act,
    second: &[Sample],
    breakers: Option<&[TargetState]>,
) -> String {
    let done = if total.is_zero() {
        BAR
    } else {
        ((at.as_secs_f64() / total.as_secs_f64()) * BAR as f64).round() as usize
    }
    .min(BAR);
    let ok = second.iter().filter(|s| s.ok()).count();
    let mut counts = BTreeMap::new();
    for target in second.iter().filter_map(Sample::served_by) {
        *counts.entry(target.to_string()).or_insert(0usize) += 1;
    }
    format!(
        "{:>3}s [{}{}] {:<11} {:>3} ok / {:<3} served by {:<48} breakers: {}",
        at.as_secs(),
        "#".repeat(done),
        ".".repeat(BAR - done),
        act.title(),
        ok,
        second.len(),
        served(&counts),
        breaker_states(breakers),
    )
}

/// `openai/gpt-4o open, azure/gpt-4o closed`, or why the states are unknown.
pub fn breaker_states(breakers: Option<&[TargetState]>) -> String {
    match breakers {
        None => "unknown (GET /admin/targets failed)".to_string(),
        Some([]) => "none yet".to_string(),
        Some(list) => list
            .iter()
            .map(|t| format!("{} {}", t.target, t.state))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::load::Outcome;

    #[test]
    fn a_line_shows_progress_service_and_breakers() {
        let sample = |status, target: &str| Sample {
            sent: Duration::ZERO,
            latency: Duration::from_millis(5),
            outcome: Outcome {
                status: Some(status),
                target: Some(target.into()),
                ..Outcome::default()
            },
        };
        let second = vec![
            sample(200, "a/m"),
            sample(200, "a/m"),
            sample(200, "b/m"),
            sample(503, "b/m"),
        ];
        let breakers = vec![
            TargetState {
                target: "a/m".into(),
                state: "closed".into(),
                ..TargetState::default()
            },
            TargetState {
                target: "b/m".into(),
                state: "open".into(),
                ..TargetState::default()
            },
        ];
        let text = line(
            Duration::from_secs(14),
            Duration::from_secs(28),
            Act::Outage,
            &second,
            Some(&breakers),
        );
        assert!(
            text.starts_with(" 14s [##########..........] outage"),
            "{text}"
        );
        assert!(text.contains("3 ok / 4"), "{text}");
        assert!(text.contains("served by a/m 2, b/m 1"), "{text}");
        assert!(text.ends_with("breakers: a/m closed, b/m open"), "{text}");
        assert!(breaker_states(None).contains("unknown"));
    }
}
