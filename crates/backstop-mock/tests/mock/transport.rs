//! Faults below the HTTP status: resets, hangs, delays, cut, stalled and corrupted streams.
//! Delays run on paused tokio time, so they take no real time.

use std::time::Duration;

use backstop_mock::{Fault, FaultKind};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;

const RAW_REQUEST: &str =
    "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n\
content-length: 57\r\n\r\n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

fn streaming_chat() -> Value {
    streamed(chat("gpt-4o"))
}

/// Reads a response body chunk by chunk until it ends or fails; returns the bytes and whether
/// it ended cleanly. Also returns the tokio time at which each chunk arrived.
async fn drain(mut resp: reqwest::Response) -> (String, bool, Vec<(Duration, String)>) {
    let start = Instant::now();
    let mut all = String::new();
    let mut timed = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                timed.push((start.elapsed(), text.clone()));
                all.push_str(&text);
            }
            Ok(None) => return (all, true, timed),
            Err(_) => return (all, false, timed),
        }
    }
}

#[tokio::test]
async fn reset_sends_a_tcp_rst_before_any_byte() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::Reset));
    let mut stream = tokio::net::TcpStream::connect(h.mock.addr()).await.unwrap();
    assert_eq!(
        RAW_REQUEST.len() - RAW_REQUEST.find("\r\n\r\n").unwrap() - 4,
        57
    );
    stream.write_all(RAW_REQUEST.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let err = stream
        .read(&mut buf)
        .await
        .expect_err("the read fails with a reset, not EOF or data");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let err = h
        .post("/v1/chat/completions")
        .json(&chat("m"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err}");
    let log = h.mock.requests();
    assert_eq!(log[0].outcome, "reset");
    assert_eq!(log[0].fault.as_deref(), Some("reset"));
    assert_eq!(log[0].status, None);
}

#[tokio::test]
async fn hang_accepts_and_never_answers_until_shutdown() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::Hang));
    let mut stream = tokio::net::TcpStream::connect(h.mock.addr()).await.unwrap();
    stream.write_all(RAW_REQUEST.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let silent = tokio::time::timeout(Duration::from_millis(30), stream.read(&mut buf)).await;
    assert!(silent.is_err(), "nothing was sent");
    assert_eq!(h.mock.requests()[0].outcome, "hang");
    tokio::time::timeout(Duration::from_secs(5), h.mock.shutdown())
        .await
        .expect("shutdown drops hung connections");
    let after = stream.read(&mut buf).await;
    assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
}

#[tokio::test(start_paused = true)]
async fn delay_headers_delays_the_response() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::DelayHeaders {
        delay: Duration::from_secs(7),
    }));
    let start = Instant::now();
    let resp = h.openai(chat("m")).await;
    assert!(start.elapsed() >= Duration::from_secs(7));
    assert_eq!(resp.status(), 200);
    assert_eq!(h.mock.requests()[0].fault.as_deref(), Some("delay_headers"));
}

#[tokio::test(start_paused = true)]
async fn slow_first_token_waits_after_the_headers() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::SlowFirstToken {
        delay: Duration::from_secs(5),
    }));
    let start = Instant::now();
    let resp = h.openai(streaming_chat()).await;
    let (text, clean, _) = drain(resp).await;
    assert!(clean);
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Non-streaming: the body arrives late but whole.
    let start = Instant::now();
    let body: Value = h.openai(chat("m")).await.json().await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert_eq!(body["usage"]["completion_tokens"], 60);
}

#[tokio::test(start_paused = true)]
async fn slow_stream_delays_every_event() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::SlowStream {
        delay: Duration::from_millis(50),
    }));
    let start = Instant::now();
    let (text, clean, timed) = drain(h.openai(streaming_chat()).await).await;
    assert!(clean && text.ends_with("data: [DONE]\n\n"));
    assert!(
        start.elapsed() >= Duration::from_millis(50 * 62),
        "{:?}",
        start.elapsed()
    );
    assert!(timed.len() > 10, "events arrive spread out");
}

