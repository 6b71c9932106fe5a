//! Upstreams that misbehave mid-stream: endless, too fast, comments only, cut at a deadline,
//! too large to buffer. Each holds the gateway to a bound: `total`, `idle`, `first_byte`,
//! `max_stream_bytes`, `max_rescue_text`, `server.max_buffered_bytes`, a slow client's pace,
//! and the drain deadline of a shutdown. The upstreams the mock cannot play are raw sockets
//! (see [`raw_upstream`]). The clock is the wall clock here (real sockets on both sides), used
//! only as generous upper bounds: a test that fails waits out its timeout instead of hanging.

mod raw_upstream;

use crate::common::*;
use backstop_gateway::config;
use backstop_gateway::pipeline::Gateway;
use backstop_mock::MockServer;
use raw_upstream::{Behaviour, RawUpstream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// Long enough for any bound below to be reached, short enough to fail a test that has none.
const PATIENCE: Duration = Duration::from_secs(30);

/// The raw upstream serves `hostile`; the mock serves `backup` (which accepts a prefill).
fn config_text(raw: &RawUpstream, mock: &MockServer, hostile: &str, rest: &str) -> String {
    format!(
        r#"
state = "memory"
[providers.raw]
kind = "openai"
base_url = "{}"
api_key = "sk-raw"
[providers.mock]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-mock"
[models.backup]
targets = [{{ provider = "mock", model = "backup-model" }}]
prefill = true
[models.hostile]
targets = [{{ provider = "raw", model = "raw-model" }}]
{hostile}
[retry]
base_delay = "10ms"
max_delay = "100ms"
{rest}
"#,
        raw.url(),
        mock.url()
    )
}

/// A hostile upstream behaving as `behaviour`, a mock for the backup model, and a gateway in
/// front of both (see [`config_text`]).
async fn scene(
    behaviour: Behaviour,
    hostile: &str,
    rest: &str,
) -> (RawUpstream, MockServer, TestGateway) {
    let raw = RawUpstream::start(behaviour).await;
    let mock = mock().await;
    let gw = gateway(&config_text(&raw, &mock, hostile, rest)).await;
    (raw, mock, gw)
}

/// What a client read of a stream: how much, and its last bytes.
struct Streamed {
    bytes: u64,
    tail: String,
}

/// Reads a streaming answer to its end (or fails the test after [`PATIENCE`]).
async fn read_to_end(mut response: reqwest::Response) -> Streamed {
    let read = async {
        let mut bytes = 0u64;
        let mut tail: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.expect("body") {
            bytes += chunk.len() as u64;
            tail.extend_from_slice(&chunk);
            if tail.len() > 128 << 10 {
                tail.drain(..tail.len() - (64 << 10));
            }
        }
        Streamed {
            bytes,
            tail: String::from_utf8_lossy(&tail).into_owned(),
        }
    };
    timeout(PATIENCE, read)
        .await
        .expect("the stream must end within its bounds")
}

async fn ask(gw: &TestGateway, model: &str, stream: bool) -> reqwest::Response {
    timeout(
        PATIENCE,
        reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat(model, stream))
            .send(),
    )
    .await
    .expect("the answer must start within its bounds")
    .expect("request")
}

