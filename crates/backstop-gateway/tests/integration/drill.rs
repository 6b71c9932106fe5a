//! `backstop drill` and `backstop demo` end to end: an in-process gateway over mock
//! upstreams, and the report's figures checked against what the mocks received.
//!
//! These run in real time (a drill is a few seconds of real traffic), kept short.

use backstop_gateway::config;
use backstop_gateway::demo::{self, story::Act, story::Chapter, story::Timeline};
use backstop_gateway::drill::local::LocalGateway;
use backstop_gateway::drill::target::{FaultSpec, TargetRef};
use backstop_gateway::drill::{drill, DrillError, DrillPlan, Report};
use backstop_mock::{MockConfig, MockServer};
use std::time::Duration;

const PRIMARY: &str = "primary/gpt-4o";
const BACKUP: &str = "secondary/gpt-4o-backup";

fn config_text(primary: &MockServer, secondary: &MockServer, extra: &str) -> String {
    format!(
        r#"
state = "memory"
[providers.primary]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-primary-secret"
[providers.secondary]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-secondary-secret"
[models.smart]
targets = [{{ provider = "primary", model = "gpt-4o" }}]
fallbacks = ["backup"]
[models.backup]
targets = [{{ provider = "secondary", model = "gpt-4o-backup" }}]
[retry]
base_delay = "5ms"
max_delay = "20ms"
[circuit_breaker]
failure_threshold = 2
open_for = "300ms"
success_threshold = 1
{extra}
"#,
        primary.url(),
        secondary.url()
    )
}

async fn mocks() -> (MockServer, MockServer) {
    (
        MockServer::start(MockConfig::default()).await.unwrap(),
        MockServer::start(MockConfig::default()).await.unwrap(),
    )
}

