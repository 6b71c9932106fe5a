//! Governance with real parts: client keys with budgets and rate limits in front of mock upstreams, spend charged
//! on whichever target served, shared by two replicas on a real redis-server.

use crate::common::{chat, fault, gateway, gateway_with_state, mock, two_upstreams, TestGateway};
use backstop_mock::redis_server::RedisServer;
use backstop_mock::MockServer;
use serde_json::{json, Value};
use std::time::Duration;

/// Every answer of `backup` costs $60: the mock's 60 output tokens at $1 a token. `gpt`'s own price is a
/// millionth of that, so a charge at the wrong price shows.
const PRICES: [(&str, &str); 2] = [
    (
        "[models.gpt]\n",
        "[models.gpt]\nprice = { input = 0, output = 1 }\n",
    ),
    (
        "[models.backup]\n",
        "[models.backup]\nprice = { input = 0, output = 1000000 }\n",
    ),
];

const KEYS: &str = r#"
[auth]
admin_key = "adm-secret"
[[keys]]
name = "team-a"
key = "sk-team-a-secret"
budget = { usd = 100, per = "day" }
[[keys]]
name = "team-b"
key_sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
models = ["gpt"]
budget = { usd = 100, per = "month" }
rate = { requests_per_minute = 2 }
"#;

/// `sha256("foo")`: team-b's key is `foo`.
const TEAM_B: &str = "foo";
pub const TEAM_A: &str = "sk-team-a-secret";

pub fn config(primary: &MockServer, secondary: &MockServer) -> String {
    let mut text = two_upstreams(primary, secondary, KEYS);
    for (from, to) in PRICES {
        text = text.replace(from, to);
    }
    text
}

pub async fn ask_as(gw: &TestGateway, key: &str, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat(model, false))
        .send()
        .await
        .expect("request")
}

pub async fn admin_keys(gw: &TestGateway) -> Value {
    reqwest::Client::new()
        .get(gw.url("/admin/keys"))
        .bearer_auth("adm-secret")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

pub fn key_entry<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["name"] == name)
        .expect("key listed")
}

async fn spent(gw: &TestGateway, key: &str) -> f64 {
    key_entry(&admin_keys(gw).await, key)["spent_usd"]
        .as_f64()
        .expect("spent_usd")
}

