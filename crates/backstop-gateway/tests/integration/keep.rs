//! The cached tier, the guard on irreversible tools and idempotency keys: the gateway
//! in-process in front of one mock that speaks both protocols, on the memory, SQLite and
//! Redis stores.

use crate::common::*;
use backstop_gateway::pipeline::Gateway;
use backstop_mock::redis_server::RedisServer;
use backstop_mock::MockServer;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// One mock for every target: `gpt` (OpenAI protocol) falls back to `backup`; `claude` is
/// the Anthropic protocol. `model` is appended to `[models.gpt]`, `extra` to the file.
fn config(mock: &MockServer, state: &str, model: &str, extra: &str) -> String {
    format!(
        r#"
state = "{state}"
[providers.up]
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-up"
[models.gpt]
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
fallbacks = ["backup"]
{model}
[models.backup]
targets = [{{ provider = "up", model = "gpt-4o-backup" }}]
[retry]
base_delay = "10ms"
max_delay = "50ms"
[timeouts]
{SHORT_TIMEOUTS}
{extra}
"#,
        url = mock.url()
    )
}

struct Kept {
    mock: MockServer,
    gateway: Arc<Gateway>,
    gw: TestGateway,
}

async fn kept(state: &str, model: &str, extra: &str) -> Kept {
    let mock = mock().await;
    let text = config(&mock, state, model, extra);
    kept_with(mock, &text).await
}

async fn kept_with(mock: MockServer, text: &str) -> Kept {
    let (gateway, gw) = gateway_with_state(text).await;
    Kept { mock, gateway, gw }
}

impl Kept {
    async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = reqwest::Client::new().post(self.gw.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request")
    }

    /// Waits until `model`'s cache holds `n` answers of this replica.
    async fn cached(&self, model: &str, n: usize) {
        let index = || self.gateway.keep().index().held(model).0;
        assert!(
            eventually(Duration::from_secs(5), || index() == n).await,
            "{} answers cached, not {n}",
            index()
        );
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.gw.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn down(&self) {
        fault(&self.mock, json!({"kind": "status", "status": 503})).await;
    }
}

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "gpt", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": text}]})
}

