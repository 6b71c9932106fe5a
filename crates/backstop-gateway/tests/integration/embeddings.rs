//! `POST /v1/embeddings` end to end: OpenAI-compatible and Gemini targets, float and base64
//! vectors, failover to another channel and to a fallback of the same embedding space, and no
//! fallback across spaces.

use crate::common::*;
use base64::Engine;
use serde_json::{json, Value};

const MODELS: &str = r#"
[providers.ge]
kind = "gemini"
base_url = "GEMINI_URL"
api_key = "k-gemini"
[models.embed]
targets = [{ provider = "primary", model = "small" }, { provider = "secondary", model = "small" }]
embedding_space = "small"
fallbacks = ["twin"]
[models.twin]
targets = [{ provider = "secondary", model = "small-twin" }]
embedding_space = "small"
[models.gecko]
targets = [{ provider = "ge", model = "text-embedding-004" }]
embedding_space = "gecko"
[models.lonely]
targets = [{ provider = "primary", model = "lonely" }]
fallbacks = ["backup"]
"#;

async fn scene() -> Setup {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = MODELS.replace("GEMINI_URL", &secondary.url());
    let gw = gateway(&two_upstreams(&primary, &secondary, &extra)).await;
    Setup {
        primary,
        secondary,
        gw,
    }
}

fn vectors(answer: &Value) -> Vec<Vec<f64>> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["index"], i);
            item["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

async fn embed(s: &Setup, body: Value) -> reqwest::Response {
    post_json(&s.gw, "/v1/embeddings", &body).await
}

#[tokio::test]
async fn openai_and_gemini_targets_give_the_same_vectors_in_order() {
    let s = scene().await;
    let texts = json!(["alpha", "beta", "gamma"]);
    let openai = embed(
        &s,
        json!({"model": "embed", "input": texts, "dimensions": 5}),
    )
    .await;
    assert_eq!(openai.status(), 200);
    assert_eq!(openai.headers()["x-backstop-model"], "embed");
    let openai: Value = openai.json().await.unwrap();
    assert_eq!(openai["object"], "list");
    assert!(openai["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let gemini = embed(
        &s,
        json!({"model": "gecko", "input": texts, "dimensions": 5}),
    )
    .await;
    assert_eq!(gemini.status(), 200);
    assert_eq!(
        gemini.headers()["x-backstop-target"],
        "ge/text-embedding-004"
    );
    let gemini: Value = gemini.json().await.unwrap();
    let (a, b) = (vectors(&openai), vectors(&gemini));
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].len(), 5);
    assert_ne!(a[0], a[1]);
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() < 1e-6, "{x:?} vs {y:?}");
        }
    }
    let sent = s
        .secondary
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":batchEmbedContents"))
        .unwrap();
    assert_eq!(
        sent.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(
        sent.body["requests"][2]["content"]["parts"][0]["text"],
        "gamma"
    );
}

#[tokio::test]
async fn a_batch_over_geminis_limit_is_split_and_joined_in_order() {
    let s = scene().await;
    let texts: Vec<String> = (0..250).map(|i| format!("text {i}")).collect();
    let gemini: Value = embed(&s, json!({"model": "gecko", "input": texts}))
        .await
        .json()
        .await
        .unwrap();
    let calls: Vec<usize> = s
        .secondary
        .requests()
        .iter()
        .map(|r| r.body["requests"].as_array().unwrap().len())
        .collect();
    assert_eq!(calls, [100, 100, 50]);
    let openai: Value = embed(&s, json!({"model": "embed", "input": texts}))
        .await
        .json()
        .await
        .unwrap();
    let (a, b) = (vectors(&gemini), vectors(&openai));
    assert_eq!(a.len(), 250);
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() < 1e-6);
        }
    }
}

#[tokio::test]
async fn base64_vectors_decode_to_the_float_ones() {
    let s = scene().await;
    for model in ["embed", "gecko"] {
        let floats: Value = embed(&s, json!({"model": model, "input": "x"}))
            .await
            .json()
            .await
            .unwrap();
        let packed: Value = embed(
            &s,
            json!({"model": model, "input": "x", "encoding_format": "base64"}),
        )
        .await
        .json()
        .await
        .unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(packed["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let unpacked: Vec<f64> = bytes
            .chunks(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        let expected = &vectors(&floats)[0];
        assert_eq!(unpacked.len(), expected.len(), "{model}");
        for (u, v) in unpacked.iter().zip(expected) {
            assert!((u - v).abs() < 1e-6, "{model}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn failures_move_to_the_other_channel_then_to_a_fallback_of_the_same_space() {
    let s = scene().await;
    fault(
        &s.primary,
        json!({"kind": "status", "status": 500, "model": "small"}),
    )
    .await;
    // The model's two channels share the traffic at random: go on until the failing one was
    // tried (2^-32 odds of missing it).
    for _ in 0..32 {
        let response = embed(&s, json!({"model": "embed", "input": "x"})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-backstop-target"], "secondary/small");
        if !s.primary.requests().is_empty() {
            break;
        }
    }
    assert!(
        !s.primary.requests().is_empty(),
        "the failing channel was tried"
    );
    fault(
        &s.secondary,
        json!({"kind": "overloaded", "model": "small"}),
    )
    .await;
    let response = embed(&s, json!({"model": "embed", "input": "x"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "twin");
    assert_eq!(response.headers()["x-backstop-fallback"], "true");
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("backstop_fallbacks_total{from=\"embed\",to=\"twin\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_fallback_crosses_into_another_space() {
    let s = scene().await;
    fault(&s.primary, json!({"kind": "status", "status": 503})).await;
    let response = embed(&s, json!({"model": "lonely", "input": "x"})).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("primary/lonely"),
        "{error}"
    );
    assert!(
        s.secondary.requests().is_empty(),
        "the chat fallback was never asked"
    );
}

#[tokio::test]
async fn bad_requests_and_models_without_embeddings_are_400s() {
    let s = scene().await;
    for (body, param) in [
        (json!({"model": "embed"}), "input"),
        (json!({"model": "embed", "input": []}), "input"),
        (json!({"model": "embed", "input": ["a", 2]}), "input[1]"),
        (
            json!({"model": "embed", "input": "a", "encoding_format": "hex"}),
            "encoding_format",
        ),
    ] {
        let response = embed(&s, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
    }
    let claude = embed(&s, json!({"model": "claude", "input": "x"})).await;
    assert_eq!(claude.status(), 400);
    let error: Value = claude.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no embeddings API"),
        "{error}"
    );
    let tokens = embed(&s, json!({"model": "gecko", "input": [1, 2, 3]})).await;
    assert_eq!(tokens.status(), 400);
    assert!(s.primary.requests().is_empty() && s.secondary.requests().is_empty());
}