async fn metrics(gw: &TestGateway) -> String {
    reqwest::get(gw.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

fn cost(response: &reqwest::Response) -> f64 {
    response.headers()["x-backstop-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn two_keys_have_separate_budgets_charged_on_the_fallback_that_served() {
    let (primary, secondary) = (mock().await, mock().await);
    fault(&primary, json!({"kind": "status", "status": 500})).await;
    let gw = gateway(&config(&primary, &secondary)).await;

    // The primary fails every try; the fallback serves, and its price is charged.
    for _ in 0..2 {
        let answer = ask_as(&gw, TEAM_A, "gpt").await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-backstop-model"], "backup");
        assert!(answer.headers()["x-backstop-attempts"].to_str().unwrap() != "1");
        assert_eq!(cost(&answer), 60.0);
    }
    // $120 of $100 spent: the in-flight second request was not cut, the third is refused.
    let refused = ask_as(&gw, TEAM_A, "gpt").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_none());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`team-a`")
            && message.contains("$100 per day")
            && message.contains("resets at"),
        "{message}"
    );
    assert!(!message.contains(TEAM_A), "{message}");

    // Anthropic callers get their own error type.
    let anthropic = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", TEAM_A)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 429);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // team-b has its own budget.
    let other = ask_as(&gw, TEAM_B, "gpt").await;
    assert_eq!(other.status(), 200);
    assert_eq!(cost(&other), 60.0);

    let report = admin_keys(&gw).await;
    let a = key_entry(&report, "team-a");
    assert_eq!(a["spent_usd"], 120.0);
    assert_eq!(a["budget"]["remaining_usd"], 0.0);
    assert_eq!(a["budget"]["per"], "day");
    let b = key_entry(&report, "team-b");
    assert_eq!(b["spent_usd"], 60.0);
    assert_eq!(b["budget"]["remaining_usd"], 40.0);
    assert_eq!(b["rate"]["requests_per_minute"], 2);
    let text = report.to_string();
    assert!(
        !text.contains(TEAM_A) && !text.contains("2c26b46b"),
        "{text}"
    );

    let metrics = metrics(&gw).await;
    assert!(
        metrics.contains(r#"backstop_spend_usd_total{key="team-a",model="gpt"} 120.0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"backstop_rate_limited_total{key="team-a"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains(TEAM_A));
}

#[tokio::test]
async fn keys_are_checked_and_rate_limits_answer_429_with_retry_after() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&config(&primary, &secondary)).await;

    assert_eq!(ask_as(&gw, "sk-unknown", "gpt").await.status(), 401);
    let no_key = crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(no_key.status(), 401);
    let forbidden = ask_as(&gw, TEAM_B, "backup").await;
    assert_eq!(forbidden.status(), 403);
    let body: Value = forbidden.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`team-b` may not use model `backup`"));

    for _ in 0..2 {
        assert_eq!(ask_as(&gw, TEAM_B, "gpt").await.status(), 200);
    }
    let limited = ask_as(&gw, TEAM_B, "gpt").await;
    assert_eq!(limited.status(), 429);
    let after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "{after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2 requests per minute"));
    // Another key is not limited by team-b's rate.
    assert_eq!(ask_as(&gw, TEAM_A, "gpt").await.status(), 200);
    assert!(metrics(&gw)
        .await
        .contains(r#"backstop_rate_limited_total{key="team-b"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_share_one_budget() {
    let redis = RedisServer::start().unwrap();
    let (primary, secondary) = (mock().await, mock().await);
    let text = config(&primary, &secondary).replace(
        "state = \"memory\"",
        &format!(
            "state = \"{}\"\nstate_prefix = \"g{}:\"",
            redis.url(),
            redis.port()
        ),
    );
    let (_, a) = gateway_with_state(&text).await;
    let (_, b) = gateway_with_state(&text).await;

    // $60 on each replica: $120 of team-a's $100, spent half here and half there.
    assert_eq!(ask_as(&a, TEAM_A, "backup").await.status(), 200);
    assert_eq!(ask_as(&b, TEAM_A, "backup").await.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (on_a, on_b) = (spent(&a, "team-a").await, spent(&b, "team-a").await);
        if on_a >= 120.0 && on_b >= 120.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replicas did not share their spend: {on_a} and {on_b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ask_as(&a, TEAM_A, "backup").await.status(), 429);
    assert_eq!(ask_as(&b, TEAM_A, "backup").await.status(), 429);
    assert_eq!(ask_as(&b, TEAM_B, "gpt").await.status(), 200);
}

/// `primary` in us-east-1, `secondary` in eu-west-1; `gpt` (on primary) falls back to `backup` (on secondary).
pub fn regional(primary: &MockServer, secondary: &MockServer, extra: &str) -> String {
    two_upstreams(primary, secondary, extra)
        .replace(
            "[providers.primary]\n",
            "[providers.primary]\nregion = \"us-east-1\"\n",
        )
        .replace(
            "[providers.secondary]\n",
            "[providers.secondary]\nregion = \"eu-west-1\"\n",
        )
}

async fn ask_with_regions(
    gw: &TestGateway,
    model: &str,
    regions: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat(model, false));
    if let Some(regions) = regions {
        request = request.header("x-backstop-regions", regions);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn a_region_policy_skips_an_out_of_region_fallback_and_says_when_nothing_is_left() {
    let (primary, secondary) = (mock().await, mock().await);
    let text = regional(&primary, &secondary, "")
        .replace("[models.gpt]\n", "[models.gpt]\nregions = [\"us-*\"]\n");
    let gw = gateway(&text).await;

    // In region: served as usual.
    assert_eq!(ask_with_regions(&gw, "gpt", None).await.status(), 200);
    // The primary fails; its fallback is in eu-west-1, outside the model's regions: never called.
    fault(&primary, json!({"kind": "status", "status": 500})).await;
    let failed = ask_with_regions(&gw, "gpt", None).await;
    assert_eq!(failed.status(), 503);
    assert_eq!(
        secondary.requests().len(),
        0,
        "the out-of-region fallback was called"
    );
    assert!(primary.requests().len() > 1);

    // A header that selects only eu leaves nothing for `gpt`: the header narrows, it never widens.
    let before = primary.requests().len();
    let nothing = ask_with_regions(&gw, "gpt", Some("eu-*")).await;
    assert_eq!(nothing.status(), 503);
    let body: Value = nothing.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the region policy left no target")
            && message.contains("model `gpt` allows [us-*]")
            && message.contains("x-backstop-regions allows [eu-*]")
            && message.contains("primary/gpt-4o-mini (us-east-1)"),
        "{message}"
    );
    assert_eq!(primary.requests().len(), before, "nothing is sent");

    // `backup` has no region rule; the header narrows it to eu (served) or to us (nothing left).
    assert_eq!(
        ask_with_regions(&gw, "backup", Some("eu-west-*"))
            .await
            .status(),
        200
    );
    assert_eq!(
        ask_with_regions(&gw, "backup", Some(" us-* "))
            .await
            .status(),
        503
    );
    assert_eq!(
        ask_with_regions(&gw, "backup", Some(" , ")).await.status(),
        400
    );
}

#[tokio::test]
async fn a_keys_regions_apply_to_its_fallbacks() {
    let (primary, secondary) = (mock().await, mock().await);
    let keys = "[[keys]]\nname = \"eu-team\"\nkey = \"sk-eu\"\nregions = [\"eu-*\"]\n\
                [[keys]]\nname = \"anywhere\"\nkey = \"sk-any\"\n";
    let gw = gateway(&regional(&primary, &secondary, keys)).await;
    // The eu key's request for `gpt` skips the us primary and is served by the eu fallback.
    let answer = ask_as(&gw, "sk-eu", "gpt").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-backstop-model"], "backup");
    assert_eq!(primary.requests().len(), 0);
    // Another key is served by the primary.
    let answer = ask_as(&gw, "sk-any", "gpt").await;
    assert_eq!(answer.headers()["x-backstop-model"], "gpt");
    // `claude` is on a provider with no region: outside every rule.
    let claude = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "sk-eu")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(claude.status(), 503);
    let body: Value = claude.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anth/claude-sonnet-4-5 (no region)"));
}

/// `gpt` and `backup` pinned in the catalog: `primary` serves `gpt-4o-mini-2024-07-18`, `secondary`
/// `gpt-4o-backup-2024-01-01`.
pub fn pinned(primary: &MockServer, secondary: &MockServer, extra: &str) -> String {
    let catalog = "[catalog.models.mini]\nversions = { primary = \"gpt-4o-mini-2024-07-18\" }\n\
                   [catalog.models.spare]\nversions = { secondary = \"gpt-4o-backup-2024-01-01\" }\n";
    two_upstreams(primary, secondary, &format!("{catalog}{extra}"))
        .replace(
            "{ provider = \"primary\", model = \"gpt-4o-mini\" }",
            "{ provider = \"primary\", catalog = \"mini\" }",
        )
        .replace(
            "{ provider = \"secondary\", model = \"gpt-4o-backup\" }",
            "{ provider = \"secondary\", catalog = \"spare\" }",
        )
}

pub const DRIFTED: &str = "gpt-4o-mini-2025-01-01";

#[tokio::test]
async fn a_drift_from_the_pin_is_counted_once_logged_and_shown_in_status() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&pinned(&primary, &secondary, "")).await;
    let answer = crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        crate::common::models_seen(&primary),
        ["gpt-4o-mini-2024-07-18"]
    );
    let metrics_text = metrics(&gw).await;
    assert!(
        !metrics_text.contains("backstop_model_drift_total{"),
        "{metrics_text}"
    );

    fault(&primary, json!({"kind": "wrong_model", "name": DRIFTED})).await;
    for _ in 0..2 {
        let answer =
            crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
        assert_eq!(answer.status(), 200, "on_drift = \"log\" serves the answer");
        assert_eq!(answer.headers()["x-backstop-model"], "gpt");
    }
    let metrics_text = metrics(&gw).await;
    assert!(
        metrics_text.contains(&format!(
            r#"backstop_model_drift_total{{target="primary/gpt-4o-mini-2024-07-18",reported="{DRIFTED}"}} 2"#
        )),
        "{metrics_text}"
    );
    let status: Value = reqwest::get(gw.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["drift"],
        json!([{"target": "primary/gpt-4o-mini-2024-07-18", "reported": DRIFTED, "count": 2}])
    );
}

