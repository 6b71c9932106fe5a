//! Admission at the edge: the key may ask for the model, its budget is not spent, its rate limits not reached.
//! Refusals are answered in the caller's protocol: 403 for a model the key may not use; 429 for a spent budget
//! (OpenAI `insufficient_quota`, Anthropic `rate_limit_error`), naming the budget and when it resets; 429 with
//! `Retry-After` for a rate limit.

use super::{period, Counted, Governance, Tab};
use crate::config::ClientKey;
use crate::http::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use backstop_protocol::{error_body, Protocol};
use backstop_state::record::now_ms;
use bytes::Bytes;
use http::StatusCode;
use std::sync::Arc;

impl Governance {
    /// Admits a request of `key` for the public model `model`, counting it against the key's request rate, and
    /// opens its tab; or refuses it.
    pub async fn admit(
        self: &Arc<Self>,
        metrics: &Metrics,
        key: Option<Arc<ClientKey>>,
        model: &str,
        protocol: Protocol,
    ) -> Result<Arc<Tab>, ApiError> {
        if let Some(key) = &key {
            if !key.allows_model(model) {
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    format!("client key `{}` may not use model `{model}`", key.name),
                ));
            }
            // Boxed: only keys with limits wait here, and every request's future would
            // otherwise keep room for it.
            if let Err(error) = Box::pin(self.check_limits(key, protocol)).await {
                metrics.governance().rate_limited(&key.name);
                return Err(error);
            }
        }
        Ok(Arc::new(Tab::new(self.clone(), key, model)))
    }

    async fn check_limits(&self, key: &ClientKey, protocol: Protocol) -> Result<(), ApiError> {
        let now = now_ms();
        if let Some(budget) = key.budget {
            let window = period::budget_window(budget.per, now);
            let spent = self.spent(key).await;
            if spent >= budget.usd {
                let resets = match window.ends_at_text() {
                    Some(at) => format!("it resets at {at}"),
                    None => "it is a total and does not reset".to_string(),
                };
                let message = format!(
                    "client key `{}` has spent its budget of ${} per {} (${spent:.4} spent): {resets}",
                    key.name,
                    budget.usd,
                    budget.per.as_str()
                );
                return Err(refusal(
                    protocol,
                    "insufficient_quota",
                    message,
                    &window,
                    now,
                    false,
                ));
            }
        }
        let minute = period::minute_window(now);
        let limits = [
            (key.rate.tokens_per_minute, Counted::Tokens, "tokens"),
            (key.rate.requests_per_minute, Counted::Requests, "requests"),
        ];
        for (limit, counted, unit) in limits {
            let Some(limit) = limit else { continue };
            let name = Self::counter(key, counted, &minute);
            let used = self
                .counters
                .value(&name, minute.ttl, minute.ends_at_ms)
                .await;
            if used >= limit as f64 {
                let message = format!(
                    "client key `{}` reached its rate limit of {limit} {unit} per minute",
                    key.name
                );
                return Err(refusal(
                    protocol,
                    "rate_limit_exceeded",
                    message,
                    &minute,
                    now,
                    true,
                ));
            }
            if matches!(counted, Counted::Requests) {
                // This request counts now; its tokens are counted when its usage is known.
                self.counters.add(&name, 1.0, minute.ttl, minute.ends_at_ms);
            }
        }
        Ok(())
    }
}

/// A 429 in the caller's protocol: OpenAI's error `type` and `code` are `openai_type`, Anthropic's type is
/// `rate_limit_error`. `Retry-After` says when `window` ends, when `retry` (a budget's refusal says it in words:
/// retrying before the period ends is pointless).
fn refusal(
    protocol: Protocol,
    openai_type: &str,
    message: String,
    window: &period::Window,
    now: u64,
    retry: bool,
) -> ApiError {
    let kind = match protocol {
        Protocol::Anthropic => "rate_limit_error",
        Protocol::OpenAi | Protocol::Responses | Protocol::Gemini => openai_type,
    };
    let status = StatusCode::TOO_MANY_REQUESTS;
    let mut error = ApiError::new(ErrorKind::RateLimited, message);
    error.body = Some(Bytes::from(error_body(
        protocol,
        status.as_u16(),
        kind,
        &error.message,
    )));
    if retry {
        error.retry_after = window.remaining(now);
    }
    error
}

impl crate::pipeline::Gateway {
    /// Admits `request` for the client `key` (see [`Governance::admit`]) and opens its tab.
    pub async fn admit(
        &self,
        request: &mut crate::pipeline::ClientRequest,
        key: Option<Arc<ClientKey>>,
    ) -> Result<(), ApiError> {
        let tab = self
            .governance()
            .admit(
                self.metrics(),
                key,
                &request.envelope.model,
                request.protocol,
            )
            .await?;
        request.tab = Some(tab);
        Ok(())
    }
}
