//! Governance on the paths beside a whole chat answer: streamed answers checked against their pins, the room a
//! provider says it has left shared by replicas on a real redis-server, region rules on embeddings.

use crate::common::{
    chat, eventually, fault, gateway, gateway_with_state, metrics_text, mock, post_json,
    two_upstreams, TestGateway,
};
use crate::governance::{self, pinned, regional, until_served_by, DRIFTED};
use crate::rescue::{full_answer, openai_stream};
use backstop_gateway::pipeline::Gateway;
use backstop_mock::redis_server::RedisServer;
use serde_json::json;
use std::time::Duration;

/// A streamed `model` request: the serving target and the body.
async fn stream(gw: &TestGateway, model: &str) -> (String, String) {
    let response = post_json(gw, "/v1/chat/completions", &chat(model, true)).await;
    assert_eq!(response.status(), 200);
    let target = response.headers()["x-backstop-target"]
        .to_str()
        .unwrap()
        .to_string();
    (target, response.text().await.unwrap())
}

#[tokio::test]
async fn a_drifted_stream_is_counted_and_shown_in_status_under_on_drift_log() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&pinned(&primary, &secondary, "")).await;
    fault(&primary, json!({"kind": "wrong_model", "name": DRIFTED})).await;
    for _ in 0..2 {
        let (target, text) = stream(&gw, "gpt").await;
        assert_eq!(target, "primary/gpt-4o-mini-2024-07-18");
        assert_eq!(openai_stream(&text).0, full_answer());
    }
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(&format!(
            r#"backstop_model_drift_total{{target="primary/gpt-4o-mini-2024-07-18",reported="{DRIFTED}"}} 2"#
        )),
        "{metrics}"
    );
    let status: serde_json::Value = reqwest::get(gw.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["drift"][0]["count"], 2);
}

#[tokio::test]
async fn a_drifted_stream_fails_over_before_its_first_byte_under_on_drift_fail() {
    let (primary, secondary) = (mock().await, mock().await);
    let text = pinned(&primary, &secondary, "")
        .replace("[models.gpt]\n", "[models.gpt]\non_drift = \"fail\"\n");
    let gw = gateway(&text).await;
    fault(&primary, json!({"kind": "wrong_model", "name": DRIFTED})).await;
    let (target, body) = stream(&gw, "gpt").await;
    assert_eq!(target, "secondary/gpt-4o-backup-2024-01-01");
    let (content, finishes, errors, chunks) = openai_stream(&body);
    assert_eq!(content, full_answer());
    assert_eq!(finishes, ["stop"]);
    assert!(errors.is_empty(), "{body}");
    assert!(
        chunks.iter().all(|chunk| chunk["model"] != DRIFTED),
        "nothing of the drifted stream reached the client: {body}"
    );
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(r#"backstop_upstream_attempts_total{target="primary/gpt-4o-mini-2024-07-18",outcome="failure",class="target_broken"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        r#"backstop_model_drift_total{{target="primary/gpt-4o-mini-2024-07-18",reported="{DRIFTED}"}} 1"#
    )));
}