#[tokio::test]
async fn cut_after_drops_the_stream_without_terminator() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::new(FaultKind::CutAfter { events: 5 }).count(2));
    let (text, clean, _) = drain(h.openai(streaming_chat()).await).await;
    assert!(!clean, "the client sees a broken body");
    let data = sse_data(&text);
    assert_eq!(data.len(), 5);
    assert!(!text.contains("[DONE]"));
    let (text, clean, _) = drain(h.anthropic(streamed(messages("claude"))).await).await;
    assert!(!clean);
    assert_eq!(sse_events(&text).len(), 5);
    assert!(!text.contains("message_stop"));
    let log = h.mock.requests();
    assert_eq!(log[0].outcome, "cut after 5");
    assert_eq!(log[1].outcome, "cut after 5");
    // Non-streaming: half a body, then the connection drops.
    h.mock
        .add_fault(Fault::new(FaultKind::CutAfter { events: 0 }).count(1));
    let resp = h.openai(chat("m")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn end_after_closes_the_stream_cleanly_without_finish_or_terminator() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::new(FaultKind::EndAfter { events: 5 }).count(2));
    let (text, clean, _) = drain(h.openai(streaming_chat()).await).await;
    assert!(clean, "the body ends cleanly");
    assert_eq!(sse_data(&text).len(), 5);
    assert!(!text.contains("[DONE]") && !text.contains("\"finish_reason\":\"stop\""));
    let (text, clean, _) = drain(h.anthropic(streamed(messages("claude"))).await).await;
    assert!(clean);
    assert_eq!(sse_events(&text).len(), 5);
    assert!(!text.contains("message_stop"));
    assert_eq!(h.mock.requests()[0].outcome, "ended after 5");
    h.mock
        .add_fault(Fault::new(FaultKind::EndAfter { events: 0 }).count(1));
    let resp = h.openai(chat("m")).await;
    let body = resp.bytes().await.unwrap();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body).is_err(),
        "half a body"
    );
}

#[tokio::test(start_paused = true)]
async fn stall_goes_silent_after_n_events_then_resumes() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::Stall {
        after: 2,
        duration: Duration::from_secs(30),
        every: None,
    }));
    let (text, clean, timed) = drain(h.openai(streaming_chat()).await).await;
    assert!(clean && text.ends_with("data: [DONE]\n\n"));
    let before: usize = timed
        .iter()
        .filter(|(t, _)| *t < Duration::from_secs(30))
        .map(|(_, s)| s.matches("data: ").count())
        .sum();
    assert_eq!(before, 2);
    assert!(timed.last().unwrap().0 >= Duration::from_secs(30));
}

#[tokio::test]
async fn malformed_event_is_invalid_json_and_the_stream_goes_on() {
    let h = Harness::start().await;
    h.mock
        .add_fault(Fault::new(FaultKind::MalformedEvent { at: 3 }));
    let (text, clean, _) = drain(h.openai(streaming_chat()).await).await;
    assert!(clean);
    let data = sse_data(&text);
    for (i, d) in data.iter().enumerate().filter(|(_, d)| *d != "[DONE]") {
        assert_eq!(
            serde_json::from_str::<Value>(d).is_ok(),
            i != 3,
            "event {i}: {d}"
        );
    }
    assert_eq!(h.mock.requests()[0].outcome, "malformed event at 3");
    let resp = h.openai(chat("m")).await;
    assert!(
        resp.json::<Value>().await.is_err(),
        "a non-streaming body is truncated"
    );
}

#[tokio::test]
async fn no_done_ends_cleanly_without_terminator() {
    let h = Harness::start().await;
    h.mock.add_fault(Fault::new(FaultKind::NoDone));
    let mut req = streaming_chat();
    req["stream_options"] = json!({ "include_usage": true });
    let (text, clean, _) = drain(h.openai(req).await).await;
    assert!(clean);
    assert!(!text.contains("[DONE]"));
    let last: Value = serde_json::from_str(sse_data(&text).last().unwrap()).unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 60);
    let (text, clean, _) = drain(h.anthropic(streamed(messages("claude"))).await).await;
    assert!(clean);
    assert_eq!(
        sse_events(&text).last().map(String::as_str),
        Some("message_delta")
    );
    assert_eq!(h.mock.requests()[0].outcome, "no terminator");
}
