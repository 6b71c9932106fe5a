//! Provider status pages: the mock's Statuspage v2 page, polled by the gateway, moves a
//! provider's targets last in balancing while it reports a major incident, and back after.

use crate::common::*;
use backstop_mock::MockServer;
use std::time::Duration;

/// One model `duo` on two channels of equal weight, `primary` with a status page.
fn config(primary: &MockServer, secondary: &MockServer, page: &str, policy: &str) -> String {
    format!(
        r#"
state = "memory"
[providers.primary]
kind = "openai"
base_url = "{}/v1"
status_page = "{page}"
status_poll = "100ms"
on_major_incident = "{policy}"
[providers.secondary]
kind = "openai"
base_url = "{}/v1"
[models.duo]
targets = [{{ provider = "primary", model = "gpt-4o" }}, {{ provider = "secondary", model = "gpt-4o" }}]
"#,
        primary.url(),
        secondary.url()
    )
}

async fn served_by(gw: &TestGateway) -> String {
    let response = post_json(gw, "/v1/chat/completions", &chat("duo", false)).await;
    assert_eq!(response.status(), 200);
    response.headers()["x-backstop-target"]
        .to_str()
        .unwrap()
        .to_string()
}

async fn status(gw: &TestGateway) -> serde_json::Value {
    reqwest::get(gw.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_for_indicator(gw: &TestGateway, indicator: &str) {
    for _ in 0..200 {
        if status(gw).await["providers"]["primary"]["status_page"] == indicator {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the status page never showed {indicator}: {}",
        status(gw).await
    );
}

#[tokio::test]
async fn a_major_incident_moves_traffic_to_the_other_channel_and_back() {
    let primary = mock().await;
    let secondary = mock().await;
    let page = format!("{}/api/v2/status.json", primary.url());
    let gw = gateway(&config(&primary, &secondary, &page, "deprioritize")).await;
    wait_for_indicator(&gw, "none").await;
    assert_eq!(
        status(&gw).await["providers"]["secondary"]["status_page"],
        serde_json::Value::Null
    );

    assert!(primary.set_status_indicator("major"));
    wait_for_indicator(&gw, "major").await;
    for _ in 0..20 {
        assert_eq!(served_by(&gw).await, "secondary/gpt-4o");
    }
    let text = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("backstop_provider_status{provider=\"primary\"} 2"),
        "{text}"
    );
    assert_eq!(status(&gw).await["models"]["duo"]["reported"], "major");
    let targets = status(&gw).await["models"]["duo"]["targets"].clone();
    assert_eq!(targets[0]["provider_status"], "major");
    assert_eq!(
        targets[0]["state"], "closed",
        "a status page never opens a breaker"
    );
    let admin: serde_json::Value = reqwest::get(gw.url("/admin/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reported: Vec<(&str, &str)> = admin["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap(),
                t["provider_status"].as_str().unwrap_or("none configured"),
            )
        })
        .collect();
    assert_eq!(
        reported,
        [
            ("primary/gpt-4o", "major"),
            ("secondary/gpt-4o", "none configured")
        ]
    );
    assert_eq!(
        primary
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/chat/completions")
            .count(),
        0,
        "the status page was read, never a chat request sent"
    );

    // Deprioritized, not avoided: the primary still serves when the secondary fails.
    secondary.add_fault(backstop_mock::Fault::status(401));
    assert_eq!(served_by(&gw).await, "primary/gpt-4o");
    secondary.clear_faults();

    primary.set_status_indicator("none");
    wait_for_indicator(&gw, "none").await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.push(served_by(&gw).await);
    }
    assert!(
        seen.iter().any(|t| t == "primary/gpt-4o"),
        "traffic never came back: {seen:?}"
    );
}

#[tokio::test]
async fn an_unreachable_status_page_is_unknown_not_an_incident() {
    let primary = mock().await;
    let secondary = mock().await;
    let gw = gateway(&config(
        &primary,
        &secondary,
        "http://127.0.0.1:9/api/v2/status.json",
        "avoid",
    ))
    .await;
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = status(&gw).await["providers"]["primary"].clone();
        if last["error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["status_page"], "unknown", "{last}");
    let text = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("backstop_provider_status{provider=\"primary\"} -1"),
        "{text}"
    );
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.push(served_by(&gw).await);
    }
    assert!(
        seen.iter().any(|t| t == "primary/gpt-4o"),
        "unknown avoided the provider: {seen:?}"
    );
}

#[tokio::test]
async fn avoid_leaves_the_provider_out_while_another_channel_is_up() {
    let primary = mock().await;
    let secondary = mock().await;
    let page = format!("{}/api/v2/status.json", primary.url());
    let gw = gateway(&config(&primary, &secondary, &page, "avoid")).await;
    primary.set_status_indicator("critical");
    wait_for_indicator(&gw, "critical").await;
    secondary.add_fault(backstop_mock::Fault::status(401));
    let response = post_json(&gw, "/v1/chat/completions", &chat("duo", false)).await;
    assert_ne!(response.status(), 200, "an avoided provider is not tried");
    assert_eq!(
        primary
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/chat/completions")
            .count(),
        0
    );
}

#[test]
fn official_status_pages_only_for_official_hosts() {
    let parse = |base: &str| {
        let text = format!(
            "state = \"memory\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{base}\"\n[models.m]\ntargets = [{{ provider = \"p\", model = \"x\" }}]\n"
        );
        backstop_gateway::config::parse(&text, &|_| None)
            .unwrap()
            .providers["p"]
            .status_page
            .clone()
            .map(|page| page.url)
    };
    assert_eq!(
        parse("https://api.openai.com/v1").as_deref(),
        Some("https://status.openai.com/api/v2/status.json")
    );
    assert_eq!(parse("http://127.0.0.1:8000/v1"), None);
    assert_eq!(parse("https://api.openai.com.evil.example/v1"), None);
}
