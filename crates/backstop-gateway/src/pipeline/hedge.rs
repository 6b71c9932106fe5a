//! Hedged requests (opt-in per model): when a target has sent no first byte after the
//! hedge delay (fixed, or a percentile of its recent time to first byte), the engine sends
//! the same request to the next candidate too; the first answer wins and the other is
//! cancelled. A hedge spends the retry budget like a retry, so hedging can never double
//! the load on an unhealthy provider.

use super::plan::Route;
use crate::config::HedgeDelay;
use std::time::Duration;

/// Samples of time to first byte needed before a percentile delay is trusted.
const MIN_SAMPLES: usize = 20;

/// How long to wait for `route`'s first byte before hedging, if at all.
pub fn hedge_delay(route: &Route) -> Option<Duration> {
    match route.model.hedge? {
        HedgeDelay::Fixed(delay) => Some(delay),
        HedgeDelay::Percentile(q) => {
            let samples = route.health.latency.percentiles()?.samples;
            (samples >= MIN_SAMPLES)
                .then(|| route.health.latency.percentile(q))
                .flatten()
        }
    }
}
