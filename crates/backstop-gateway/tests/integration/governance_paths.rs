//! Governance on the paths beside a whole chat answer: streamed answers checked against their pins, the room a
//! provider says it has left shared by replicas on a real redis-server, region rules on embeddings.

use crate::common::{chat, fault, gateway, metrics_text, mock, post_json, TestGateway};
use crate::governance::{pinned, DRIFTED};
use crate::rescue::{full_answer, openai_stream};
use serde_json::json;

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