#[tokio::test]
async fn a_drift_after_the_commit_point_is_counted_and_the_stream_goes_on() {
    let (primary, secondary) = (mock().await, mock().await);
    let text = pinned(&primary, &secondary, "").replace(
        "[models.backup]\n",
        "[models.backup]\non_drift = \"fail\"\n",
    );
    let gw = gateway(&text).await;
    // The primary's stream breaks after the client has part of it; the fallback that continues it drifted.
    fault(&primary, json!({"kind": "cut_after", "events": 20})).await;
    fault(
        &secondary,
        json!({"kind": "wrong_model", "name": "gpt-4o-backup-2099-01-01"}),
    )
    .await;
    let (_, body) = stream(&gw, "gpt").await;
    let (content, finishes, errors, _) = openai_stream(&body);
    assert_eq!(content, full_answer(), "{body}");
    assert_eq!(finishes, ["stop"]);
    assert!(errors.is_empty(), "{body}");
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(r#"backstop_model_drift_total{target="secondary/gpt-4o-backup-2024-01-01",reported="gpt-4o-backup-2099-01-01"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"backstop_stream_rescues_total{target="secondary/gpt-4o-backup-2024-01-01",outcome="restarted"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_one_replica_learned_is_short_is_avoided_by_the_other() {
    let redis = RedisServer::start().unwrap();
    let (primary, secondary) = (mock().await, mock().await);
    let text = two_upstreams(&primary, &secondary, "[rate_limit]\nheadroom = 0.05\n")
        .replace(
            "targets = [{ provider = \"primary\", model = \"gpt-4o-mini\" }]",
            "targets = [{ provider = \"primary\", model = \"gpt-4o-mini\", weight = 1000 },\n\
             { provider = \"secondary\", model = \"gpt-4o-mini\", weight = 1 }]",
        )
        .replace(
            "state = \"memory\"",
            &format!(
                "state = \"{}\"\nstate_prefix = \"q{}:\"",
                redis.url(),
                redis.port()
            ),
        );
    let (gateway_a, a) = gateway_with_state(&text).await;
    let (gateway_b, b) = gateway_with_state(&text).await;
    let short = |gateway: &Gateway| {
        gateway
            .governance()
            .quotas
            .short("primary/gpt-4o-mini", 0.05, 0)
    };

    // Replica A's answer from the primary says 3 of its 100 requests are left for the next minute.
    fault(
        &primary,
        json!({"kind": "quota", "limit": 100, "remaining": 3, "reset": "60s", "count": 1}),
    )
    .await;
    assert!(until_served_by(&a, &primary).await);
    assert!(short(&gateway_a));
    assert!(
        eventually(Duration::from_secs(5), || short(&gateway_b)).await,
        "replica B never learned what A did"
    );

    // B has not asked the primary since, and sends everything to the other channel.
    let calls = primary.requests().len();
    for _ in 0..10 {
        let answer = post_json(&b, "/v1/chat/completions", &chat("gpt", false)).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers()["x-backstop-target"],
            "secondary/gpt-4o-mini"
        );
    }
    assert_eq!(primary.requests().len(), calls);
    assert!(metrics_text(&b)
        .await
        .contains(r#"backstop_preemptive_reroutes_total{target="primary/gpt-4o-mini"} 10"#));
}

/// `embed` on the primary (us-east-1) falls back to `twin` on the secondary (eu-west-1), one embedding space.
const EMBEDDINGS: &str = r#"
[models.embed]
targets = [{ provider = "primary", model = "small" }]
embedding_space = "small"
fallbacks = ["twin"]
[models.twin]
targets = [{ provider = "secondary", model = "small-twin" }]
embedding_space = "small"
[[keys]]
name = "eu-team"
key = "sk-eu-team"
regions = ["eu-*"]
[[keys]]
name = "anywhere"
key = "sk-anywhere"
"#;

async fn embed(gw: &TestGateway, key: &str, regions: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(key)
        .json(&json!({"model": "embed", "input": "some text to index"}));
    if let Some(regions) = regions {
        request = request.header("x-backstop-regions", regions);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn embeddings_obey_the_region_rules_of_keys_models_and_the_header() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&regional(&primary, &secondary, EMBEDDINGS)).await;

    // Without a rule the primary serves.
    let answer = embed(&gw, "sk-anywhere", None).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-backstop-target"], "primary/small");

    // A key held to the EU is served by the in-region fallback; the primary is never called.
    let served = primary.requests().len();
    let answer = embed(&gw, "sk-eu-team", None).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["x-backstop-target"],
        "secondary/small-twin"
    );
    // So is a request that narrows itself to the EU.
    let answer = embed(&gw, "sk-anywhere", Some("eu-*")).await;
    assert_eq!(
        answer.headers()["x-backstop-target"],
        "secondary/small-twin"
    );
    assert_eq!(primary.requests().len(), served);

    // The header narrows what the key allows, never widens it: nothing is left, and the client is told why.
    let refused = embed(&gw, "sk-eu-team", Some("us-*")).await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the region policy left no target")
            && message.contains("key `eu-team` allows [eu-*]"),
        "{message}"
    );
    let calls = (primary.requests().len(), secondary.requests().len());

    // A model's own rule applies too.
    let text = regional(&primary, &secondary, EMBEDDINGS)
        .replace("[models.embed]\n", "[models.embed]\nregions = [\"eu-*\"]\n");
    let gw = gateway(&text).await;
    let answer = embed(&gw, "sk-anywhere", None).await;
    assert_eq!(
        answer.headers()["x-backstop-target"],
        "secondary/small-twin"
    );
    assert_eq!(primary.requests().len(), calls.0);
    assert_eq!(secondary.requests().len(), calls.1 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_list_the_same_spend_by_model() {
    let redis = RedisServer::start().unwrap();
    let (primary, secondary) = (mock().await, mock().await);
    let text = governance::config(&primary, &secondary).replace(
        "state = \"memory\"",
        &format!(
            "state = \"{}\"\nstate_prefix = \"m{}:\"",
            redis.url(),
            redis.port()
        ),
    );
    let (_, a) = gateway_with_state(&text).await;
    let (_, b) = gateway_with_state(&text).await;

    // $60 for `backup` on replica A, $0.00006 for `gpt` on replica B.
    let asked = governance::ask_as(&a, governance::TEAM_A, "backup").await;
    assert_eq!(asked.status(), 200);
    let asked = governance::ask_as(&b, governance::TEAM_A, "gpt").await;
    assert_eq!(asked.status(), 200);
    let by_model = |report: &serde_json::Value| {
        let models = &governance::key_entry(report, "team-a")["spent_usd_by_model"];
        (models["backup"].as_f64(), models["gpt"].as_f64())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let on_a = by_model(&governance::admin_keys(&a).await);
        let on_b = by_model(&governance::admin_keys(&b).await);
        let whole = |(backup, gpt): (Option<f64>, Option<f64>)| {
            backup == Some(60.0) && gpt.is_some_and(|gpt| (gpt - 0.00006).abs() < 1e-9)
        };
        if whole(on_a) && whole(on_b) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replicas do not agree on the spend by model: {on_a:?} and {on_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = governance::admin_keys(&a).await;
    let team_b = governance::key_entry(&report, "team-b");
    assert_eq!(team_b["spent_usd_by_model"], json!({}));
}
