//! The operator's side: metrics after scripted scenarios, /status, the admin API.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

/// The value of the sample line starting with `series` (name and labels).
pub(crate) fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{exposition}"))
}

async fn admin(
    s: &Setup,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, s.gw.url(path))
        .bearer_auth("admin-secret");
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

const ADMIN: &str =
    "[auth]\nadmin_key = \"admin-secret\"\n[models.gpt.price]\ninput = 2.0\noutput = 8.0\n";

#[tokio::test(start_paused = true)]
async fn metrics_count_requests_attempts_retries_fallbacks_tokens_and_cost() {
    let s = setup(ADMIN).await;
    assert_eq!(s.ask("gpt", false).await.status(), 200);
    fault(
        &s.primary,
        json!({"kind": "status", "status": 500, "count": 1}),
    )
    .await;
    assert_eq!(s.ask("gpt", false).await.status(), 200);
    fault(&s.primary, json!({"kind": "status", "status": 503})).await;
    assert!(s.ask_text("gpt", true).await.contains("[DONE]"));
    let text = s.get("/metrics").await.text().await.unwrap();

    assert_eq!(
        sample(
            &text,
            "backstop_requests_total{model=\"gpt\",tier=\"full\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "backstop_requests_total{model=\"gpt\",tier=\"reduced\",status=\"200\"}"
        ),
        1.0
    );
    let primary = "target=\"primary/gpt-4o-mini\"";
    assert_eq!(
        sample(
            &text,
            &format!(
                "backstop_upstream_attempts_total{{{primary},outcome=\"success\",class=\"none\"}}"
            )
        ),
        2.0
    );
    assert_eq!(sample(&text, &format!("backstop_upstream_attempts_total{{{primary},outcome=\"failure\",class=\"transient\"}}")), 4.0);
    assert_eq!(
        sample(&text, &format!("backstop_retries_total{{{primary}}}")),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "backstop_fallbacks_total{from=\"gpt\",to=\"backup\"}"
        ),
        1.0
    );
    let output = sample(
        &text,
        &format!("backstop_tokens_total{{{primary},kind=\"output\"}}"),
    );
    assert_eq!(output, 120.0, "two whole answers of 60 tokens");
    let input = sample(
        &text,
        &format!("backstop_tokens_total{{{primary},kind=\"input\"}}"),
    );
    let cost = sample(&text, &format!("backstop_cost_usd_total{{{primary}}}"));
    assert!(
        (cost - (input * 2.0 + output * 8.0) / 1e6).abs() < 1e-12,
        "cost {cost}"
    );
    assert!(
        sample(
            &text,
            "backstop_tokens_total{target=\"secondary/gpt-4o-backup\",kind=\"output\"}"
        ) > 0.0
    );
    assert!(text.contains("backstop_time_to_first_byte_seconds_bucket{le=\"0.01\","));
    assert!(text.contains("backstop_request_duration_seconds_bucket{le=\"120.0\",model=\"gpt\"}"));
    assert!(!text.contains("sk-primary-secret") && !text.contains("admin-secret"));
}