#[tokio::test]
async fn on_drift_fail_fails_over_to_a_channel_that_serves_the_pin() {
    let (primary, secondary) = (mock().await, mock().await);
    let text = pinned(&primary, &secondary, "")
        .replace("[models.gpt]\n", "[models.gpt]\non_drift = \"fail\"\n");
    let gw = gateway(&text).await;
    fault(&primary, json!({"kind": "wrong_model", "name": DRIFTED})).await;
    let answer = crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-backstop-model"], "backup");
    assert_eq!(
        answer.headers()["x-backstop-target"],
        "secondary/gpt-4o-backup-2024-01-01"
    );
    let metrics_text = metrics(&gw).await;
    assert!(
        metrics_text.contains(r#"backstop_upstream_attempts_total{target="primary/gpt-4o-mini-2024-07-18",outcome="failure",class="target_broken"} 1"#),
        "{metrics_text}"
    );
    assert!(metrics_text.contains(r#"backstop_fallbacks_total{from="gpt",to="backup"} 1"#));
    // A broken target's circuit is open: the next request goes to the fallback without asking it.
    let calls = primary.requests().len();
    let again = crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(again.headers()["x-backstop-model"], "backup");
    assert_eq!(primary.requests().len(), calls);
}

#[tokio::test]
async fn catalog_enforce_is_refused_by_check_and_by_reload_naming_the_model() {
    let (primary, secondary) = (mock().await, mock().await);
    let approved = pinned(&primary, &secondary, "")
        .replace(
            "[models.claude]\ntargets = [{ provider = \"anth\", model = \"claude-sonnet-4-5\" }]\n",
            "",
        )
        .replace(
            "state = \"memory\"",
            "state = \"memory\"\n[catalog]\nenforce = true",
        );
    let file = crate::common::ConfigFile::new("governance-enforce", &approved);
    let gw = crate::common::gateway_from_file(&file.path).await;

    // The fallback `backup` moves to a model nobody approved.
    let unapproved = approved.replace(
        "{ provider = \"secondary\", catalog = \"spare\" }",
        "{ provider = \"secondary\", model = \"gpt-4o-unvetted\" }",
    );
    file.write(&unapproved);
    let output = crate::hostile::auth::process::run(
        &["check", "--config", file.path.to_str().unwrap()],
        &[],
        &file.directory,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("models.backup.targets[0]")
            && stderr.contains("`secondary/gpt-4o-unvetted` is not in the approved catalog")
            && stderr.contains("`backup` is a fallback of `gpt`"),
        "{stderr}"
    );
    let reload = reqwest::Client::new()
        .post(gw.url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 400);
    let body = reload.text().await.unwrap();
    assert!(
        body.contains("gpt-4o-unvetted") && body.contains("approved catalog"),
        "{body}"
    );
    // The running config stayed: the pinned fallback still serves.
    fault(&primary, json!({"kind": "status", "status": 500})).await;
    let answer = crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(
        answer.headers()["x-backstop-target"],
        "secondary/gpt-4o-backup-2024-01-01"
    );
}

/// Sends `gpt` requests until `mock` has served one, at most 20; `true` if it did.
pub async fn until_served_by(gw: &TestGateway, mock: &MockServer) -> bool {
    let before = mock.requests().len();
    for _ in 0..20 {
        let answer =
            crate::common::post_json(gw, "/v1/chat/completions", &chat("gpt", false)).await;
        assert_eq!(answer.status(), 200);
        if mock.requests().len() > before {
            return true;
        }
    }
    false
}

#[tokio::test(start_paused = true)]
async fn a_target_short_of_requests_is_avoided_until_its_reset() {
    let (primary, secondary) = (mock().await, mock().await);
    let text = two_upstreams(&primary, &secondary, "[rate_limit]\nheadroom = 0.05\n").replace(
        "targets = [{ provider = \"primary\", model = \"gpt-4o-mini\" }]",
        "targets = [{ provider = \"primary\", model = \"gpt-4o-mini\", weight = 1000 },\n\
         { provider = \"secondary\", model = \"gpt-4o-mini\", weight = 1 }]",
    );
    let gw = gateway(&text).await;

    // The primary's next answer says 3 of its 100 requests are left for the next 20 s.
    fault(
        &primary,
        json!({"kind": "quota", "limit": 100, "remaining": 3, "reset": "20s", "count": 1}),
    )
    .await;
    assert!(until_served_by(&gw, &primary).await);
    let calls = primary.requests().len();
    let served_elsewhere = secondary.requests().len();
    for _ in 0..10 {
        let answer =
            crate::common::post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers()["x-backstop-target"],
            "secondary/gpt-4o-mini"
        );
    }
    assert_eq!(
        primary.requests().len(),
        calls,
        "the short target was called"
    );
    assert_eq!(secondary.requests().len(), served_elsewhere + 10);
    assert!(metrics(&gw)
        .await
        .contains(r#"backstop_preemptive_reroutes_total{target="primary/gpt-4o-mini"} 10"#));

    // After its reset the primary is preferred again.
    tokio::time::advance(Duration::from_secs(21)).await;
    assert!(until_served_by(&gw, &primary).await);
}

#[tokio::test(start_paused = true)]
async fn a_request_heavier_than_a_targets_tokens_left_goes_elsewhere() {
    let (primary, secondary) = (mock().await, mock().await);
    let text = two_upstreams(&primary, &secondary, "").replace(
        "targets = [{ provider = \"primary\", model = \"gpt-4o-mini\" }]",
        "targets = [{ provider = \"primary\", model = \"gpt-4o-mini\", weight = 1000 },\n\
         { provider = \"secondary\", model = \"gpt-4o-mini\", weight = 1 }]",
    );
    let gw = gateway(&text).await;
    // Plenty of requests left, and 9,000 of 100,000 tokens: above the 5% headroom.
    fault(
        &primary,
        json!({"kind": "quota", "limit": 1000, "remaining": 900, "reset": "1m",
               "tokens_limit": 100000, "tokens_remaining": 9000, "count": 1}),
    )
    .await;
    assert!(until_served_by(&gw, &primary).await);
    let calls = primary.requests().len();
    // A small request still fits.
    assert!(until_served_by(&gw, &primary).await);
    // One that asks for 20,000 tokens of answer does not: it goes to the other channel.
    let mut heavy = chat("gpt", false);
    heavy["max_tokens"] = json!(20000);
    let answer = crate::common::post_json(&gw, "/v1/chat/completions", &heavy).await;
    assert_eq!(
        answer.headers()["x-backstop-target"],
        "secondary/gpt-4o-mini"
    );
    assert_eq!(primary.requests().len(), calls + 1);
}

#[tokio::test]
async fn embeddings_are_charged_to_the_key_and_refused_over_its_budget() {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = "[models.embed]\ntargets = [{ provider = \"primary\", model = \"small\" }]\n\
                 price = { input = 1000000, output = 0 }\n\
                 [[keys]]\nname = \"indexer\"\nkey = \"sk-indexer\"\nbudget = { usd = 1, per = \"total\" }\n\
                 [auth]\nadmin_key = \"adm-secret\"\n";
    let gw = gateway(&two_upstreams(&primary, &secondary, extra)).await;
    let embed = || async {
        reqwest::Client::new()
            .post(gw.url("/v1/embeddings"))
            .bearer_auth("sk-indexer")
            .json(&json!({"model": "embed", "input": "some text to index"}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(embed().await.status(), 200);
    // Its input tokens at $1 each: over the $1 total at once.
    assert!(spent(&gw, "indexer").await >= 1.0);
    let refused = embed().await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("it is a total and does not reset"));
}
