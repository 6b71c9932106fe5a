//! `backstop serve`'s worker threads: connections spread over single-threaded runtimes,
//! every request answered, and graceful shutdown across all of them.

use crate::common::{chat, fault, gateway_on_threads, mock, two_upstreams};
use futures_util::future::join_all;
use std::time::Duration;

/// A client that opens a new connection for every request, so the acceptor hands each to
/// the next worker.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_serves_plain_and_streamed_answers() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway_on_threads(&two_upstreams(&primary, &secondary, ""), 3).await;
    let client = fresh_connections();
    let asks = (0..24).map(|i| {
        let request = client
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("gpt", i % 2 == 0));
        async move {
            let response = request.send().await.expect("response");
            assert_eq!(response.status(), 200);
            response.text().await.expect("body")
        }
    });
    let bodies = join_all(asks).await;
    for (i, body) in bodies.iter().enumerate() {
        if i % 2 == 0 {
            assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
        } else {
            let answer: serde_json::Value = serde_json::from_str(body).expect("json");
            assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{body}");
        }
    }
    assert_eq!(primary.requests().len(), 24);
    assert!(secondary.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_go_to_the_workers_in_turn_and_each_worker_has_its_own_upstream_pool() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway_on_threads(&two_upstreams(&primary, &secondary, ""), 3).await;
    let client = fresh_connections();
    for _ in 0..6 {
        let response = client
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("gpt", false))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
    // One after another, so one shared pool would have reused a single upstream connection:
    // three workers in turn, each with its own pool, use exactly three, twice each.
    let seen: Vec<u64> = primary.requests().iter().map(|r| r.connection).collect();
    assert_eq!(seen.len(), 6);
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "upstream connections in order: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_streams_on_every_worker_finish_then_refuses_connections() {
    let (primary, secondary) = (mock().await, mock().await);
    let mut gw = gateway_on_threads(&two_upstreams(&primary, &secondary, ""), 2).await;
    fault(
        &primary,
        serde_json::json!({"kind": "slow_stream", "delay": "10ms"}),
    )
    .await;
    let client = fresh_connections();
    let mut streams = Vec::new();
    for _ in 0..4 {
        let response = client
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("gpt", true))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    gw.signal_shutdown();
    for text in join_all(streams.into_iter().map(|r| r.text())).await {
        let text = text.expect("whole stream");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut gw.task).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "{finished:?}");
    assert!(reqwest::get(gw.url("/healthz")).await.is_err());
}