#[tokio::test(start_paused = true)]
async fn admin_api_needs_the_admin_key() {
    let s = setup(ADMIN).await;
    assert_eq!(s.get("/admin/targets").await.status(), 401);
    let wrong = reqwest::Client::new()
        .get(s.gw.url("/admin/targets"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let listed = admin(&s, reqwest::Method::GET, "/admin/targets", None).await;
    assert_eq!(listed.status(), 200);
    let body: serde_json::Value = listed.json().await.unwrap();
    let targets: Vec<&str> = body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.contains(&"primary/gpt-4o-mini") && targets.contains(&"secondary/gpt-4o-backup"),
        "{targets:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forced_open_breaker_skips_its_target_and_shows_in_status() {
    let s = setup(ADMIN).await;
    let forced = admin(
        &s,
        reqwest::Method::POST,
        "/admin/breakers/primary/gpt-4o-mini/open",
        None,
    )
    .await;
    assert_eq!(forced.status(), 200);
    let response = s.ask("gpt", false).await;
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(s.primary.requests().len(), 0);

    let status: serde_json::Value = s.get("/status").await.json().await.unwrap();
    assert_eq!(status["models"]["gpt"]["status"], "degraded");
    assert_eq!(status["models"]["gpt"]["targets"][0]["state"], "open");
    assert_eq!(status["models"]["backup"]["status"], "ok");
    assert_eq!(status["status"], "degraded");
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(
            &metrics,
            "backstop_circuit_state{target=\"primary/gpt-4o-mini\"}"
        ),
        2.0
    );

    admin(
        &s,
        reqwest::Method::POST,
        "/admin/breakers/primary/gpt-4o-mini/close",
        None,
    )
    .await;
    assert_eq!(
        s.ask("gpt", false).await.headers()["x-backstop-model"],
        "gpt"
    );
    let status: serde_json::Value = s.get("/status").await.json().await.unwrap();
    assert_eq!(status["status"], "ok");
}

#[tokio::test(start_paused = true)]
async fn an_injected_fault_fails_over_without_calling_the_target() {
    let s = setup(ADMIN).await;
    let injected = admin(
        &s,
        reqwest::Method::POST,
        "/admin/faults",
        Some(json!({"target": "primary/gpt-4o-mini", "kind": "status", "status": 503, "duration": "30s"})),
    )
    .await;
    assert_eq!(injected.status(), 200);
    let response = s.ask("gpt", false).await;
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    assert_eq!(
        s.primary.requests().len(),
        0,
        "an injected fault makes no upstream call"
    );
    let status: serde_json::Value = s.get("/status").await.json().await.unwrap();
    assert!(status["models"]["gpt"]["targets"][0]["fault"].is_object());

    admin(
        &s,
        reqwest::Method::DELETE,
        "/admin/faults?target=primary/gpt-4o-mini",
        None,
    )
    .await;
    let healed = s.ask("gpt", false).await;
    assert_eq!(healed.headers()["x-backstop-model"], "gpt");

    let unknown = admin(
        &s,
        reqwest::Method::POST,
        "/admin/faults",
        Some(json!({"target": "x/y", "kind": "reset"})),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    let bad = admin(
        &s,
        reqwest::Method::POST,
        "/admin/faults",
        Some(json!({"target": "primary/gpt-4o-mini", "kind": "status"})),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let text = bad.text().await.unwrap();
    assert!(text.contains("needs `status`"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn reload_refuses_a_bad_file_and_keeps_the_running_config() {
    let (primary, secondary) = (mock().await, mock().await);
    let file = ConfigFile::new("reload", &two_upstreams(&primary, &secondary, ""));
    let gw = gateway_from_file(&file.path).await;
    let client = reqwest::Client::new();
    let reload = || client.post(gw.url("/admin/reload")).send();

    file.write("[models.broken]\ntargets = [{ provider = \"nowhere\", model = \"x\" }]\n");
    let refused = reload().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("models.broken.targets[0].provider"));
    let still = client
        .post(gw.url("/v1/chat/completions"))
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);

    let extra = "[models.added]\ntargets = [{ provider = \"secondary\", model = \"new-model\" }]\n";
    file.write(&two_upstreams(&primary, &secondary, extra));
    assert_eq!(reload().await.unwrap().status(), 200);
    let added = client
        .post(gw.url("/v1/chat/completions"))
        .json(&chat("added", false))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    assert_eq!(added.headers()["x-backstop-target"], "secondary/new-model");
}

#[tokio::test(start_paused = true)]
async fn a_reload_during_a_request_leaves_its_timeouts_as_they_were() {
    let (primary, secondary) = (mock().await, mock().await);
    let before = two_upstreams(
        &primary,
        &secondary,
        "[models.gpt.retry]\nmax_delay = \"5s\"\n",
    );
    let file = ConfigFile::new("mid-request", &before);
    let gw = gateway_from_file(&file.path).await;
    // The first attempt is told to come back in 1 s; the second answers after 500 ms.
    fault(
        &primary,
        serde_json::json!({"kind": "rate_limit", "retry_after": "1", "count": 1}),
    )
    .await;
    fault(
        &primary,
        serde_json::json!({"kind": "delay_headers", "delay": "500ms", "count": 1}),
    )
    .await;
    let url = gw.url("/v1/chat/completions");
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&chat("gpt", false))
            .send()
            .await
            .unwrap()
    });
    // While it waits to retry, a reload cuts first_byte to 100 ms: that would fail the
    // second attempt over to the fallback, were the request not held to its own snapshot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    file.write(&before.replace("first_byte = \"2s\"", "first_byte = \"100ms\""));
    let reloaded = reqwest::Client::new()
        .post(gw.url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    let response = request.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "gpt");
    assert_eq!(response.headers()["x-backstop-attempts"], "2");
    // A request that starts after the reload runs under the new first_byte.
    fault(
        &primary,
        serde_json::json!({"kind": "delay_headers", "delay": "500ms", "count": 1}),
    )
    .await;
    let after = post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(after.headers()["x-backstop-model"], "backup");
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_fails_before_its_first_event_is_counted_once_per_attempt() {
    let s = setup(ADMIN).await;
    fault(&s.primary, json!({"kind": "cut_after", "events": 0})).await;
    assert!(s.ask_text("gpt", true).await.contains("[DONE]"));
    let calls = s.primary.requests().len();
    assert!(calls >= 1);
    let text = s.get("/metrics").await.text().await.unwrap();
    let failed: f64 = text
        .lines()
        .filter(|line| {
            line.starts_with("backstop_upstream_attempts_total{target=\"primary/gpt-4o-mini\",outcome=\"failure\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed, calls as f64, "{text}");
}
