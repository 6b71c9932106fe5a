//! What the dashboard shows of the last minutes: one bucket per second of requests by
//! model and tier, latency, upstream calls, retries, hedges, fallbacks, rescues and
//! failures by class, and a short timeline of failover events. Fed by the metrics calls
//! (every count the dashboard shows is also a Prometheus metric); bounded in time (15
//! minutes of buckets) and in events.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds of history kept (the charts' span).
pub const HISTORY_SECONDS: u64 = 15 * 60;
/// Seconds summed for the tables (tier mix, failures, fallbacks, failover cost).
pub const WINDOW_SECONDS: u64 = 5 * 60;
/// Failover events kept for the timeline.
const MAX_EVENTS: usize = 100;
/// Seconds per point of the charts.
const POINT_SECONDS: u64 = 10;
/// The tiers of an answer, and `error` for a request nothing served.
pub const TIERS: [&str; 6] = ["full", "reduced", "cached", "static", "queued", "error"];

#[derive(Default)]
struct Bucket {
    second: u64,
    tiers: HashMap<String, [u64; TIERS.len()]>,
    latency_ms: f64,
    latency_max_ms: f64,
    requests: u64,
    calls: u64,
    retries: HashMap<String, u64>,
    hedges: HashMap<String, u64>,
    rescues: HashMap<String, u64>,
    fallbacks: HashMap<(String, String), u64>,
    failures: HashMap<(String, String), u64>,
}

/// One entry of the timeline.
struct Event {
    unix_ms: u64,
    kind: &'static str,
    target: String,
    detail: String,
}

#[derive(Default)]
struct Inner {
    buckets: VecDeque<Bucket>,
    events: VecDeque<Event>,
}

/// The recent activity of the gateway.
#[derive(Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    /// The bucket of the current second, dropping those older than the history.
    fn bucket(&mut self) -> &mut Bucket {
        let second = now_ms() / 1000;
        while self
            .buckets
            .front()
            .is_some_and(|b| b.second + HISTORY_SECONDS <= second)
        {
            self.buckets.pop_front();
        }
        if self.buckets.back().is_none_or(|b| b.second < second) {
            self.buckets.push_back(Bucket {
                second,
                ..Bucket::default()
            });
        }
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }

    fn event(&mut self, kind: &'static str, target: &str, detail: String) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            unix_ms: now_ms(),
            kind,
            target: target.to_string(),
            detail,
        });
    }
}

impl Activity {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A client request for `model` ended, answered at `tier` (`none`: nothing served).
    pub fn request(&self, model: &str, tier: &str, latency_ms: f64) {
        let index = TIERS
            .iter()
            .position(|t| *t == tier)
            .unwrap_or(TIERS.len() - 1);
        let mut inner = self.lock();
        let bucket = inner.bucket();
        match bucket.tiers.get_mut(model) {
            Some(counts) => counts[index] += 1,
            None => {
                let mut counts = [0; TIERS.len()];
                counts[index] = 1;
                bucket.tiers.insert(model.to_string(), counts);
            }
        }
        bucket.requests += 1;
        bucket.latency_ms += latency_ms;
        bucket.latency_max_ms = bucket.latency_max_ms.max(latency_ms);
    }

    /// An upstream call to `target` ended; `class` is its failure class, if it failed.
    pub fn call(&self, target: &str, class: Option<&str>) {
        let mut inner = self.lock();
        inner.bucket().calls += 1;
        if let Some(class) = class {
            *inner
                .bucket()
                .failures
                .entry((target.to_string(), class.to_string()))
                .or_default() += 1;
            inner.event("failure", target, class.to_string());
        }
    }

    /// `target` was retried.
    pub fn retry(&self, target: &str) {
        let mut inner = self.lock();
        *inner
            .bucket()
            .retries
            .entry(target.to_string())
            .or_default() += 1;
        inner.event("retry", target, String::new());
    }

    /// A hedge was sent because `target` was slow.
    pub fn hedge(&self, target: &str) {
        let mut inner = self.lock();
        *inner.bucket().hedges.entry(target.to_string()).or_default() += 1;
        inner.event("hedge", target, String::new());
    }

    /// A stream of `target` broke; `outcome` says whether another continued it.
    pub fn rescue(&self, target: &str, outcome: &str) {
        let mut inner = self.lock();
        *inner
            .bucket()
            .rescues
            .entry(target.to_string())
            .or_default() += 1;
        inner.event("rescue", target, outcome.to_string());
    }

    /// A request for `from` was served by `to`.
    pub fn fallback(&self, from: &str, to: &str) {
        let mut inner = self.lock();
        let key = (from.to_string(), to.to_string());
        *inner.bucket().fallbacks.entry(key).or_default() += 1;
        inner.event("fallback", from, format!("to {to}"));
    }

    /// `target`'s breaker went to `to`.
    pub fn circuit(&self, target: &str, to: &str) {
        self.lock().event("breaker", target, to.to_string());
    }

