//! Wraps a flaky tool call (a simulated HTTP search API with a mirror) in retries, a retry budget, circuit breakers
//! and fallback, and prints what happened.
//!
//! Run with `cargo run -p backstop-core --example wrap_tool_call`.
//!
//! The primary endpoint has an outage for its first calls: it answers 503, once with a `Retry-After` hint. The
//! executor retries it with backoff, the breaker opens after a few consecutive failures, later requests go straight
//! to the mirror without touching the primary, and once `open_for` has passed a probe finds the primary healthy
//! again and traffic returns to it.

use backstop_core::{
    execute_observed, retry_hint, AttemptEvent, Backoff, Breaker, BreakerConfig, BreakerState,
    Candidate, FailureClass, Observer, Policy, Retry, RetryBudget, SkipReason, TripReason, Verdict,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What the simulated HTTP client returns on failure.
#[derive(Debug)]
enum ToolError {
    /// An HTTP error status with its response headers.
    Status {
        code: u16,
        headers: Vec<(&'static str, &'static str)>,
    },
    /// The connection failed before any byte.
    Connect,
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Status { code, .. } => write!(f, "HTTP {code}"),
            ToolError::Connect => f.write_str("connection refused"),
        }
    }
}

/// The classification table for this tool: exhaustive, no wildcard on our own error type.
fn classify(e: &ToolError) -> Verdict {
    match e {
        ToolError::Status { code, headers } => {
            let hint = retry_hint(headers.iter().copied(), SystemTime::now());
            match code {
                408 | 429 | 500 | 502 | 503 | 504 => Verdict::transient(hint),
                401 | 403 => Verdict::failure(FailureClass::TargetBroken),
                _ => Verdict::failure(FailureClass::Permanent),
            }
        }
        ToolError::Connect => Verdict::transient(None),
    }
}

/// A search API whose primary endpoint is down for its first `outage_calls` calls.
struct SearchApi {
    primary_calls: AtomicU32,
    outage_calls: u32,
}

impl SearchApi {
    async fn get(&self, endpoint: &str, query: &str) -> Result<String, ToolError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if endpoint == "primary" {
            let n = self.primary_calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                return Err(ToolError::Status {
                    code: 503,
                    headers: vec![("retry-after-ms", "30")],
                });
            }
            if n <= self.outage_calls {
                return Err(ToolError::Connect);
            }
        }
        Ok(format!("{endpoint}: 3 results for {query:?}"))
    }
}

/// Prints every event, as a gateway would log them.
struct Printer;

impl Observer for Printer {
    fn breaker_transition(
        &self,
        target: &str,
        from: BreakerState,
        to: BreakerState,
        reason: Option<&TripReason>,
    ) {
        let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
        println!("    breaker {target}: {from} -> {to}{why}");
    }

    fn attempt(&self, e: &AttemptEvent<'_>) {
        let outcome = e.class.map_or("ok", |c| c.as_str());
        println!("    attempt {} #{}: {outcome}", e.target, e.attempt);
    }

    fn retry(&self, target: &str, _attempt: u32, _class: FailureClass, delay: Duration) {
        println!("    retry {target} in {delay:?}");
    }

    fn fallback(&self, from: &str, to: &str, class: FailureClass) {
        println!("    fallback {from} -> {to} after {class}");
    }

    fn skipped(&self, target: &str, reason: &SkipReason) {
        println!("    skip {target}: {reason}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let observer: Arc<dyn Observer> = Arc::new(Printer);
    let breaker_config = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_millis(200),
        success_threshold: 1,
        ..BreakerConfig::default()
    };
    let breaker = |name: &str| {
        Arc::new(Breaker::new_with_observer(
            name,
            breaker_config.clone(),
            observer.clone(),
        ))
    };
    let candidates = [
        Candidate::new("primary", breaker("primary"), "primary"),
        Candidate::new("mirror", breaker("mirror"), "mirror"),
    ];
    let policy = Policy {
        retry: Retry {
            max_attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(20),
                max: Duration::from_secs(1),
            },
        },
        budget: Some(Arc::new(RetryBudget::default())),
        deadline: Some(Duration::from_secs(5)),
    };
    let api = SearchApi {
        primary_calls: AtomicU32::new(0),
        outage_calls: 4,
    };

    let mut upstream_calls = 0;
    for request in 1..=6 {
        println!("request {request}:");
        let outcome =
            execute_observed(&policy, &candidates, classify, observer.as_ref(), |c, _| {
                api.get(c.inner, "circuit breaker")
            })
            .await?;
        upstream_calls += outcome.attempts;
        println!("  -> {} (attempts: {})", outcome.value, outcome.attempts);
        if request == 3 || request == 5 {
            println!("(waiting 250 ms: longer than the breaker's open_for)");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let primary = candidates[0].breaker.snapshot();
    println!(
        "6 requests, {upstream_calls} upstream calls, every request answered; primary breaker {} after {} trips",
        primary.state, primary.trips
    );
    Ok(())
}