fn ask_anthropic(text: &str, stream: bool) -> Value {
    json!({"model": "gpt", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": text}]})
}

fn with_tool(text: &str, tool: &str, stream: bool) -> Value {
    let mut body = ask(text, stream);
    body["tools"] = json!([{"type": "function", "function": {"name": tool,
        "parameters": {"type": "object", "properties": {}}}}]);
    body
}

async fn content(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const ON_FAILURE: &str = "cache = { ttl = \"1h\", serve = \"on_failure\" }\nstatic_response = \"Unavailable, try later.\"";

#[tokio::test(start_paused = true)]
async fn every_provider_down_gives_the_cached_answer_then_the_static_one() {
    let k = kept("memory", ON_FAILURE, "").await;
    let fresh = k
        .post("/v1/chat/completions", &ask("Say hello", false), &[])
        .await;
    assert_eq!(fresh.headers()["x-backstop-tier"], "full");
    let answer = content(fresh).await;
    assert!(!answer.is_empty());
    k.cached("gpt", 1).await;

    k.down().await;
    let cached = k
        .post("/v1/chat/completions", &ask("Say hello", false), &[])
        .await;
    assert_eq!(cached.status(), 200);
    assert_eq!(cached.headers()["x-backstop-tier"], "cached");
    let age: u64 = cached.headers()["x-backstop-cache-age"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(age < 60, "{age}");
    assert_eq!(content(cached).await, answer);

    let uncached = k
        .post("/v1/chat/completions", &ask("Something else", false), &[])
        .await;
    assert_eq!(uncached.headers()["x-backstop-tier"], "static");
    assert_eq!(content(uncached).await, "Unavailable, try later.");

    let skipped = k
        .post(
            "/v1/chat/completions",
            &ask("Say hello", false),
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(skipped.headers()["x-backstop-tier"], "static");

    let metrics = k.metrics().await;
    for line in [
        r#"backstop_requests_total{model="gpt",tier="cached",status="200"} 1"#,
        r#"backstop_requests_total{model="gpt",tier="static",status="200"} 2"#,
        r#"backstop_cache_hits_total{model="gpt",serve="on_failure"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_stream_is_served_from_an_answer_first_given_to_openai() {
    let k = kept("memory", ON_FAILURE, "").await;
    let answer = content(
        k.post("/v1/chat/completions", &ask("Say hello", false), &[])
            .await,
    )
    .await;
    k.cached("gpt", 1).await;
    k.down().await;
    let response = k
        .post("/v1/messages", &ask_anthropic("Say hello", true), &[])
        .await;
    assert_eq!(response.headers()["x-backstop-tier"], "cached");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    let first_words: String = answer
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains(&first_words), "{text}");

    let whole = k
        .post("/v1/messages", &ask_anthropic("Say hello", false), &[])
        .await;
    let body: Value = whole.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], answer.as_str());
}

#[tokio::test(start_paused = true)]
async fn an_always_cache_saves_the_upstream_call_and_streams_a_stored_stream() {
    let k = kept("memory", "cache = { serve = \"always\" }", "").await;
    let streamed = k
        .post("/v1/chat/completions", &ask("Say hello", true), &[])
        .await;
    assert_eq!(streamed.headers()["x-backstop-tier"], "full");
    let first = streamed.text().await.unwrap();
    assert!(first.contains("[DONE]"));
    k.cached("gpt", 1).await;

    let whole = k
        .post("/v1/chat/completions", &ask("Say hello", false), &[])
        .await;
    assert_eq!(whole.headers()["x-backstop-tier"], "cached");
    let text = content(whole).await;
    assert!(
        first.contains(text.split_whitespace().next().unwrap()),
        "{text}"
    );
    let again = k
        .post("/v1/chat/completions", &ask("Say hello", true), &[])
        .await;
    assert_eq!(again.headers()["x-backstop-tier"], "cached");
    assert!(again.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    assert_eq!(k.mock.requests().len(), 1, "answered once upstream");

    let fresh = k
        .post(
            "/v1/chat/completions",
            &ask("Say hello", false),
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(fresh.headers()["x-backstop-tier"], "full");
    assert_eq!(k.mock.requests().len(), 2);
    let metrics = k.metrics().await;
    assert!(
        metrics.contains(r#"backstop_cache_hits_total{model="gpt",serve="always"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_keeps_at_most_max_entries_and_evicts_the_oldest() {
    let k = kept(
        "memory",
        "cache = { serve = \"always\", max_entries = 2 }",
        "",
    )
    .await;
    for (n, question) in ["one", "two", "three"].into_iter().enumerate() {
        k.post("/v1/chat/completions", &ask(question, false), &[])
            .await;
        k.cached("gpt", (n + 1).min(2)).await;
    }
    assert_eq!(k.mock.requests().len(), 3);
    let newest = k
        .post("/v1/chat/completions", &ask("three", false), &[])
        .await;
    assert_eq!(newest.headers()["x-backstop-tier"], "cached");
    let oldest = k
        .post("/v1/chat/completions", &ask("one", false), &[])
        .await;
    assert_eq!(oldest.headers()["x-backstop-tier"], "full", "evicted");
    assert_eq!(k.mock.requests().len(), 4);
}

const GUARD: &str = "[guard]\nirreversible_tools = [\"send_email\", \"delete_*\"]";

#[tokio::test(start_paused = true)]
async fn the_guard_holds_a_cached_answer_that_sends_email_and_lets_a_harmless_one_through() {
    let k = kept("memory", "cache = { serve = \"on_failure\" }", GUARD).await;
    for tool in ["send_email", "get_weather"] {
        let fresh = k
            .post(
                "/v1/chat/completions",
                &with_tool("Do it", tool, false),
                &[],
            )
            .await;
        let body: Value = fresh.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            tool
        );
    }
    k.cached("gpt", 2).await;
    k.down().await;

    let held = k
        .post(
            "/v1/chat/completions",
            &with_tool("Do it", "send_email", false),
            &[],
        )
        .await;
    assert_eq!(held.status(), 503);
    let body: Value = held.json().await.unwrap();
    assert_eq!(body["error"]["type"], "irreversible_action_held");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("send_email") && message.contains("cached"),
        "{message}"
    );

    let harmless = k
        .post(
            "/v1/chat/completions",
            &with_tool("Do it", "get_weather", true),
            &[],
        )
        .await;
    assert_eq!(harmless.status(), 200);
    assert_eq!(harmless.headers()["x-backstop-tier"], "cached");
    assert!(harmless.text().await.unwrap().contains("get_weather"));

    let metrics = k.metrics().await;
    assert!(
        metrics.contains(r#"backstop_guard_held_total{model="gpt",tool="send_email"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_guarded_reduced_tier_holds_a_fallback_answer_whole_or_streamed() {
    let model = "guard_tiers = [\"reduced\", \"cached\", \"static\"]";
    let k = kept("memory", model, GUARD).await;
    fault(
        &k.mock,
        json!({"kind": "status", "status": 503, "model": "gpt-4o-mini"}),
    )
    .await;
    for stream in [false, true] {
        let held = k
            .post(
                "/v1/chat/completions",
                &with_tool("Do it", "send_email", stream),
                &[],
            )
            .await;
        assert_eq!(held.status(), 503, "stream: {stream}");
        let body: Value = held.json().await.unwrap();
        assert_eq!(body["error"]["type"], "irreversible_action_held");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reduced"));
    }
    let harmless = k
        .post(
            "/v1/chat/completions",
            &with_tool("Do it", "get_weather", true),
            &[],
        )
        .await;
    assert_eq!(harmless.headers()["x-backstop-tier"], "reduced");
    assert!(harmless.text().await.unwrap().contains("get_weather"));
}

#[tokio::test(start_paused = true)]
async fn a_repeated_idempotency_key_replays_without_an_upstream_call() {
    let k = kept("memory", "", "").await;
    let key = [("idempotency-key", "step-7")];
    let first = k
        .post("/v1/chat/completions", &ask("Book it", false), &key)
        .await;
    assert_eq!(first.status(), 200);
    assert!(first
        .headers()
        .get("x-backstop-idempotent-replay")
        .is_none());
    let answer = content(first).await;

    let again = k
        .post("/v1/chat/completions", &ask("Book it", false), &key)
        .await;
    assert_eq!(again.headers()["x-backstop-idempotent-replay"], "true");
    assert_eq!(content(again).await, answer);
    let streamed = k
        .post("/v1/chat/completions", &ask("Book it", true), &key)
        .await;
    assert_eq!(streamed.headers()["x-backstop-idempotent-replay"], "true");
    assert!(streamed.text().await.unwrap().contains("[DONE]"));
    assert_eq!(k.mock.requests().len(), 1);

    let other = k
        .post("/v1/chat/completions", &ask("Cancel it", false), &key)
        .await;
    assert_eq!(other.status(), 422);
    let other_client = k
        .post(
            "/v1/chat/completions",
            &ask("Cancel it", false),
            &[key[0], ("authorization", "Bearer someone-else")],
        )
        .await;
    assert_eq!(other_client.status(), 200, "keys are per client");

    let responses = json!({"model": "gpt", "input": "Plan it"});
    let key = [("idempotency-key", "responses-1")];
    let first: Value = k
        .post("/v1/responses", &responses, &key)
        .await
        .json()
        .await
        .unwrap();
    let again = k.post("/v1/responses", &responses, &key).await;
    assert_eq!(again.headers()["x-backstop-idempotent-replay"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["output"][0]["content"], first["output"][0]["content"]);
    assert_eq!(k.mock.requests().len(), 3, "the Responses API replays too");

    for bad in [String::new(), "k".repeat(256)] {
        let response = k
            .post(
                "/v1/chat/completions",
                &ask("Book it", false),
                &[("idempotency-key", &bad)],
            )
            .await;
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains("Idempotency-Key"));
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_duplicates_make_one_upstream_call_and_a_failed_first_is_retried() {
    let k = kept("memory", "", "").await;
    fault(
        &k.mock,
        json!({"kind": "delay_headers", "delay": "500ms", "count": 1}),
    )
    .await;
    let key = [("idempotency-key", "booking-42")];
    let body = ask_anthropic("Book it", false);
    let answers =
        futures_util::future::join_all((0..5).map(|_| k.post("/v1/messages", &body, &key))).await;
    let mut replays = 0;
    let mut texts = Vec::new();
    for response in answers {
        assert_eq!(response.status(), 200);
        replays += usize::from(
            response
                .headers()
                .contains_key("x-backstop-idempotent-replay"),
        );
        let body: Value = response.json().await.unwrap();
        texts.push(body["content"][0]["text"].as_str().unwrap().to_string());
    }
    assert_eq!(replays, 4);
    assert!(texts.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(k.mock.requests().len(), 1);

    k.down().await;
    let key = [("idempotency-key", "booking-43")];
    let failed = k
        .post("/v1/chat/completions", &ask("Book it", false), &key)
        .await;
    assert_eq!(failed.status(), 503);
    k.mock.clear_faults();
    let retried = k
        .post("/v1/chat/completions", &ask("Book it", false), &key)
        .await;
    assert_eq!(retried.status(), 200);
    assert!(retried
        .headers()
        .get("x-backstop-idempotent-replay")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_and_a_cached_answer_survive_a_restart_on_sqlite() {
    let directory = std::env::temp_dir().join(format!("backstop-keep-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let state = format!("sqlite:{}", directory.join("state.db").display());
    let mock = mock().await;
    let text = config(&mock, &state, ON_FAILURE, "");
    let key = [("idempotency-key", "resume-1")];
    let (answer, mock) = {
        let k = kept_with(mock, &text).await;
        let answer = content(
            k.post("/v1/chat/completions", &ask("Book it", false), &key)
                .await,
        )
        .await;
        k.cached("gpt", 1).await;
        let Kept { mock, mut gw, .. } = k;
        gw.signal_shutdown();
        let _ = gw.task.await;
        (answer, mock)
    };
    let k = kept_with(mock, &text).await;
    let replay = k
        .post("/v1/chat/completions", &ask("Book it", false), &key)
        .await;
    assert_eq!(replay.headers()["x-backstop-idempotent-replay"], "true");
    assert_eq!(content(replay).await, answer);
    assert_eq!(k.mock.requests().len(), 1, "replayed from the file");
    k.down().await;
    let cached = k
        .post("/v1/chat/completions", &ask("Book it", true), &[])
        .await;
    assert_eq!(cached.headers()["x-backstop-tier"], "cached");
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_share_cached_answers_and_replays() {
    let redis = RedisServer::start().unwrap();
    let mock = mock().await;
    let text = config(&mock, &redis.url(), ON_FAILURE, "");
    let a = kept_with(mock, &text).await;
    let (_two, two_gw) = gateway_with_state(&text).await;
    let key = [("idempotency-key", "shared-1")];
    let answer = content(
        a.post("/v1/chat/completions", &ask("Book it", false), &key)
            .await,
    )
    .await;
    a.cached("gpt", 1).await;

    let b = |path: &str| two_gw.url(path);
    let replay = reqwest::Client::new()
        .post(b("/v1/chat/completions"))
        .header(key[0].0, key[0].1)
        .json(&ask("Book it", false))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["x-backstop-idempotent-replay"], "true");
    assert_eq!(content(replay).await, answer);
    assert_eq!(a.mock.requests().len(), 1, "replayed by the other replica");

    a.down().await;
    let cached = reqwest::Client::new()
        .post(b("/v1/chat/completions"))
        .json(&ask("Book it", false))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.headers()["x-backstop-tier"], "cached");
    assert_eq!(content(cached).await, answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_on_another_replica_waits_and_a_dead_redis_serves_without_the_guarantee() {
    let mut redis = RedisServer::start().unwrap();
    let mock = mock().await;
    let text = config(&mock, &redis.url(), "", "");
    let a = kept_with(mock, &text).await;
    let (_two, two_gw) = gateway_with_state(&text).await;
    fault(
        &a.mock,
        json!({"kind": "delay_headers", "delay": "500ms", "count": 1}),
    )
    .await;
    let key = [("idempotency-key", "across-1")];
    let body = ask("Book it", false);
    let on_b = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        reqwest::Client::new()
            .post(two_gw.url("/v1/chat/completions"))
            .header(key[0].0, key[0].1)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let (first, second) =
        futures_util::future::join(a.post("/v1/chat/completions", &body, &key), on_b).await;
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    assert!(first
        .headers()
        .get("x-backstop-idempotent-replay")
        .is_none());
    assert_eq!(second.headers()["x-backstop-idempotent-replay"], "true");
    assert_eq!(content(first).await, content(second).await);
    assert_eq!(a.mock.requests().len(), 1, "one upstream call for both");

    redis.kill();
    let served = a
        .post(
            "/v1/chat/completions",
            &body,
            &[("idempotency-key", "across-2")],
        )
        .await;
    assert_eq!(served.status(), 200);
    assert!(a
        .metrics()
        .await
        .contains("backstop_idempotency_total{outcome=\"unavailable\"} 1"));
}
