//! Slow and greedy clients: header, body and keep-alive deadlines, the connection cap.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The value of the `backstop_connections_closed_total` sample for `reason`, read over a raw
/// connection (so that it works on paused time too).
async fn closed(gw: &TestGateway, reason: &str) -> u64 {
    let exposition = raw_get(gw, "/metrics").await;
    let series = format!("backstop_connections_closed_total{{reason=\"{reason}\"}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// `GET path` on a connection of its own, closed after the answer; the whole response.
async fn raw_get(gw: &TestGateway, path: &str) -> String {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Reads until the peer closes (or resets) the connection; what arrived.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_completes_its_headers_is_closed_at_the_header_timeout() {
    let s = setup("[server]\nheader_timeout = \"2s\"\nidle_timeout = \"60s\"").await;
    let mut slow = TcpStream::connect(s.gw.addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Slow: a")
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(until_closed(&mut slow).await, "");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(closed(&s.gw, "header_timeout").await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let s = setup("[server]\nheader_timeout = \"3s\"").await;
    let mut silent = TcpStream::connect(s.gw.addr).await.unwrap();
    let started = Instant::now();
    until_closed(&mut silent).await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(closed(&s.gw, "header_timeout").await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_waits_the_idle_timeout_not_the_header_timeout() {
    let s = setup("[server]\nheader_timeout = \"1s\"\nidle_timeout = \"5s\"").await;
    let mut client = TcpStream::connect(s.gw.addr).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0; 4096];
    let n = client.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    assert_eq!(until_closed(&mut client).await, "");
    let waited = answered.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(closed(&s.gw, "idle_timeout").await, 1);
    assert_eq!(closed(&s.gw, "header_timeout").await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_gets_a_408_at_the_body_timeout_and_no_upstream_call() {
    let s = setup("[server]\nheader_timeout = \"2s\"\nbody_timeout = \"4s\"").await;
    let mut slow = TcpStream::connect(s.gw.addr).await.unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"model\": \"gpt\",",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(s.primary.requests().is_empty());
}

/// Opens `n` connections that send only part of a request's headers.
async fn half_open(gw: &TestGateway, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        streams.push(stream);
    }
    streams
}

#[tokio::test]
async fn at_the_connection_cap_half_open_connections_make_room_for_real_clients() {
    let s = setup("[server]\nmax_connections = 4").await;
    let mut slow = half_open(&s.gw, 4).await;
    // Let the gateway take all four before the real client comes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let answer = s.ask_text("gpt", false).await;
        assert!(answer.contains("chat.completion"), "{answer}");
    }
    let oldest = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut slow[0])).await;
    assert_eq!(
        oldest.ok().as_deref(),
        Some(""),
        "the oldest half-open connection is closed"
    );
    let mut probe = [0u8; 1];
    let newest = slow[3].try_read(&mut probe);
    assert!(
        matches!(&newest, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the newest half-open connection is still open: {newest:?}"
    );
    assert!(closed(&s.gw, "evicted").await >= 1);
    assert_eq!(closed(&s.gw, "refused").await, 0);
}

#[tokio::test]
async fn at_the_cap_with_every_connection_serving_a_new_one_is_refused() {
    let s = setup("[server]\nmax_connections = 2").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "delay_headers", "delay": "1900ms", "count": 2}),
    )
    .await;
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let url = s.gw.url("/v1/chat/completions");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&chat("gpt", false))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // The mock logs a request when it answers it: give both a moment to reach it instead.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = TcpStream::connect(s.gw.addr).await.unwrap();
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    assert_eq!(until_closed(&mut refused).await, "");
    for request in busy {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    assert_eq!(closed(&s.gw, "refused").await, 1);
    assert_eq!(closed(&s.gw, "evicted").await, 0);
}

#[tokio::test]
async fn a_thousand_half_open_connections_leave_real_clients_served() {
    let s = setup("[server]\nmax_connections = 200").await;
    let attackers = tokio::spawn({
        let gw = s.gw.addr;
        async move {
            let mut held = Vec::new();
            for _ in 0..1000 {
                if let Ok(mut stream) = TcpStream::connect(gw).await {
                    let _ = stream.write_all(b"POST /v1/messages HTTP/1.1\r\nX: ").await;
                    held.push(stream);
                }
            }
            held
        }
    });
    let mut answered = 0;
    for _ in 0..50 {
        let answer = s.ask_text("gpt", false).await;
        answered += usize::from(answer.contains("chat.completion"));
    }
    let held = attackers.await.unwrap();
    assert_eq!(answered, 50);
    assert!(held.len() > 200);
    assert!(closed(&s.gw, "evicted").await >= 800);
}

#[tokio::test(start_paused = true)]
async fn a_stream_still_running_at_the_end_of_the_grace_ends_with_an_error_event_naming_it() {
    let mut s = setup("[server]\nshutdown_grace = \"2s\"").await;
    fault(
        &s.primary,
        serde_json::json!({"kind": "slow_stream", "delay": "900ms"}),
    )
    .await;
    let response = s.ask("gpt", true).await;
    assert_eq!(response.status(), 200);
    s.gw.signal_shutdown();
    let stopped = Instant::now();
    let text = response.text().await.expect("the stream ends cleanly");
    assert!(text.contains("shutting down"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut s.gw.task).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))));
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_http2_client_with_prior_knowledge_is_served_over_http2() {
    let s = setup("").await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("chat.completion"));
}

#[tokio::test]
async fn a_request_whose_first_byte_arrives_alone_is_still_read_as_http1() {
    let s = setup("").await;
    let body = chat("gpt", false).to_string();
    let mut stream = TcpStream::connect(s.gw.addr).await.unwrap();
    // "P" could begin the HTTP/2 preface: the version is told from the bytes that follow.
    stream.write_all(b"P").await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rest = format!(
        "OST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(rest.as_bytes()).await.unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("chat.completion"), "{answer}");
}