async fn metrics(gw: &TestGateway) -> String {
    reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const RAW_FAILED: &str = r#"target="raw/raw-model",outcome="failure""#;

#[tokio::test]
async fn total_ends_an_endless_fast_stream_and_is_not_the_targets_failure() {
    let (_raw, _mock, gw) = scene(
        Behaviour::EndlessDeltas,
        "max_stream_bytes = \"100GB\"",
        "[timeouts]\nfirst_byte = \"1s\"\nidle = \"1s\"\ntotal = \"2s\"",
    )
    .await;
    let response = ask(&gw, "hostile", true).await;
    assert_eq!(response.status(), 200);
    let streamed = read_to_end(response).await;
    assert!(
        streamed
            .tail
            .contains("the request's total deadline of 2s was reached; the answer is incomplete"),
        "no deadline error event at the end: {}",
        &streamed.tail[streamed.tail.len().saturating_sub(400)..]
    );
    assert!(!streamed.tail.contains("[DONE]"));
    let metrics = metrics(&gw).await;
    assert!(!metrics.contains(RAW_FAILED), "{metrics}");
    assert!(metrics.contains(
        r#"backstop_upstream_attempts_total{target="raw/raw-model",outcome="cut",class="deadline"} 1"#
    ));
}

#[tokio::test]
async fn max_stream_bytes_ends_a_runaway_stream_with_an_error_event() {
    let (_raw, _mock, gw) = scene(
        Behaviour::EndlessDeltas,
        "max_stream_bytes = 1000000",
        "[timeouts]\ntotal = \"60s\"",
    )
    .await;
    let streamed = read_to_end(ask(&gw, "hostile", true).await).await;
    assert!(
        streamed
            .tail
            .contains("the stream passed its limit of 1000000 bytes (max_stream_bytes"),
        "{}",
        &streamed.tail[streamed.tail.len().saturating_sub(400)..]
    );
    assert!(
        streamed.bytes <= 1_000_000 + 1024,
        "relayed {} bytes past the limit",
        streamed.bytes
    );
    assert!(
        metrics(&gw).await.contains(RAW_FAILED),
        "a runaway stream is the target's failure"
    );
}

#[tokio::test]
async fn a_slow_client_slows_the_upstream_read_instead_of_buffering() {
    let (raw, _mock, gw) = scene(
        Behaviour::EndlessDeltas,
        "max_stream_bytes = \"100GB\"",
        "[timeouts]\ntotal = \"60s\"",
    )
    .await;
    let mut response = ask(&gw, "hostile", true).await;
    assert!(response.chunk().await.unwrap().is_some());
    // The client reads no more: the gateway must stop reading the upstream, whose writes
    // then block once the socket buffers on the way are full.
    let blocked = eventually(PATIENCE, || raw.stats.blocked.load(Ordering::SeqCst)).await;
    let written = raw.stats.written.load(Ordering::SeqCst);
    assert!(
        blocked,
        "the upstream was never held back: {written} bytes taken"
    );
    assert!(
        written < 64 << 20,
        "{written} bytes read ahead of a client that reads nothing"
    );
    drop(response);
}

#[tokio::test]
async fn comments_before_the_first_event_fail_over_at_first_byte() {
    let (_raw, _mock, gw) = scene(
        Behaviour::CommentsOnly,
        "fallbacks = [\"backup\"]",
        "[timeouts]\nfirst_byte = \"1s\"\nidle = \"1s\"\ntotal = \"120s\"",
    )
    .await;
    let response = ask(&gw, "hostile", true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-model"], "backup");
    let streamed = read_to_end(response).await;
    assert!(streamed.tail.contains("[DONE]"), "{}", streamed.tail);
    assert!(metrics(&gw)
        .await
        .contains(r#"target="raw/raw-model",outcome="failure",class="unavailable""#));
}

#[tokio::test]
async fn comments_after_the_first_event_do_not_hold_off_idle() {
    let (_raw, _mock, gw) = scene(
        Behaviour::EventThenComments {
            every: Duration::from_millis(100),
        },
        "",
        "[timeouts]\nfirst_byte = \"2s\"\nidle = \"1s\"\ntotal = \"120s\"",
    )
    .await;
    let streamed = read_to_end(ask(&gw, "hostile", true).await).await;
    assert!(streamed.tail.contains("Hello"));
    assert!(
        streamed
            .tail
            .contains("stream stalled: no event for 1s (idle, fixed rule)"),
        "{}",
        streamed.tail
    );
}

#[tokio::test]
async fn a_stream_longer_than_max_rescue_text_is_not_rescued_and_says_so() {
    let raw = RawUpstream::start(Behaviour::DeltasThenCut {
        text: 3000,
        delta: 100,
    })
    .await;
    let mock = mock().await;
    let hostile = "fallbacks = [\"backup\"]";
    let timeouts = "[timeouts]\ntotal = \"60s\"";
    // Within the bound, the broken stream is continued on the backup...
    let gw = gateway(&config_text(&raw, &mock, hostile, timeouts)).await;
    let rescued = read_to_end(ask(&gw, "hostile", true).await).await;
    assert!(rescued.tail.contains("[DONE]"), "{}", rescued.tail);
    assert_eq!(mock.requests().len(), 1, "continued on the backup");
    // ...past it, it is not, and the client is told why.
    let bounded = format!("{hostile}\nmax_rescue_text = 1000");
    let gw = gateway(&config_text(&raw, &mock, &bounded, timeouts)).await;
    let cut = read_to_end(ask(&gw, "hostile", true).await).await;
    assert!(
        cut.tail.contains(
            "the answer was too long to rescue: its text passed max_rescue_text (1000 bytes)"
        ),
        "{}",
        cut.tail
    );
    assert!(!cut.tail.contains("[DONE]"));
    assert_eq!(mock.requests().len(), 1, "no continuation was asked for");
}

#[tokio::test]
async fn max_buffered_bytes_bounds_large_answers_read_at_once() {
    const ANSWER: usize = 4_000_000;
    const AT_ONCE: usize = 5;
    let raw = RawUpstream::start(Behaviour::LargeAnswer {
        bytes: ANSWER,
        together: AT_ONCE,
    })
    .await;
    let mock = mock().await;
    let text = config_text(
        &raw,
        &mock,
        "fallbacks = [\"backup\"]",
        "[timeouts]\ntotal = \"60s\"\n[server]\nmax_buffered_bytes = \"10MB\"",
    );
    let gateway = Arc::new(Gateway::new(config::parse(&text, &|_| None).unwrap()).unwrap());
    let gw = serve_shared(gateway.clone()).await;
    let asks = (0..AT_ONCE).map(|_| async {
        let response = ask(&gw, "hostile", false).await;
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    });
    let answers = futures_util::future::join_all(asks).await;
    let served = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(served, 2, "10 MB hold two answers of 4 MB at once");
    for (status, body) in &answers {
        match status {
            200 => assert!(body.len() >= ANSWER),
            502 => assert!(
                body.contains("the upstream's answer is too large")
                    && body.contains("(server.max_buffered_bytes) are in use"),
                "{body}"
            ),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(
        mock.requests().is_empty(),
        "too large is not a reason to fall back"
    );
    assert_eq!(
        raw.stats.requests.load(Ordering::SeqCst),
        AT_ONCE,
        "no retries"
    );
    assert!(!metrics(&gw)
        .await
        .contains(r#"outcome="failure",class="transient""#));
    let budget = gateway.buffers();
    assert!(
        eventually(PATIENCE, || budget.available() == 10_000_000).await,
        "the buffered bytes come back: {} of 10000000 free",
        budget.available()
    );
}

#[tokio::test]
async fn drain_ends_streams_with_a_shutdown_error_not_counted_against_the_target() {
    let mock = mock().await;
    fault(
        &mock,
        serde_json::json!({"kind": "slow_stream", "delay": "500ms"}),
    )
    .await;
    let text = format!(
        "state = \"memory\"\n[providers.mock]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n[models.slow]\ntargets = [{{ provider = \"mock\", model = \"m\" }}]\n[timeouts]\ntotal = \"120s\"\n",
        mock.url()
    );
    let gateway = Arc::new(Gateway::new(config::parse(&text, &|_| None).unwrap()).unwrap());
    let gw = serve_shared(gateway.clone()).await;
    let mut response = ask(&gw, "slow", true).await;
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some(), "the stream runs");
    gateway.drain(Instant::now() + Duration::from_millis(300));
    let streamed = read_to_end(response).await;
    assert!(
        streamed
            .tail
            .contains("the gateway is shutting down; the answer is incomplete"),
        "{}",
        streamed.tail
    );
    assert!(!streamed.tail.contains("[DONE]"));
    let metrics = metrics(&gw).await;
    assert!(!metrics.contains(r#"outcome="failure""#), "{metrics}");
    assert!(metrics.contains(
        r#"backstop_upstream_attempts_total{target="mock/m",outcome="cut",class="shutdown"} 1"#
    ));
    // A request after the drain deadline is not sent upstream at all.
    let late = ask(&gw, "slow", true).await;
    assert_eq!(late.status(), 503);
    assert!(late
        .text()
        .await
        .unwrap()
        .contains("the gateway is shutting down"));
    assert_eq!(mock.requests().len(), 1);
}
