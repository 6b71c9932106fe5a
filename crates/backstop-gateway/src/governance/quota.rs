//! Proactive rate limiting from the providers' own headers: what room a target has left (OpenAI
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, Anthropic
//! `anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}`) is kept per target from every
//! answer. When a target's remaining requests or tokens fall below `rate_limit.headroom` of its limit before its
//! reset, or a request's estimated tokens exceed what it has left, the model's other channels are tried first
//! until the reset, instead of waiting for the 429. Counted in `backstop_preemptive_reroutes_total{target}`.
//!
//! With a state store attached, a target found below its headroom is shared with the other replicas (see
//! [`super::quota_share`]), so they avoid it too without each paying for its own answers to learn it.

use crate::pipeline::{ClientRequest, Route};
use backstop_core::hints::{parse_reset_duration, parse_reset_timestamp};
use backstop_core::Candidate;
use http::{HeaderMap, HeaderName};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long a count without a reset header is trusted.
const DEFAULT_RESET: Duration = Duration::from_secs(60);

/// The most targets tracked (the configured ones; the bound only guards against a config that keeps growing).
const MAX_TARGETS: usize = 10_000;

/// What a provider said is left of one limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Room {
    pub(super) limit: u64,
    pub(super) remaining: u64,
    pub(super) reset_at: Instant,
}

impl Room {
    fn live(&self, now: Instant) -> bool {
        now < self.reset_at
    }

    fn below(&self, headroom: f64, now: Instant) -> bool {
        self.live(now) && self.limit > 0 && (self.remaining as f64) < headroom * self.limit as f64
    }
}

/// What a target's provider said is left of its requests and tokens.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TargetRoom {
    pub(super) requests: Option<Room>,
    pub(super) tokens: Option<Room>,
}

impl TargetRoom {
    fn below(&self, headroom: f64, now: Instant) -> bool {
        let below = |room: Option<Room>| room.is_some_and(|r| r.below(headroom, now));
        below(self.requests) || below(self.tokens)
    }
}

/// The room each target has left, as its provider last said (here or, shared, to another replica).
#[derive(Default)]
pub struct Quotas {
    targets: Mutex<HashMap<String, TargetRoom>>,
    /// Shares the targets found short with the other replicas, once a store is attached.
    pub(super) sharer: OnceLock<super::quota_share::Sharer>,
}

