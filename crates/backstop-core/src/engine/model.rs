//! A reference model of the engine: the same decisions written as a plain sequential walk over scripted replies,
//! with none of the engine's machinery (no futures, no breakers, no timers). The property tests run both on the
//! same scenario and compare every call made and the result.

use crate::class::FailureClass;
use std::collections::VecDeque;

/// One scripted reply: how long it takes (ms) and how it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Reply {
    pub latency: u64,
    pub outcome: Option<Failure>,
}

/// A scripted failure: its class and a server hint in ms (transient only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Failure {
    pub class: FailureClass,
    pub hint: Option<u64>,
}

/// One candidate of a scenario.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    pub replies: Vec<Reply>,
    pub group: Option<usize>,
    pub max_attempts: u32,
    pub hedge_after: Option<u64>,
    pub stop_on_content_filter: bool,
    pub open: bool,
}

/// A whole scenario.
#[derive(Clone, Debug)]
pub(super) struct Scenario {
    pub candidates: Vec<Spec>,
    /// Retries and hedges the budget pays for.
    pub budget: u32,
    /// The backoff's cap in ms: a longer hint moves on at once.
    pub max_delay: u64,
}

/// The reply a candidate gives once its script is used up.
pub(super) const DEFAULT_REPLY: Reply = Reply {
    latency: 1,
    outcome: None,
};

/// What a run did: every call `(candidate, attempt number)` in the order they started, and the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Trace {
    pub calls: Vec<(usize, u32)>,
    pub result: Result<usize, (bool, usize)>,
}

struct World<'a> {
    scenario: &'a Scenario,
    scripts: Vec<VecDeque<Reply>>,
    open: Vec<bool>,
    budget: u32,
    calls: Vec<(usize, u32)>,
    failures: usize,
}

impl World<'_> {
    fn call(&mut self, index: usize, number: u32) -> Reply {
        self.calls.push((index, number));
        self.scripts[index].pop_front().unwrap_or(DEFAULT_REPLY)
    }

    fn failed(&mut self, index: usize, failure: Failure) {
        self.failures += 1;
        if failure.class == FailureClass::TargetBroken {
            self.open[index] = true;
        }
    }

    fn spend(&mut self) -> bool {
        let ok = self.budget > 0;
        self.budget -= u32::from(ok);
        ok
    }
}

/// Runs the scenario the way the engine's documentation says it runs. `Ok(served_by)`, or `Err((stopped early,
/// failures recorded))`.
pub(super) fn reference(scenario: &Scenario) -> Trace {
    let mut w = World {
        scenario,
        scripts: scenario
            .candidates
            .iter()
            .map(|c| c.replies.iter().copied().collect())
            .collect(),
        open: scenario.candidates.iter().map(|c| c.open).collect(),
        budget: scenario.budget,
        calls: Vec::new(),
        failures: 0,
    };
    let result = walk(&mut w);
    Trace {
        calls: w.calls,
        result,
    }
}

fn walk(w: &mut World<'_>) -> Result<usize, (bool, usize)> {
    let specs = &w.scenario.candidates;
    'candidates: for (i, spec) in specs.iter().enumerate() {
        let mut number = 0;
        loop {
            if w.open[i] {
                continue 'candidates;
            }
            number += 1;
            let primary = w.call(i, number);
            let failure = match race(w, i, number, primary) {
                Ok(served_by) => return Ok(served_by),
                Err(failure) => failure,
            };
            w.failed(i, failure);
            match failure.class {
                FailureClass::Transient => {
                    let channel_ahead = specs[i + 1..].iter().enumerate().any(|(k, other)| {
                        spec.group.is_some() && other.group == spec.group && !w.open[i + 1 + k]
                    });
                    let hint_too_long = failure.hint.is_some_and(|h| h > w.scenario.max_delay);
                    if channel_ahead
                        || number >= spec.max_attempts.max(1)
                        || w.open[i]
                        || hint_too_long
                        || !w.spend()
                    {
                        continue 'candidates;
                    }
                }
                FailureClass::ContentFilter if spec.stop_on_content_filter => {
                    return Err((true, w.failures))
                }
                FailureClass::Permanent => return Err((true, w.failures)),
                FailureClass::ContentFilter
                | FailureClass::Unavailable
                | FailureClass::TargetBroken
                | FailureClass::ContextLength => continue 'candidates,
            }
        }
    }
    Err((false, w.failures))
}

/// The primary reply of attempt `number` on `i`, hedged when it is slower than the candidate's hedge delay.
/// `Ok(served_by)` or the primary's failure (a failed hedge is recorded here).
fn race(w: &mut World<'_>, i: usize, _number: u32, primary: Reply) -> Result<usize, Failure> {
    let specs = &w.scenario.candidates;
    let hedge = specs[i]
        .hedge_after
        .filter(|&delay| primary.latency > delay)
        .and_then(|delay| {
            let j = (i + 1..specs.len()).find(|&j| !w.open[j])?;
            w.spend().then_some((j, delay))
        });
    let Some((j, delay)) = hedge else {
        return primary.outcome.map_or(Ok(i), Err);
    };
    let second = w.call(j, 1);
    let hedge_done = delay + second.latency;
    match (primary.outcome, second.outcome) {
        (None, None) if primary.latency < hedge_done => Ok(i),
        (None, None) => Ok(j),
        (None, Some(f)) => {
            if hedge_done < primary.latency {
                w.failed(j, f);
            }
            Ok(i)
        }
        (Some(f), None) => {
            if primary.latency < hedge_done {
                w.failed(i, f);
            }
            Ok(j)
        }
        (Some(f), Some(g)) => {
            w.failed(j, g);
            Err(f)
        }
    }
}
