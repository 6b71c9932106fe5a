//! The demo's script: four acts, and what the mock providers do in each.
//!
//! The failures are real upstream failures (the mocks answer 429 and 503), not
//! admin-injected ones, so the demo shows the whole path: retries, breakers that
//! open on their own, the fallback, and breakers that close again once half-open
//! probes succeed.

use super::config::MockUrls;
use backstop_mock::{Fault, FaultKind, MockConfig, MockServer};
use std::time::Duration;

/// One act of the story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Both channels answer; the load is spread over them.
    Healthy,
    /// Half of `openai`'s answers are 429 with a Retry-After too long to wait.
    RateLimits,
    /// Both channels answer 503: the primary model is down.
    Outage,
    /// The channels are back; breakers half-open, probe and close.
    Recovery,
}

impl Act {
    /// A short name for the live view.
    pub fn title(self) -> &'static str {
        match self {
            Act::Healthy => "healthy",
            Act::RateLimits => "rate limits",
            Act::Outage => "outage",
            Act::Recovery => "recovery",
        }
    }

    /// What happens, printed when the act begins.
    pub fn caption(self) -> &'static str {
        match self {
            Act::Healthy => "both channels of `smart` (openai, azure) are healthy",
            Act::RateLimits => {
                "openai rate-limits half its requests (429, Retry-After: 1 s): retried on azure at once"
            }
            Act::Outage => "openai and azure both answer 503: breakers open, `backup` on anthropic takes over",
            Act::Recovery => "the primary is back: breakers half-open, a probe succeeds, traffic returns",
        }
    }
}

/// How long each act lasts, and the settings that make the story visible in that time.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The acts in order, with their lengths.
    pub acts: Vec<(Act, Duration)>,
    /// The breakers' `open_for`.
    pub open_for: Duration,
    /// Client requests per second.
    pub rate: f64,
}

impl Timeline {
    /// The story `backstop demo` tells: 28 seconds at 20 requests per second.
    pub fn standard() -> Self {
        Self {
            acts: vec![
                (Act::Healthy, Duration::from_secs(6)),
                (Act::RateLimits, Duration::from_secs(6)),
                (Act::Outage, Duration::from_secs(8)),
                (Act::Recovery, Duration::from_secs(8)),
            ],
            open_for: Duration::from_secs(3),
            rate: 20.0,
        }
    }

    /// The length of the whole story.
    pub fn total(&self) -> Duration {
        self.acts.iter().map(|(_, length)| *length).sum()
    }

    /// When `act` begins and ends, since the start (zero-length if it is not in the story).
    pub fn span(&self, act: Act) -> (Duration, Duration) {
        let mut start = Duration::ZERO;
        for (candidate, length) in &self.acts {
            if *candidate == act {
                return (start, start + *length);
            }
            start += *length;
        }
        (start, start)
    }

    /// The act in progress at `at` (the last one once the story is over).
    pub fn act_at(&self, at: Duration) -> Option<Act> {
        let mut end = Duration::ZERO;
        for (act, length) in &self.acts {
            end += *length;
            if at < end {
                return Some(*act);
            }
        }
        self.acts.last().map(|(act, _)| *act)
    }
}

/// The three mock providers of the demo.
pub struct Mocks {
    /// The `openai` channel.
    pub openai: MockServer,
    /// The `azure` channel.
    pub azure: MockServer,
    /// The `anthropic` fallback.
    pub anthropic: MockServer,
}

impl Mocks {
    /// Starts the three mocks on free loopback ports.
    pub async fn start() -> std::io::Result<Self> {
        Ok(Self {
            openai: MockServer::start(MockConfig::default()).await?,
            azure: MockServer::start(MockConfig::default()).await?,
            anthropic: MockServer::start(MockConfig::default()).await?,
        })
    }

    /// Their base URLs, for the gateway's config.
    pub fn urls(&self) -> MockUrls {
        MockUrls {
            openai: self.openai.url(),
            azure: self.azure.url(),
            anthropic: self.anthropic.url(),
        }
    }

    /// Sets the faults of `act` (replacing the previous act's).
    pub fn stage(&self, act: Act) {
        self.openai.clear_faults();
        self.azure.clear_faults();
        match act {
            Act::Healthy | Act::Recovery => {}
            Act::RateLimits => self.openai.add_fault(
                Fault::new(FaultKind::RateLimit {
                    retry_after: Some("1".into()),
                })
                .probability(0.5),
            ),
            Act::Outage => {
                self.openai.add_fault(Fault::status(503));
                self.azure.add_fault(Fault::status(503));
            }
        }
    }

    /// Upstream requests each mock received: `[openai, azure, anthropic]`.
    pub fn received(&self) -> [usize; 3] {
        [
            self.openai.requests().len(),
            self.azure.requests().len(),
            self.anthropic.requests().len(),
        ]
    }

    /// Stops the three mocks.
    pub async fn shutdown(self) {
        self.openai.shutdown().await;
        self.azure.shutdown().await;
        self.anthropic.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_places_every_act() {
        let timeline = Timeline::standard();
        assert_eq!(timeline.total(), Duration::from_secs(28));
        assert_eq!(
            timeline.span(Act::Outage),
            (Duration::from_secs(12), Duration::from_secs(20))
        );
        assert_eq!(timeline.act_at(Duration::ZERO), Some(Act::Healthy));
        assert_eq!(
            timeline.act_at(Duration::from_millis(11_999)),
            Some(Act::RateLimits)
        );
        assert_eq!(timeline.act_at(Duration::from_secs(12)), Some(Act::Outage));
        assert_eq!(
            timeline.act_at(Duration::from_secs(99)),
            Some(Act::Recovery)
        );
        assert!(timeline.total() < Duration::from_secs(60));
    }
}
