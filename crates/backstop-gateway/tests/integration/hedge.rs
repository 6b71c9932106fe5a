//! Hedged requests: a slow first byte is raced by another target.

use crate::common::*;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

const HEDGED: &str = r#"
[models.hedged]
targets = [{ provider = "primary", model = "h" }, { provider = "secondary", model = "h" }, ]
balance = "least_latency"
hedge = { delay = "200ms" }
[models.unhedged]
targets = [{ provider = "primary", model = "u" }]
fallbacks = ["backup"]
"#;

#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_is_hedged_and_the_first_answer_wins() {
    let s = setup(HEDGED).await;
    fault(
        &s.primary,
        json!({"kind": "delay_headers", "delay": "1500ms"}),
    )
    .await;
    fault(
        &s.secondary,
        json!({"kind": "delay_headers", "delay": "1500ms"}),
    )
    .await;
    // Both slow: the hedge goes out, neither wins before 1.5 s.
    let started = Instant::now();
    let response = s.ask("hedged", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
    assert!(started.elapsed() >= Duration::from_millis(1500));

    reqwest::Client::new()
        .delete(format!("{}/_mock/faults", s.secondary.url()))
        .send()
        .await
        .unwrap();
    for _ in 0..4 {
        let started = Instant::now();
        let response = s.ask("hedged", false).await;
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the hedge answered first"
        );
        let served = response.headers()["x-backstop-target"]
            .to_str()
            .unwrap()
            .to_string();
        let attempts = response.headers()["x-backstop-attempts"]
            .to_str()
            .unwrap()
            .to_string();
        match served.as_str() {
            "secondary/h" if attempts == "2" => {}
            "secondary/h" => assert_eq!(attempts, "1", "secondary chosen first, no hedge needed"),
            other => panic!("served by {other}"),
        }
    }
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("backstop_hedges_total{target=\"primary/h\"}"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_hedge_without_the_setting() {
    let s = setup(HEDGED).await;
    fault(
        &s.primary,
        json!({"kind": "delay_headers", "delay": "500ms"}),
    )
    .await;
    let response = s.ask("unhedged", false).await;
    assert_eq!(response.headers()["x-backstop-attempts"], "1");
    assert_eq!(s.secondary.requests().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_is_learned_from_the_targets_time_to_first_byte() {
    let s = setup(
        "[models.learned]\ntargets = [{ provider = \"primary\", model = \"l\" }]\nfallbacks = [\"backup\"]\nhedge = { delay = \"p90\" }\n",
    )
    .await;
    for _ in 0..25 {
        assert_eq!(s.ask("learned", false).await.status(), 200);
    }
    fault(
        &s.primary,
        json!({"kind": "delay_headers", "delay": "1500ms"}),
    )
    .await;
    let started = Instant::now();
    let response = s.ask("learned", false).await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "hedged after the learned p90"
    );
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
}
