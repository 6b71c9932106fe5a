//! The demo's script: two chapters of acts, and what the mock providers do in each.
//! The first is an outage of a model, served by another model; the second keeps the model
//! and changes the channel: the Anthropic API goes down and Claude on Bedrock takes over.
//!
//! The failures are real upstream failures (the mocks answer 429, 503 and 529), not
//! admin-injected ones, so the demo shows the whole path: retries, breakers that
//! open on their own, the fallback, and breakers that close again once half-open
//! probes succeed.

use super::config::{self, MockUrls};
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
    /// `claude` is served on the Anthropic API and on Bedrock, balanced.
    TwoChannels,
    /// The Anthropic API answers 529 overloaded: Claude on Bedrock takes over.
    ApiDown,
    /// The Anthropic API is back.
    ApiBack,
}

impl Act {
    /// A short name for the live view.
    pub fn title(self) -> &'static str {
        match self {
            Act::Healthy => "healthy",
            Act::RateLimits => "rate limits",
            Act::Outage => "outage",
            Act::Recovery => "recovery",
            Act::TwoChannels => "channels",
            Act::ApiDown => "api down",
            Act::ApiBack => "api back",
        }
    }

    /// The chapter the act belongs to.
    pub fn chapter(self) -> Chapter {
        match self {
            Act::Healthy | Act::RateLimits | Act::Outage | Act::Recovery => Chapter::Outage,
            Act::TwoChannels | Act::ApiDown | Act::ApiBack => Chapter::SameModel,
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
            Act::TwoChannels => "Claude on the Anthropic API and on Bedrock, both healthy",
            Act::ApiDown => "the Anthropic API answers 529 overloaded: the same model on Bedrock takes over",
            Act::ApiBack => "the Anthropic API is back: its breaker half-opens, a probe succeeds, traffic returns",
        }
    }
}

/// A part of the story with a public model of its own and the targets that go down in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chapter {
    /// `smart` is down on both its channels; the fallback model `backup` serves.
    Outage,
    /// `claude` is down on the Anthropic API; the same model on Bedrock serves.
    SameModel,
}

