//! The `quota` fault: a normal answer that carries the provider's rate-limit headers with the counts given, as a
//! provider close to its limit sends them (OpenAI and Azure `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
//! with Go-style durations; Anthropic, Bedrock and Vertex `anthropic-ratelimit-{requests,tokens}-{limit,remaining,
//! reset}` with RFC 3339 times).

use crate::fault::Route;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The counts a `quota` fault reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The requests limit.
    pub limit: u64,
    /// The requests left.
    pub remaining: u64,
    /// When both limits reset, from now.
    pub reset: Duration,
    /// The tokens limit and what is left of it, when reported.
    pub tokens: Option<(u64, u64)>,
}

impl Quota {
    /// The headers for an answer on `route`.
    pub(crate) fn headers(&self, route: Route) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let openai = matches!(route, Route::Openai | Route::Azure | Route::Models);
        let reset = if openai {
            format!("{}ms", self.reset.as_millis())
        } else {
            let at = OffsetDateTime::now_utc() + self.reset;
            at.format(&Rfc3339).unwrap_or_default()
        };
        let mut limits = vec![("requests", self.limit, self.remaining)];
        if let Some((limit, remaining)) = self.tokens {
            limits.push(("tokens", limit, remaining));
        }
        for (what, limit, remaining) in limits {
            let names: [&'static str; 3] = match (openai, what) {
                (true, "requests") => [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
                (true, _) => [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
                (false, "requests") => [
                    "anthropic-ratelimit-requests-limit",
                    "anthropic-ratelimit-requests-remaining",
                    "anthropic-ratelimit-requests-reset",
                ],
                (false, _) => [
                    "anthropic-ratelimit-tokens-limit",
                    "anthropic-ratelimit-tokens-remaining",
                    "anthropic-ratelimit-tokens-reset",
                ],
            };
            out.push((names[0], limit.to_string()));
            out.push((names[1], remaining.to_string()));
            out.push((names[2], reset.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_in_each_providers_spelling() {
        let quota = Quota {
            limit: 100,
            remaining: 3,
            reset: Duration::from_secs(20),
            tokens: Some((1000, 10)),
        };
        let openai = quota.headers(Route::Openai);
        assert!(openai.contains(&("x-ratelimit-remaining-requests", "3".into())));
        assert!(openai.contains(&("x-ratelimit-reset-requests", "20000ms".into())));
        assert!(openai.contains(&("x-ratelimit-limit-tokens", "1000".into())));
        let anthropic = quota.headers(Route::Anthropic);
        assert!(anthropic.contains(&("anthropic-ratelimit-requests-limit", "100".into())));
        let (_, reset) = anthropic
            .iter()
            .find(|(name, _)| *name == "anthropic-ratelimit-tokens-reset")
            .unwrap();
        assert!(OffsetDateTime::parse(reset, &Rfc3339).is_ok(), "{reset}");
    }
}