fn plan(admin_key: Option<&str>) -> DrillPlan {
    DrillPlan {
        target: TargetRef::parse(PRIMARY).unwrap(),
        model: None,
        rate: 50.0,
        duration: Duration::from_secs(3),
        fault_at: Duration::from_secs(1),
        fault_for: Duration::from_secs(1),
        fault: FaultSpec::Status(503),
        admin_key: admin_key.map(str::to_string),
        client_key: None,
        stream: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_report_agrees_with_what_the_mocks_saw() {
    let (primary, secondary) = mocks().await;
    let config = config::parse(&config_text(&primary, &secondary, ""), &|_| None).unwrap();
    let gateway = LocalGateway::start(config).await.unwrap();
    let report = drill(gateway.url(), &plan(None)).await.unwrap();
    gateway.stop().await;

    assert_eq!(
        report.scenario.model, "smart",
        "found through /admin/targets"
    );
    assert_eq!(report.requests, 150, "50 requests/s for 3 s, open loop");
    assert_eq!(report.succeeded, 150, "the fallback absorbed the fault");
    assert!((report.success_rate - 1.0).abs() < f64::EPSILON);

    // Every success reached exactly one mock: the served counts are the mocks' logs.
    let served = |target: &str| report.served_by.get(target).copied().unwrap_or(0);
    assert_eq!(primary.requests().len(), served(PRIMARY));
    assert_eq!(secondary.requests().len(), served(BACKUP));
    // Injected failures are counted as attempts but never reach the upstream.
    let reached = (primary.requests().len() + secondary.requests().len()) as u64;
    assert!(
        report.upstream_attempts > reached,
        "{} attempts, {reached} reached the mocks",
        report.upstream_attempts
    );
    assert!(report.attempts_per_request >= 1.0 && report.attempts_per_request < 1.5);

    // A request sent while the injection was on its way may already have failed over.
    let before = &report.phases.before;
    assert!(
        before
            .served_by
            .get(PRIMARY)
            .is_some_and(|n| n + 1 >= before.requests),
        "{before:?}"
    );
    // ... and one sent just after it may still have reached the primary.
    let during = &report.phases.during;
    let on_primary = during.served_by.get(PRIMARY).copied().unwrap_or(0);
    assert!(on_primary <= 1, "{during:?}");
    assert_eq!(
        during.served_by.get(BACKUP).copied().unwrap_or(0) + on_primary,
        during.requests,
        "{during:?}"
    );
    assert!(report
        .phases
        .after
        .served_by
        .get(PRIMARY)
        .is_some_and(|n| *n > 0));

    let failover = report.failover_ms.expect("failed over");
    assert!(
        failover > 0.0 && failover < 500.0,
        "failover took {failover} ms"
    );
    assert_eq!(report.failover_target.as_deref(), Some(BACKUP));
    let recovery = report.recovery_ms.expect("recovered");
    assert!(
        recovery < 1000.0,
        "recovery took {recovery} ms with open_for = 300ms"
    );
    let window = report.scenario.fault_end_ms - report.scenario.fault_start_ms;
    assert!((window - 1000.0).abs() < 100.0, "fault window {window} ms");
    assert!(report.breakers.iter().any(|b| b.target == PRIMARY));
    for phase in [
        &report.phases.before,
        &report.phases.during,
        &report.phases.after,
    ] {
        assert!(phase.p50_ms.is_some() && phase.p50_ms <= phase.p99_ms);
    }
}

#[tokio::test]
async fn the_drill_needs_the_admin_key_when_one_is_set() {
    let (primary, secondary) = mocks().await;
    let extra = "[auth]\nadmin_key = \"adm-secret\"\n";
    let config = config::parse(&config_text(&primary, &secondary, extra), &|_| None).unwrap();
    let gateway = LocalGateway::start(config).await.unwrap();
    let refused = drill(gateway.url(), &plan(None)).await;
    let wrong = drill(gateway.url(), &plan(Some("nope"))).await;
    gateway.stop().await;
    for result in [refused, wrong] {
        match result {
            Err(DrillError::Failed(message)) => {
                assert!(message.contains("--admin-key"), "{message}");
                assert!(!message.contains("adm-secret"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(
        primary.requests().is_empty(),
        "no load is sent when the fault cannot be injected"
    );
}

/// Plays a short demo story of `acts` (breakers open for 300 ms, 40 requests per second), of
/// one chapter: its report and what the demo printed, which must account for every upstream
/// request the mocks received.
async fn short_story(acts: Vec<(Act, Duration)>) -> (Chapter, Report, String) {
    let timeline = Timeline {
        acts,
        open_for: Duration::from_millis(300),
        rate: 40.0,
    };
    let mut out = Vec::new();
    let mut reports = demo::play(timeline, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(reports.len(), 1, "one chapter: {text}");
    let (chapter, report) = reports.remove(0);
    assert!(report.success_rate >= 0.99, "{text}");
    assert!(report.recovery_ms.is_some(), "{text}");
    assert!(
        text.contains(&format!(
            "({} in all; the gateway reported {})",
            report.upstream_attempts, report.upstream_attempts
        )),
        "{text}"
    );
    (chapter, report, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_demo_story_fails_over_to_the_fallback_and_back() {
    let (chapter, report, text) = short_story(vec![
        (Act::Healthy, Duration::from_millis(800)),
        (Act::RateLimits, Duration::from_millis(800)),
        (Act::Outage, Duration::from_millis(1200)),
        (Act::Recovery, Duration::from_millis(1200)),
    ])
    .await;
    assert_eq!(chapter, Chapter::Outage);
    assert_eq!(report.requests, 160);
    assert_eq!(
        report.failover_target.as_deref(),
        Some(demo::config::FALLBACK),
        "{text}"
    );
    assert!(
        text.contains("failover: anthropic/claude-sonnet-4-5 served"),
        "{text}"
    );
    assert!(
        text.contains("-- outage:") && text.contains("breakers:"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_model_story_fails_over_from_the_anthropic_api_to_bedrock_and_back() {
    let (chapter, report, text) = short_story(vec![
        (Act::TwoChannels, Duration::from_millis(800)),
        (Act::ApiDown, Duration::from_millis(1200)),
        (Act::ApiBack, Duration::from_millis(1200)),
    ])
    .await;
    assert_eq!(chapter, Chapter::SameModel);
    assert_eq!(report.scenario.model, demo::config::SAME_MODEL);
    assert_eq!(report.requests, 128);
    assert_eq!(
        report.failover_target.as_deref(),
        Some(demo::config::CHANNELS[1]),
        "{text}"
    );
    assert!(
        text.contains("== same model, another channel: `claude`"),
        "{text}"
    );
    assert!(
        text.contains("-- api down: the Anthropic API answers 529"),
        "{text}"
    );
    assert!(
        text.contains("failover: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0 served")
            && text.contains("after the Anthropic API went down"),
        "{text}"
    );
    // The view samples breakers once a second; the report's last trip is there whenever it opened.
    let api = report
        .breakers
        .iter()
        .find(|b| b.target == "anthropic/claude-sonnet-4-5")
        .unwrap_or_else(|| panic!("the API's breaker is listed: {text}"));
    assert!(api.last_trip.is_some(), "the API's breaker opened: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_drill_counts_whole_streams_through_the_failover() {
    let (primary, secondary) = mocks().await;
    let config = config::parse(&config_text(&primary, &secondary, ""), &|_| None).unwrap();
    let gateway = LocalGateway::start(config).await.unwrap();
    let plan = DrillPlan {
        rate: 25.0,
        duration: Duration::from_secs(2),
        fault_at: Duration::from_millis(500),
        fault_for: Duration::from_millis(500),
        stream: true,
        ..plan(None)
    };
    let report = drill(gateway.url(), &plan).await.unwrap();
    gateway.stop().await;

    assert_eq!(report.requests, 50);
    assert_eq!(report.succeeded, 50, "every stream ended with [DONE]");
    let logged = [primary.requests(), secondary.requests()].concat();
    assert_eq!(logged.len(), 50);
    assert!(logged.iter().all(|r| r.stream), "the load streams");
    assert!(
        report.served_by.contains_key(BACKUP),
        "{:?}",
        report.served_by
    );
}