impl Quotas {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, TargetRoom>> {
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the rate-limit headers of a successful answer of `target` (a 429 holds the target until its reset
    /// through the retry hint already); a target now below `headroom` is shared with the other replicas.
    pub fn observe(&self, target: &str, headers: &HeaderMap, headroom: f64) {
        let now = Instant::now();
        let requests = room(headers, &REQUESTS, now);
        let tokens = room(headers, &TOKENS, now).or_else(|| room(headers, &INPUT_TOKENS, now));
        if requests.is_none() && tokens.is_none() {
            return;
        }
        let room = self.adopt(target, TargetRoom { requests, tokens });
        if let Some(sharer) = self.sharer.get() {
            if room.below(headroom, now) {
                sharer.publish(target, &room);
            }
        }
    }

    /// Takes in what is now known of `target`'s limits (the ones `room` has) and returns all that is known.
    pub(super) fn adopt(&self, target: &str, room: TargetRoom) -> TargetRoom {
        let mut targets = self.lock();
        if targets.len() >= MAX_TARGETS && !targets.contains_key(target) {
            targets.clear();
        }
        let entry = targets.entry(target.to_string()).or_default();
        if room.requests.is_some() {
            entry.requests = room.requests;
        }
        if room.tokens.is_some() {
            entry.tokens = room.tokens;
        }
        *entry
    }

    /// Whether `target` should be avoided now: below `headroom` of its requests or tokens, or with fewer tokens
    /// left than `needed`.
    pub fn short(&self, target: &str, headroom: f64, needed: u64) -> bool {
        let now = Instant::now();
        let Some(room) = self.lock().get(target).copied() else {
            return false;
        };
        let requests = room.requests.is_some_and(|r| r.below(headroom, now));
        let tokens = room
            .tokens
            .is_some_and(|t| t.below(headroom, now) || (t.live(now) && needed > t.remaining));
        requests || tokens
    }
}

/// The header names of one limit, both providers' spellings.
struct Names {
    openai: [HeaderName; 3],
    anthropic: [HeaderName; 3],
}

static REQUESTS: Names = Names {
    openai: [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    anthropic: [
        HeaderName::from_static("anthropic-ratelimit-requests-limit"),
        HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
        HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    ],
};

static TOKENS: Names = Names {
    openai: [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
    anthropic: [
        HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
        HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
        HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    ],
};

static INPUT_TOKENS: Names = Names {
    openai: [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
    anthropic: [
        HeaderName::from_static("anthropic-ratelimit-input-tokens-limit"),
        HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
        HeaderName::from_static("anthropic-ratelimit-input-tokens-reset"),
    ],
};

fn room(headers: &HeaderMap, names: &Names, now: Instant) -> Option<Room> {
    let text = |name: &HeaderName| headers.get(name)?.to_str().ok().map(str::trim);
    let number = |name: &HeaderName| text(name)?.parse::<u64>().ok();
    let [limit, remaining, reset] = &names.openai;
    if let (Some(limit), Some(remaining)) = (number(limit), number(remaining)) {
        let wait = text(reset).and_then(parse_reset_duration);
        return Some(Room {
            limit,
            remaining,
            reset_at: now + wait.unwrap_or(DEFAULT_RESET),
        });
    }
    let [limit, remaining, reset] = &names.anthropic;
    let (limit, remaining) = (number(limit)?, number(remaining)?);
    let wait = text(reset).and_then(|value| parse_reset_timestamp(value, SystemTime::now()));
    Some(Room {
        limit,
        remaining,
        reset_at: now + wait.unwrap_or(DEFAULT_RESET),
    })
}

/// Moves the candidates whose target is short of room behind the other channels of their model (keeping plan
/// order otherwise), counting a reroute for each one that had another channel to give way to.
pub fn prefer_roomy(
    quotas: &Quotas,
    metrics: &crate::metrics::Metrics,
    request: &ClientRequest,
    candidates: &mut [Candidate<Route>],
) {
    let headroom = request.config.rate_limit.headroom;
    let needed = request.estimated_tokens() + request.envelope.max_tokens.unwrap_or(0);
    let short: Vec<bool> = candidates
        .iter()
        .map(|c| quotas.short(&c.inner.target.label, headroom, needed))
        .collect();
    if !short.contains(&true) {
        return;
    }
    let mut start = 0;
    while start < candidates.len() {
        let group = candidates[start].group;
        let end = candidates[start..]
            .iter()
            .position(|c| c.group != group)
            .map_or(candidates.len(), |offset| start + offset);
        let roomy = (start..end).filter(|&i| !short[i]).count();
        if roomy > 0 {
            for index in (start..end).filter(|&i| short[i]) {
                metrics
                    .governance()
                    .preemptive_reroute(&candidates[index].inner.target.label);
            }
            let mut order: Vec<usize> = (start..end).collect();
            order.sort_by_key(|&i| short[i]);
            let reordered: Vec<Candidate<Route>> =
                order.iter().map(|&i| candidates[i].clone()).collect();
            for (slot, candidate) in candidates[start..end].iter_mut().zip(reordered) {
                *slot = candidate;
            }
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_below_its_headroom_is_short_until_its_reset() {
        let quotas = Quotas::default();
        quotas.observe(
            "openai/gpt",
            &headers(&[
                ("x-ratelimit-limit-requests", "100"),
                ("x-ratelimit-remaining-requests", "3"),
                ("x-ratelimit-reset-requests", "20s"),
            ]),
            0.05,
        );
        assert!(quotas.short("openai/gpt", 0.05, 0));
        assert!(!quotas.short("openai/gpt", 0.02, 0));
        assert!(!quotas.short("other/gpt", 0.05, 0));
        tokio::time::advance(Duration::from_secs(21)).await;
        assert!(!quotas.short("openai/gpt", 0.05, 0), "reset");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_heavier_than_the_tokens_left_is_short_and_anthropic_headers_count() {
        let quotas = Quotas::default();
        let reset = "2999-01-01T00:00:00Z";
        quotas.observe(
            "anthropic/claude",
            &headers(&[
                ("anthropic-ratelimit-tokens-limit", "100000"),
                ("anthropic-ratelimit-tokens-remaining", "50000"),
                ("anthropic-ratelimit-tokens-reset", reset),
            ]),
            0.05,
        );
        assert!(!quotas.short("anthropic/claude", 0.05, 40_000));
        assert!(quotas.short("anthropic/claude", 0.05, 60_000));
    }
}
