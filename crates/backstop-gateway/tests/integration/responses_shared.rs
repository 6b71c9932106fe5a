//! Stored responses in the state layer: two in-process replicas on one real redis-server
//! read, continue and delete each other's stored responses, a gateway restarted on the same
//! SQLite file still has them, and a store that is down is a 503 for a read but never costs
//! an answer already produced.

use crate::common::*;
use crate::responses::{events, output_text};
use backstop_gateway::pipeline::Gateway;
use backstop_mock::redis_server::RedisServer;
use backstop_mock::{MockServer, DEFAULT_ANSWER};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use std::sync::Arc;

const KEYS: &str = "[auth]\nclient_keys = [\"key-one\", \"key-two\"]\n";

/// The configuration of one replica on the store `state`, with two client keys.
fn config(primary: &MockServer, secondary: &MockServer, state: &str) -> String {
    two_upstreams(primary, secondary, KEYS).replace(
        "state = \"memory\"",
        &format!(
            "state = \"{state}\"\nstate_prefix = \"r{}:\"",
            std::process::id()
        ),
    )
}

async fn create(gw: &TestGateway, key: &str, body: Value) -> Response {
    Client::new()
        .post(gw.url("/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn read(gw: &TestGateway, key: &str, id: &str) -> Response {
    Client::new()
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn delete(gw: &TestGateway, key: &str, id: &str) -> Response {
    Client::new()
        .delete(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// The messages of the last request the mock had for `gpt`.
fn last_messages(mock: &MockServer) -> Vec<Value> {
    let request = mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.model == "gpt-4o-mini")
        .unwrap();
    request.body["messages"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_read_continue_and_delete_each_others_responses() {
    let redis = RedisServer::start().unwrap();
    let (primary, secondary) = (mock().await, mock().await);
    let text = config(&primary, &secondary, &redis.url());
    let (_a, a) = gateway_with_state(&text).await;
    let (_b, b) = gateway_with_state(&text).await;

    let first = create(
        &a,
        "key-one",
        json!({"model": "gpt", "input": "First question"}),
    )
    .await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap();

    let on_b = read(&b, "key-one", id).await;
    assert_eq!(on_b.status(), 200);
    assert_eq!(on_b.json::<Value>().await.unwrap(), first);
    let other = read(&b, "key-two", id).await;
    assert_eq!(other.status(), 404);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    assert_eq!(delete(&b, "key-two", id).await.status(), 404);

    // B continues the conversation A stored, streamed.
    let follow_up = json!({"model": "gpt", "input": "Second question", "previous_response_id": id, "stream": true});
    let streamed = create(&b, "key-one", follow_up.clone()).await;
    assert_eq!(streamed.status(), 200);
    let streamed = events(&streamed.text().await.unwrap());
    let completed = streamed
        .iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    assert_eq!(completed["response"]["previous_response_id"], id);
    assert_eq!(output_text(&completed["response"]), DEFAULT_ANSWER);
    let messages = last_messages(&primary);
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["content"], "First question");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[2]["content"], "Second question");
    let second = completed["response"]["id"].as_str().unwrap();
    let on_a = read(&a, "key-one", second).await;
    assert_eq!(on_a.status(), 200, "A reads what B stored from a stream");
    assert_eq!(on_a.json::<Value>().await.unwrap(), completed["response"]);
    let others_follow_up = create(
        &a,
        "key-two",
        json!({"model": "gpt", "input": "x", "previous_response_id": second}),
    )
    .await;
    assert_eq!(others_follow_up.status(), 400);

    let deleted = delete(&a, "key-one", id).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap()["deleted"], true);
    assert_eq!(
        read(&b, "key-one", id).await.status(),
        404,
        "B sees A's deletion"
    );
    assert_eq!(delete(&b, "key-one", id).await.status(), 404);
    let stale = create(&b, "key-one", follow_up).await;
    assert_eq!(stale.status(), 400);
    assert_eq!(
        read(&b, "key-one", second).await.status(),
        200,
        "only that one went"
    );
}

/// Shuts a gateway down and waits until it has stopped.
async fn stop((_gateway, mut gw): (Arc<Gateway>, TestGateway)) {
    gw.signal_shutdown();
    let _ = gw.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_response_survives_a_restart_on_sqlite() {
    let directory = std::env::temp_dir().join(format!("backstop-responses-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let state = format!("sqlite:{}", directory.join("state.db").display());
    let (primary, secondary) = (mock().await, mock().await);
    let text = config(&primary, &secondary, &state);

    let before = gateway_with_state(&text).await;
    let first: Value = create(
        &before.1,
        "key-one",
        json!({"model": "gpt", "input": "Remember me"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["id"].as_str().unwrap();
    stop(before).await;

    let after = gateway_with_state(&text).await;
    let gw = &after.1;
    let read_again = read(gw, "key-one", id).await;
    assert_eq!(read_again.status(), 200);
    assert_eq!(read_again.json::<Value>().await.unwrap(), first);
    assert_eq!(read(gw, "key-two", id).await.status(), 404);
    let next = create(
        gw,
        "key-one",
        json!({"model": "gpt", "input": "And now?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(next.status(), 200);
    assert_eq!(last_messages(&primary)[0]["content"], "Remember me");
    stop(after).await;
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_is_a_503_for_reads_and_costs_no_answer() {
    let mut redis = RedisServer::start().unwrap();
    let (primary, secondary) = (mock().await, mock().await);
    let (_gateway, gw) = gateway_with_state(&config(&primary, &secondary, &redis.url())).await;
    let stored: Value = create(&gw, "key-one", json!({"model": "gpt", "input": "hi"}))
        .await
        .json()
        .await
        .unwrap();
    let id = stored["id"].as_str().unwrap();
    redis.kill();

    let answered = create(
        &gw,
        "key-one",
        json!({"model": "gpt", "input": "still there?"}),
    )
    .await;
    assert_eq!(answered.status(), 200, "the answer is given, unstored");
    assert_eq!(output_text(&answered.json().await.unwrap()), DEFAULT_ANSWER);
    for response in [
        read(&gw, "key-one", id).await,
        delete(&gw, "key-one", id).await,
        create(
            &gw,
            "key-one",
            json!({"model": "gpt", "input": "x", "previous_response_id": id}),
        )
        .await,
    ] {
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("store of responses"),
            "{body}"
        );
    }
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for op in ["put", "get", "delete"] {
        assert!(
            metrics.contains(&format!(
                "backstop_responses_store_errors_total{{op=\"{op}\"}}"
            )),
            "{metrics}"
        );
    }

    // A fresh server (it keeps nothing on disk): what is stored from now on is readable.
    redis.restart().unwrap();
    let mut readable = false;
    for _ in 0..50 {
        let stored: Value = create(&gw, "key-one", json!({"model": "gpt", "input": "again"}))
            .await
            .json()
            .await
            .unwrap();
        if read(&gw, "key-one", stored["id"].as_str().unwrap())
            .await
            .status()
            == 200
        {
            readable = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(readable, "stored and read again once the store is back");
}
