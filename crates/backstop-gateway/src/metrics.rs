//! Prometheus metrics, one registry per gateway. Labels are low-cardinality by
//! construction: public model, target (`provider/upstream-model`), class, outcome,
//! tier, status. Never keys, prompts or request ids.

use crate::dashboard::Activity;
use crate::queue_metrics::QueueMetrics;
use crate::state_metrics::StateMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Histogram buckets that fit LLM latencies: 10 ms to 120 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0,
];

#[derive(Clone, Copy)]
struct LatencyHistogram;

impl MetricConstructor<Histogram> for LatencyHistogram {
    fn new_metric(&self) -> Histogram {
        Histogram::new(LATENCY_BUCKETS)
    }
}

/// `{model, tier, status}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Public model asked for.
    pub model: String,
    /// `full`, `reduced`, ... or `none` when nothing served.
    pub tier: String,
    /// HTTP status sent to the client.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    target: String,
    outcome: &'static str,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    target: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    target: String,
    kind: &'static str,
}

/// The series of one target that each of its answers updates, looked up once ([`Metrics::of_target`]) and
/// kept with the target's health: an answer then costs no label built and no lookup. They are created
/// together, at the target's first byte, so a target whose first call broke after it shows them at 0.
#[derive(Clone)]
pub struct TargetSeries {
    answered: Counter,
    input_tokens: Counter,
    output_tokens: Counter,
    first_byte: Histogram,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    state: StateMetrics,
    queue: QueueMetrics,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<ModelLabel, Histogram, LatencyHistogram>,
    attempts: Family<AttemptLabels, Counter>,
    retries: Family<TargetLabel, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    circuit_state: Family<TargetLabel, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<TargetLabel, Counter<f64, AtomicU64>>,
    ttfb: Family<TargetLabel, Histogram, LatencyHistogram>,
    malformed: Family<TargetLabel, Counter>,
    rescues: Family<RescueLabels, Counter>,
    hedges: Family<TargetLabel, Counter>,
    stalls: Family<StallLabels, Counter>,
    corrections: Family<CorrectionLabels, Counter>,
    rescue_delay: Family<TargetLabel, Histogram, LatencyHistogram>,
    connections_open: Gauge,
    connections_closed: Family<ReasonLabel, Counter>,
    tools: ToolMetrics,
    keep: crate::keep::KeepMetrics,
    responses: crate::responses::ResponsesMetrics,
    spans: Family<OutcomeLabel, Counter>,
    activity: Activity,
    governance: crate::governance::GovernanceMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The metrics of tool and MCP calls and of provider status pages.
struct ToolMetrics {
    calls: Family<ToolCallLabels, Counter>,
    duration: Family<ToolLabel, Histogram, LatencyHistogram>,
    provider_status: Family<ProviderLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCallLabels {
    tool: String,
    outcome: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

impl ToolMetrics {
    fn register(registry: &mut Registry) -> Self {
        let calls = Family::default();
        registry.register(
            "tool_calls",
            "Upstream calls to tool APIs and MCP servers, by tool (`NAME` or `mcp/NAME`), outcome (success, failure; rejected: a client call answered without one, every breaker open) and failure class",
            calls.clone(),
        );
        let duration = Family::new_with_constructor(LatencyHistogram);
        registry.register(
            "tool_call_duration_seconds",
            "Time to answer a tool or MCP call, retries and fallbacks included, by tool",
            duration.clone(),
        );
        let provider_status = Family::default();
        registry.register(
            "provider_status",
            "The indicator of each provider's status page: 0 none, 1 minor, 2 major, 3 critical, -1 unknown (unreachable or not read yet)",
            provider_status.clone(),
        );
        Self {
            calls,
            duration,
            provider_status,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CorrectionLabels {
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StallLabels {
    target: String,
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RescueLabels {
    target: String,
    outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics of the cache, the guard and idempotency keys.
    pub fn keep(&self) -> &crate::keep::KeepMetrics {
        &self.keep
    }

    /// The metrics of stored responses.
    pub fn responses(&self) -> &crate::responses::ResponsesMetrics {
        &self.responses
    }

    /// Spend and refusals by client key.
    pub fn governance(&self) -> &crate::governance::GovernanceMetrics {
        &self.governance
    }

    /// The state store's metrics.
    pub fn state(&self) -> &StateMetrics {
        &self.state
    }

    /// The durable queue's metrics.
    pub fn queue(&self) -> &QueueMetrics {
        &self.queue
    }

    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("backstop");
        let requests = Family::default();
        registry.register(
            "requests",
            "Client requests by public model, tier and status",
            requests.clone(),
        );
        let request_duration = Family::new_with_constructor(LatencyHistogram);
        registry.register(
            "request_duration_seconds",
            "Client request duration until the answer is committed",
            request_duration.clone(),
        );
        let attempts = Family::default();
        registry.register(
            "upstream_attempts",
            "Upstream calls by target, outcome and failure class",
            attempts.clone(),
        );
        let retries = Family::default();
        registry.register("retries", "Retries of the same target", retries.clone());
        let fallbacks = Family::default();
        registry.register(
            "fallbacks",
            "Requests served by a fallback model",
            fallbacks.clone(),
        );
        let circuit_state = Family::default();
        registry.register(
            "circuit_state",
            "Circuit state: 0 closed, 1 half-open, 2 open",
            circuit_state.clone(),
        );
        let transitions = Family::default();
        registry.register(
            "circuit_transitions",
            "Circuit breaker transitions",
            transitions.clone(),
        );
        let tokens = Family::default();
        registry.register(
            "tokens",
            "Tokens of successful attempts by target and kind",
            tokens.clone(),
        );
        let cost = Family::default();
        registry.register(
            "cost_usd",
            "Cost in USD of successful attempts, from the configured prices",
            cost.clone(),
        );
        let ttfb = Family::new_with_constructor(LatencyHistogram);
        registry.register(
            "time_to_first_byte_seconds",
            "Time to the first byte (for a stream, its first event) of successful attempts",
            ttfb.clone(),
        );
        let malformed = Family::default();
        registry.register(
            "stream_malformed_events",
            "Malformed stream events dropped",
            malformed.clone(),
        );
        let rescues = Family::default();
        registry.register(
            "stream_rescues",
            "Streams broken after their first byte, by the target that broke and whether another continued them",
            rescues.clone(),
        );
        let hedges = Family::default();
        registry.register(
            "hedges",
            "Hedged requests sent because a target was slow to its first byte",
            hedges.clone(),
        );
        let corrections = Family::default();
        registry.register(
            "corrections",
            "Answers whose shape was checked (structured output, tool parameters), by public model and outcome: valid (at once), corrected, exhausted (still invalid after structured.max_corrections)",
            corrections.clone(),
        );
        let stalls = Family::default();
        registry.register(
            "stream_stalls",
            "Streams taken for stalled after their first event, by target and rule: fixed (timeouts.idle) or adaptive (idle = \"auto\")",
            stalls.clone(),
        );
        let rescue_delay = Family::new_with_constructor(LatencyHistogram);
        registry.register(
            "stream_rescue_delay_seconds",
            "Time from a broken stream's last event to the start of its continuation or restart, by the target that broke",
            rescue_delay.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections_closed = Family::default();
        registry.register(
            "connections_closed",
            "Client connections the gateway closed or refused, by reason: header_timeout, idle_timeout, write_stall, evicted (to make room at server.max_connections), refused (at the limit with none to evict)",
            connections_closed.clone(),
        );
        let state = StateMetrics::register(&mut registry);
        let queue = QueueMetrics::register(&mut registry);
        let tools = ToolMetrics::register(&mut registry);
        let keep = crate::keep::KeepMetrics::register(&mut registry);
        let responses = crate::responses::ResponsesMetrics::register(&mut registry);
        let spans = Family::default();
        registry.register(
            "telemetry_spans",
            "Trace spans by outcome: exported, queue_full (dropped: the export queue was full), export_failed (dropped: the collector did not take them)",
            spans.clone(),
        );
        let governance = crate::governance::GovernanceMetrics::register(&mut registry);
        Self {
            governance,
            tools,
            keep,
            responses,
            activity: Activity::default(),
            spans,
            stalls,
            corrections,
            rescue_delay,
            state,
            queue,
            connections_open,
            connections_closed,
            hedges,
            rescues,
            registry,
            requests,
            request_duration,
            attempts,
            retries,
            fallbacks,
            circuit_state,
            transitions,
            tokens,
            cost,
            ttfb,
            malformed,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A client connection opened (`+1`) or ended (`-1`).
    pub fn connections_open(&self, delta: i64) {
        self.connections_open.inc_by(delta);
    }

    /// A client connection closed or refused by the gateway, for `reason`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// One client request answered.
    pub fn request(&self, labels: RequestLabels, elapsed: Duration) {
        self.request_duration
            .get_or_create(&ModelLabel {
                model: labels.model.clone(),
            })
            .observe(elapsed.as_secs_f64());
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        self.activity
            .request(&labels.model, &labels.tier, latency_ms);
        self.requests.get_or_create(&labels).inc();
    }

    /// The series of `target` that its answers update.
    pub fn of_target(&self, target: &str) -> TargetSeries {
        let tokens = |kind| {
            let labels = TokenLabels {
                target: target.to_string(),
                kind,
            };
            self.tokens.get_or_create(&labels).clone()
        };
        TargetSeries {
            answered: self.attempts.get_or_create(&success(target)).clone(),
            input_tokens: tokens("input"),
            output_tokens: tokens("output"),
            first_byte: self.ttfb.get_or_create(&target_label(target)).clone(),
        }
    }

    /// One upstream attempt on `target` answered, counted on its `series`.
    pub fn answered(&self, target: &str, series: &TargetSeries) {
        series.answered.inc();
        self.activity.call(target, None);
    }

    /// One upstream attempt on `target` failed with `class` (an answer is counted by
    /// [`Metrics::answered`]).
    pub fn attempt_failed(&self, target: &str, class: &str) {
        let labels = AttemptLabels {
            target: target.to_string(),
            outcome: "failure",
            class: class.to_string(),
        };
        self.attempts.get_or_create(&labels).inc();
        self.activity.call(target, Some(class));
    }

    /// One upstream stream that the gateway itself ended while it was healthy: `why` is
    /// `deadline` (the request's total) or `shutdown`. Not a failure of the target.
    pub fn attempt_cut(&self, target: &str, why: &str) {
        let labels = AttemptLabels {
            target: target.to_string(),
            outcome: "cut",
            class: why.to_string(),
        };
        self.attempts.get_or_create(&labels).inc();
    }

    /// A retry of the same target.
    pub fn retry(&self, target: &str) {
        self.retries.get_or_create(&target_label(target)).inc();
        self.activity.retry(target);
    }

    /// A fallback model served instead of `from`.
    pub fn fallback(&self, from: &str, to: &str) {
        let labels = FallbackLabels {
            from: from.to_string(),
            to: to.to_string(),
        };
        self.fallbacks.get_or_create(&labels).inc();
        self.activity.fallback(from, to);
    }

    /// A breaker changed state; `gauge` is 0 closed, 1 half-open, 2 open.
    pub fn circuit(&self, target: &str, to: &str, gauge: i64) {
        self.circuit_state
            .get_or_create(&target_label(target))
            .set(gauge);
        let labels = TransitionLabels {
            target: target.to_string(),
            to: to.to_string(),
        };
        self.transitions.get_or_create(&labels).inc();
        self.activity.circuit(target, to);
    }

    /// Tokens and cost of a successful attempt on `target`, counted on its `series`.
    pub fn usage(
        &self,
        target: &str,
        series: &TargetSeries,
        (input, output): (u64, u64),
        cost_usd: Option<f64>,
    ) {
        series.input_tokens.inc_by(input);
        series.output_tokens.inc_by(output);
        if let Some(cost) = cost_usd {
            self.cost.get_or_create(&target_label(target)).inc_by(cost);
        }
    }

    /// Time to first byte of a successful attempt, on its target's `series`.
    pub fn first_byte(&self, series: &TargetSeries, elapsed: Duration) {
        series.first_byte.observe(elapsed.as_secs_f64());
    }

    /// A malformed stream event was dropped.
    pub fn malformed_event(&self, target: &str) {
        self.malformed.get_or_create(&target_label(target)).inc();
    }
}

impl Metrics {
    /// `count` trace spans ended with `outcome` (`exported`, `queue_full`, `export_failed`).
    pub fn spans(&self, outcome: &'static str, count: u64) {
        self.spans
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(count);
    }

    /// A hedge was sent because `target` had no first byte after the hedge delay.
    pub fn hedge(&self, target: &str) {
        self.hedges.get_or_create(&target_label(target)).inc();
        self.activity.hedge(target);
    }

    /// An answer of `model` whose shape was checked: `valid`, `corrected` or `exhausted`.
    pub fn correction(&self, model: &str, outcome: &'static str) {
        let labels = CorrectionLabels {
            model: model.to_string(),
            outcome,
        };
        self.corrections.get_or_create(&labels).inc();
    }

    /// A stream of `target` was taken for stalled by `rule` (`fixed` or `adaptive`).
    pub fn stall(&self, target: &str, rule: &'static str) {
        let labels = StallLabels {
            target: target.to_string(),
            rule,
        };
        self.stalls.get_or_create(&labels).inc();
    }

    /// A broken stream of `target` is continued (or restarted) `gap` after its last event.
    pub fn rescue_delay(&self, target: &str, gap: Duration) {
        self.rescue_delay
            .get_or_create(&target_label(target))
            .observe(gap.as_secs_f64());
    }

    /// A stream broke after its first byte: `outcome` is `continued`, `restarted` (a restart
    /// matched the text sent), `diverged` (it did not) or `failed`.
    pub fn rescue(&self, target: &str, outcome: &str) {
        let labels = RescueLabels {
            target: target.to_string(),
            outcome: outcome.to_string(),
        };
        self.rescues.get_or_create(&labels).inc();
        self.activity.rescue(target, outcome);
    }

    /// The recent activity, for the dashboard.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }
}

impl Metrics {
    /// One call to a tool or MCP server: `outcome` is `success`, `failure` or `rejected`
    /// (answered without a call: its breaker is open); `class` is the failure's class
    /// (`none` on success).
    pub fn tool_call(&self, tool: &str, outcome: &'static str, class: &'static str) {
        let labels = ToolCallLabels {
            tool: tool.to_string(),
            outcome,
            class,
        };
        self.tools.calls.get_or_create(&labels).inc();
    }

    /// The time a client's tool or MCP call took, retries and fallbacks included.
    pub fn tool_call_duration(&self, tool: &str, elapsed: Duration) {
        self.tools
            .duration
            .get_or_create(&ToolLabel {
                tool: tool.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The indicator of `provider`'s status page, as its gauge value.
    pub fn provider_status(&self, provider: &str, value: i64) {
        self.tools
            .provider_status
            .get_or_create(&ProviderLabel {
                provider: provider.to_string(),
            })
            .set(value);
    }
}

/// The labels of a successful attempt on `target`.
fn success(target: &str) -> AttemptLabels {
    AttemptLabels {
        target: target.to_string(),
        outcome: "success",
        class: "none".to_string(),
    }
}

fn target_label(target: &str) -> TargetLabel {
    TargetLabel {
        target: target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_names() {
        let metrics = Metrics::new();
        metrics.request(
            RequestLabels {
                model: "smart".into(),
                tier: "full".into(),
                status: "200".into(),
            },
            Duration::from_millis(30),
        );
        metrics.attempt_failed("p/m", "transient");
        let series = metrics.of_target("p/m");
        metrics.answered("p/m", &series);
        metrics.usage("p/m", &series, (10, 5), Some(0.5));
        metrics.first_byte(&metrics.of_target("p/m"), Duration::from_millis(20));
        metrics.circuit("p/m", "open", 2);
        let text = metrics.render();
        for line in [
            "backstop_requests_total{model=\"smart\",tier=\"full\",status=\"200\"} 1",
            "backstop_upstream_attempts_total{target=\"p/m\",outcome=\"failure\",class=\"transient\"} 1",
            "backstop_tokens_total{target=\"p/m\",kind=\"input\"} 10",
            "backstop_tokens_total{target=\"p/m\",kind=\"output\"} 5",
            "backstop_upstream_attempts_total{target=\"p/m\",outcome=\"success\",class=\"none\"} 1",
            "backstop_time_to_first_byte_seconds_count{target=\"p/m\"} 1",
            "backstop_cost_usd_total{target=\"p/m\"} 0.5",
            "backstop_circuit_state{target=\"p/m\"} 2",
            "backstop_circuit_transitions_total{target=\"p/m\",to=\"open\"} 1",
            "backstop_request_duration_seconds_bucket{le=\"0.05\",model=\"smart\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
