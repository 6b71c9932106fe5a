//! The control API and the request log.

use serde_json::{json, Value};

use super::*;

async fn post_faults(h: &Harness, body: &str) -> (u16, Value) {
    let resp = h
        .post("/_mock/faults")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send();
    status_json(resp.await.unwrap()).await
}

async fn get(h: &Harness, path: &str) -> Value {
    h.get_json(path, &[]).await
}

#[tokio::test]
async fn faults_are_added_listed_and_cleared_over_http() {
    let h = Harness::start().await;
    let (status, body) = post_faults(
        &h,
        r#"{"route":"openai","model":"gpt-*","kind":"status","status":503,"count":2}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], json!([1]));
    let (status, body) =
        post_faults(&h, r#"[{"kind":"cut_after","events":40},{"kind":"slow_stream","delay":"50ms","probability":0.1}]"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], json!([2, 3]));
    assert_eq!(h.openai(chat("gpt-4o")).await.status(), 503);
    let listed = get(&h, "/_mock/faults").await;
    assert_eq!(listed[0]["kind"], "status");
    assert_eq!(listed[0]["model"], "gpt-*");
    assert_eq!(listed[0]["remaining"], 1);
    assert_eq!(listed[0]["applied"], 1);
    assert_eq!(listed[2]["delay"], "50ms");
    let (status, body) = post_faults(&h, r#"{"action":"clear"}"#).await;
    assert_eq!((status, body["cleared"].as_u64()), (200, Some(3)));
    assert_eq!(get(&h, "/_mock/faults").await, json!([]));
    post_faults(&h, r#"{"kind":"hang"}"#).await;
    assert_eq!(h.delete_json("/_mock/faults").await["cleared"], 1);
    assert_eq!(h.openai(chat("gpt-4o")).await.status(), 200);
}

#[tokio::test]
async fn bad_control_input_gets_a_400_that_names_the_problem() {
    let h = Harness::start().await;
    let cases = [
        ("{oops", "not valid JSON"),
        (r#"{"kind":"explode"}"#, "unknown fault kind `explode`"),
        (r#"{"kind":"status"}"#, "needs the key `status`"),
        (
            r#"{"kind":"hang","colour":"red"}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"kind":"slow_stream","delay":"soon"}"#,
            "`delay`: `soon` is not a duration",
        ),
        (
            r#"{"kind":"status","status":503,"window":["0s","99999999999999999999s"]}"#,
            "`window`: `99999999999999999999s` is too long: durations go up to 87600h (10 years)",
        ),
        (
            r#"{"kind":"slow_stream","delay":"99999999999999999999s"}"#,
            "`delay`: `99999999999999999999s` is too long",
        ),
        (r#"{"action":"explode"}"#, "unknown action `explode`"),
        (
            r#"[{"kind":"hang"},{"kind":"status","status":999}]"#,
            "fault #1",
        ),
        ("42", "expected a fault object"),
    ];
    for (input, expected) in cases {
        let (status, body) = post_faults(&h, input).await;
        assert_eq!(status, 400, "{input}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{input}: {message}");
    }
    assert_eq!(
        get(&h, "/_mock/faults").await,
        json!([]),
        "a bad array adds nothing"
    );
}

#[tokio::test]
async fn request_log_records_what_reached_the_provider() {
    let h = Harness::start().await;
    h.mock.add_fault(backstop_mock::Fault::status(503).count(1));
    h.openai(chat("gpt-4o")).await;
    h.openai(streamed(chat("gpt-4o")))
        .await
        .text()
        .await
        .unwrap();
    h.anthropic(messages("claude")).await;
    h.gemini("gemini-2.0-flash", "generateContent", contents())
        .await;
    let log = get(&h, "/_mock/requests").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0]["route"], "openai");
    assert_eq!(log[0]["model"], "gpt-4o");
    assert_eq!(log[0]["fault"], "status");
    assert_eq!(log[0]["outcome"], "status 503");
    assert_eq!(log[0]["status"], 503);
    assert_eq!(log[0]["headers"]["authorization"], "***");
    assert_eq!(log[0]["body"]["messages"][0]["role"], "user");
    assert_eq!(log[1]["stream"], true);
    assert_eq!(log[1]["outcome"], "ok");
    assert!(log[1]["fault"].is_null());
    assert_eq!(log[2]["headers"]["x-api-key"], "***");
    assert_eq!(log[2]["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(log[3]["headers"]["x-goog-api-key"], "***");
    assert_eq!(
        log[3]["path"],
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    let times: Vec<f64> = log.iter().map(|e| e["at_ms"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(log[0]["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let text = serde_json::to_string(&log).unwrap();
    assert!(
        !text.contains("sk-test-secret")
            && !text.contains("sk-ant-secret")
            && !text.contains("AIza-secret")
    );

    assert_eq!(h.delete_json("/_mock/requests").await["cleared"], 4);
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn log_capacity_bounds_the_ring() {
    let h = Harness::with(backstop_mock::MockConfig {
        log_capacity: 3,
        ..Default::default()
    })
    .await;
    for _ in 0..5 {
        h.openai(chat("m")).await;
    }
    let seqs: Vec<u64> = h.mock.requests().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    h.mock.clear_requests();
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn requests_are_numbered_by_the_connection_they_came_on() {
    let h = Harness::start().await;
    h.openai(chat("gpt-4o")).await;
    h.openai(chat("gpt-4o")).await;
    let fresh = reqwest::Client::new();
    fresh
        .post(h.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    let connections: Vec<u64> = h.mock.requests().iter().map(|r| r.connection).collect();
    assert_eq!(
        connections,
        [1, 1, 2],
        "keep-alive reuses the first connection"
    );
    assert_eq!(get(&h, "/_mock/requests").await[2]["connection"], 2);
}