impl Chapter {
    /// The public model the clients ask for.
    pub fn model(self) -> &'static str {
        match self {
            Chapter::Outage => config::MODEL,
            Chapter::SameModel => config::SAME_MODEL,
        }
    }

    /// The public models whose breakers the live view shows: the chapter's and its fallback.
    pub fn shown(self) -> &'static [&'static str] {
        match self {
            Chapter::Outage => &[config::MODEL, config::BACKUP],
            Chapter::SameModel => &[config::SAME_MODEL],
        }
    }

    /// The targets that go down.
    pub fn faulted(self) -> &'static [&'static str] {
        match self {
            Chapter::Outage => &config::PRIMARY,
            Chapter::SameModel => &config::CHANNELS[..1],
        }
    }

    /// The fault, as the drill report names it.
    pub fn fault(self) -> &'static str {
        match self {
            Chapter::Outage => "status:503 from both channels (mock outage)",
            Chapter::SameModel => "529 overloaded from the Anthropic API (mock outage)",
        }
    }

    /// The acts that begin and end the outage.
    pub fn outage(self) -> (Act, Act) {
        match self {
            Chapter::Outage => (Act::Outage, Act::Recovery),
            Chapter::SameModel => (Act::ApiDown, Act::ApiBack),
        }
    }

    /// The line that opens the chapter.
    pub fn intro(self) -> String {
        match self {
            Chapter::Outage => format!(
                "== another model: `{}` = {} + {} (balanced), fallback `backup` = {}",
                config::MODEL,
                config::PRIMARY[0],
                config::PRIMARY[1],
                config::FALLBACK
            ),
            Chapter::SameModel => format!(
                "== same model, another channel: `{}` = {} + {} (balanced), no fallback",
                config::SAME_MODEL,
                config::CHANNELS[0],
                config::CHANNELS[1]
            ),
        }
    }

    /// What went down, and what came back, in the summary's words.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Chapter::Outage => ("the primary outage began", "the primary"),
            Chapter::SameModel => ("the Anthropic API went down", "the Anthropic API"),
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
    /// The story `backstop demo` tells: 42 seconds at 20 requests per second.
    pub fn standard() -> Self {
        Self {
            acts: vec![
                (Act::Healthy, Duration::from_secs(6)),
                (Act::RateLimits, Duration::from_secs(6)),
                (Act::Outage, Duration::from_secs(8)),
                (Act::Recovery, Duration::from_secs(8)),
                (Act::TwoChannels, Duration::from_secs(4)),
                (Act::ApiDown, Duration::from_secs(5)),
                (Act::ApiBack, Duration::from_secs(5)),
            ],
            open_for: Duration::from_secs(3),
            rate: 20.0,
        }
    }

    /// The length of the whole story.
    pub fn total(&self) -> Duration {
        self.acts.iter().map(|(_, length)| *length).sum()
    }

    /// The story cut into its chapters, each a timeline of its own, in order.
    pub fn chapters(&self) -> Vec<(Chapter, Timeline)> {
        let mut chapters: Vec<(Chapter, Timeline)> = Vec::new();
        for &(act, length) in &self.acts {
            match chapters.last_mut() {
                Some((chapter, timeline)) if *chapter == act.chapter() => {
                    timeline.acts.push((act, length));
                }
                _ => chapters.push((
                    act.chapter(),
                    Timeline {
                        acts: vec![(act, length)],
                        ..self.clone()
                    },
                )),
            }
        }
        chapters
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

/// The four mock providers of the demo.
pub struct Mocks {
    /// The `openai` channel.
    pub openai: MockServer,
    /// The `azure` channel.
    pub azure: MockServer,
    /// The `anthropic` fallback and Anthropic API.
    pub anthropic: MockServer,
    /// The `bedrock` channel.
    pub bedrock: MockServer,
}

impl Mocks {
    /// Starts the four mocks on free loopback ports.
    pub async fn start() -> std::io::Result<Self> {
        Ok(Self {
            openai: MockServer::start(MockConfig::default()).await?,
            azure: MockServer::start(MockConfig::default()).await?,
            anthropic: MockServer::start(MockConfig::default()).await?,
            bedrock: MockServer::start(MockConfig::default()).await?,
        })
    }

    /// Their base URLs, for the gateway's config.
    pub fn urls(&self) -> MockUrls {
        MockUrls {
            openai: self.openai.url(),
            azure: self.azure.url(),
            anthropic: self.anthropic.url(),
            bedrock: self.bedrock.url(),
        }
    }

    fn all(&self) -> [&MockServer; 4] {
        [&self.openai, &self.azure, &self.anthropic, &self.bedrock]
    }

    /// Sets the faults of `act` (replacing the previous act's).
    pub fn stage(&self, act: Act) {
        for mock in self.all() {
            mock.clear_faults();
        }
        match act {
            Act::Healthy | Act::Recovery | Act::TwoChannels | Act::ApiBack => {}
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
            Act::ApiDown => self.anthropic.add_fault(Fault::new(FaultKind::Overloaded)),
        }
    }

    /// Upstream requests each mock received: `[openai, azure, anthropic, bedrock]`.
    pub fn received(&self) -> [usize; 4] {
        self.all().map(|mock| mock.requests().len())
    }

    /// Stops the four mocks.
    pub async fn shutdown(self) {
        self.openai.shutdown().await;
        self.azure.shutdown().await;
        self.anthropic.shutdown().await;
        self.bedrock.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_places_every_act() {
        let timeline = Timeline::standard();
        assert_eq!(timeline.total(), Duration::from_secs(42));
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
        assert_eq!(timeline.act_at(Duration::from_secs(99)), Some(Act::ApiBack));
        assert!(timeline.total() < Duration::from_secs(60));
    }

    #[test]
    fn the_story_has_two_chapters_of_their_own_acts() {
        let chapters = Timeline::standard().chapters();
        let order: Vec<Chapter> = chapters.iter().map(|(chapter, _)| *chapter).collect();
        assert_eq!(order, [Chapter::Outage, Chapter::SameModel]);
        let (_, same) = &chapters[1];
        assert_eq!(same.total(), Duration::from_secs(14));
        assert_eq!(
            same.span(Act::ApiDown),
            (Duration::from_secs(4), Duration::from_secs(9))
        );
        assert_eq!(
            Chapter::SameModel.faulted(),
            ["anthropic/claude-sonnet-4-5"]
        );
        assert_eq!(chapters[0].1.rate, 20.0);
    }
}
