//! The routing plan printed by `backstop check`: what each public model does.

use super::types::*;
use std::fmt::Write;

/// A human-readable routing plan of every public model.
pub fn routing_plan(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "listen {}  state {:?}", config.listen, config.state);
    if config.zero_config {
        let names: Vec<&str> = config.providers.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "zero-config: any model name of {} is served directly",
            if names.is_empty() {
                format!("no provider (set {})", super::key_variables())
            } else {
                names.join(", ")
            }
        );
        for provider in config.providers.values() {
            let _ = writeln!(
                out,
                "  {} at {}, {}",
                provider.name,
                crate::redact::url(&provider.base_url),
                provider.auth_method()
            );
        }
    }
    let _ = writeln!(out, "{}", super::auth::auth_summary(config));
    let t = &config.timeouts;
    let _ = writeln!(
        out,
        "timeouts: connect {:?}, first byte {:?}, idle {}, total {:?}",
        t.connect, t.first_byte, t.idle, t.total
    );
    let b = &config.breaker;
    let _ = writeln!(
        out,
        "circuit breaker per target: open at {:.0}% failures of >= {} calls in {:?}, or after {} consecutive failures (more at higher traffic); open {:?}; close after {} probe successes",
        b.failure_rate * 100.0, b.min_calls, b.window, b.failure_threshold, b.open_for, b.success_threshold
    );
    for model in config.models.values() {
        let _ = writeln!(out, "\nmodel {}", model.name);
        let balance = match model.balance {
            Balance::Weighted => "weighted",
            Balance::LeastLatency => "least latency",
        };
        let _ = writeln!(out, "  targets ({balance}):");
        for target in &model.targets {
            let _ = writeln!(
                out,
                "    {}  [{} at {}, {}, weight {}]",
                target.label,
                target.provider.kind,
                crate::redact::url(target.endpoint(false).as_str()),
                target.provider.auth_method(),
                target.weight
            );
            let native = target.for_caller(backstop_protocol::Protocol::Responses);
            if native.endpoint(false) != target.endpoint(false) {
                let url = crate::redact::url(native.endpoint(false).as_str());
                let _ = writeln!(out, "      Responses API requests forwarded to {url}");
            }
        }
        if model.fallbacks.is_empty() {
            let _ = writeln!(out, "  fallbacks: none");
        } else {
            let _ = writeln!(out, "  fallbacks: {}", model.fallbacks.join(" -> "));
        }
        let r = &model.retry;
        let _ = writeln!(
            out,
            "  retry: {} attempts per target, backoff {:?}..{:?} full jitter, retry-after {}",
            r.max_attempts,
            r.base_delay,
            r.max_delay,
            if r.respect_retry_after {
                "honoured"
            } else {
                "ignored"
            }
        );
        if let Some(space) = &model.embedding_space {
            let _ = writeln!(
                out,
                "  embedding space: {space} (embeddings fall back only within it)"
            );
        }
        if let Some(window) = model.context_window {
            let _ = writeln!(out, "  context window: {window} tokens");
        }
        let filter = match model.on_content_filter {
            ContentFilterPolicy::Fallback => "try fallbacks",
            ContentFilterPolicy::Return => "return the refusal",
        };
        let _ = writeln!(out, "  content filter: {filter}");
        if let Some(price) = model.price {
            let _ = writeln!(
                out,
                "  price: ${} in / ${} out per million tokens",
                price.input, price.output
            );
        }
        out.push_str(&super::policy::policy_plan(model));
    }
    out.push_str(&super::keys::keys_plan(config));
    out.push_str(&super::tools::tools_plan(config));
    out
}