    /// The last [`WINDOW_SECONDS`] summed, the charts' points over the history, and the timeline.
    pub fn report(&self) -> Value {
        let inner = self.lock();
        let second = now_ms() / 1000;
        let recent = || {
            inner
                .buckets
                .iter()
                .filter(move |b| b.second + WINDOW_SECONDS > second)
        };
        let mut tiers: BTreeMap<&str, [u64; TIERS.len()]> = BTreeMap::new();
        let (mut requests, mut calls) = (0, 0);
        let mut per_target: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        let mut failures: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut fallbacks: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for bucket in recent() {
            requests += bucket.requests;
            calls += bucket.calls;
            for (model, counts) in &bucket.tiers {
                let sum = tiers.entry(model).or_default();
                for (total, count) in sum.iter_mut().zip(counts) {
                    *total += count;
                }
            }
            for (name, map) in [
                ("retries", &bucket.retries),
                ("hedges", &bucket.hedges),
                ("rescues", &bucket.rescues),
            ] {
                for (target, count) in map {
                    *per_target
                        .entry(target)
                        .or_default()
                        .entry(name)
                        .or_default() += count;
                }
            }
            for ((target, class), count) in &bucket.failures {
                *failures.entry((target, class)).or_default() += count;
            }
            for ((from, to), count) in &bucket.fallbacks {
                *fallbacks.entry((from, to)).or_default() += count;
            }
        }
        let tier_mix: BTreeMap<&str, Value> = tiers
            .iter()
            .map(|(model, counts)| {
                let mix: BTreeMap<&str, u64> = TIERS.iter().copied().zip(*counts).collect();
                (*model, json!(mix))
            })
            .collect();
        json!({
            "window_seconds": WINDOW_SECONDS,
            "requests": requests,
            "upstream_calls": calls,
            "calls_per_request": if requests == 0 { None } else { Some(calls as f64 / requests as f64) },
            "tiers": tier_mix,
            "per_target": per_target,
            "failures": failures.iter().map(|((target, class), count)| json!({"target": target, "class": class, "count": count})).collect::<Vec<_>>(),
            "fallbacks": fallbacks.iter().map(|((from, to), count)| json!({"from": from, "to": to, "count": count})).collect::<Vec<_>>(),
            "series": series(&inner.buckets, second),
            "events": inner.events.iter().rev().map(|e| json!({"unix_ms": e.unix_ms, "kind": e.kind, "target": e.target, "detail": e.detail})).collect::<Vec<_>>(),
        })
    }
}

/// Points of [`POINT_SECONDS`] over the history: requests per second by tier, mean and
/// largest latency.
fn series(buckets: &VecDeque<Bucket>, now: u64) -> Value {
    let points = (HISTORY_SECONDS / POINT_SECONDS) as usize;
    let first = now.saturating_sub(HISTORY_SECONDS - 1);
    let mut rate = vec![[0u64; TIERS.len()]; points];
    let mut latency = vec![(0.0f64, 0u64, 0.0f64); points];
    for bucket in buckets.iter().filter(|b| b.second >= first) {
        let at = (((bucket.second - first) / POINT_SECONDS) as usize).min(points - 1);
        for counts in bucket.tiers.values() {
            for (total, count) in rate[at].iter_mut().zip(counts) {
                *total += count;
            }
        }
        let point = &mut latency[at];
        point.0 += bucket.latency_ms;
        point.1 += bucket.requests;
        point.2 = point.2.max(bucket.latency_max_ms);
    }
    let per_second = |count: u64| count as f64 / POINT_SECONDS as f64;
    json!({
        "point_seconds": POINT_SECONDS,
        "tiers": TIERS,
        "rate": rate.iter().map(|counts| counts.iter().map(|c| per_second(*c)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "latency_mean_ms": latency.iter().map(|(sum, n, _)| if *n == 0 { None } else { Some(sum / *n as f64) }).collect::<Vec<_>>(),
        "latency_max_ms": latency.iter().map(|(_, n, max)| if *n == 0 { None } else { Some(*max) }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sums_tiers_failures_and_the_failover_cost() {
        let activity = Activity::default();
        activity.request("gpt", "full", 10.0);
        activity.request("gpt", "reduced", 30.0);
        activity.request("gpt", "none", 5.0);
        activity.call("a/x", Some("transient"));
        activity.call("a/x", Some("transient"));
        activity.call("b/y", None);
        activity.retry("a/x");
        activity.fallback("gpt", "backup");
        let report = activity.report();
        assert_eq!(report["tiers"]["gpt"]["full"], 1);
        assert_eq!(report["tiers"]["gpt"]["reduced"], 1);
        assert_eq!(report["tiers"]["gpt"]["error"], 1);
        assert_eq!(report["calls_per_request"], 1.0);
        assert_eq!(report["failures"][0]["count"], 2);
        assert_eq!(report["fallbacks"][0]["to"], "backup");
        assert_eq!(report["per_target"]["a/x"]["retries"], 1);
        assert_eq!(report["events"][0]["kind"], "fallback");
        let rate = report["series"]["rate"].as_array().unwrap();
        assert_eq!(rate.len(), 90);
        let total: f64 = rate
            .last()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!(total > 0.0);
    }

    #[test]
    fn the_timeline_is_bounded() {
        let activity = Activity::default();
        for _ in 0..500 {
            activity.retry("a/x");
        }
        assert_eq!(
            activity.report()["events"].as_array().unwrap().len(),
            MAX_EVENTS
        );
    }
}
