//! The minimal upstream of the benchmarks, the "direct" row of `bench/gateway.sh`: the cheapest
//! server that speaks enough of the OpenAI chat API for a gateway to proxy it. Every POST gets
//! one fixed chat completion, or, when its body asks `"stream": true`, one fixed stream of 20
//! server-sent events (18 text deltas, the finish chunk, `[DONE]`). Nothing is parsed but that
//! one flag, nothing is logged, and the path is not checked.
//!
//! usage: `bench-upstream [ADDR]` (default `127.0.0.1:0`); prints `listening on http://ADDR`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The non-streaming answer, the shape `backstop mock` gives.
const ANSWER: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"#,
    r#""finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#
);

/// Text deltas in the stream; with the finish chunk and `[DONE]` the stream has 20 events.
const DELTAS: usize = 18;

/// The 20-event stream, built once.
fn stream_body() -> Bytes {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
             \"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut body = String::new();
    for i in 0..DELTAS {
        body.push_str(&chunk(&format!("{{\"content\":\"word{i} \"}}"), "null"));
    }
    body.push_str(&chunk("{}", "\"stop\""));
    body.push_str("data: [DONE]\n\n");
    Bytes::from(body)
}

/// Whether the request body asks for a stream (`"stream":true`, with or without a space).
fn wants_stream(body: &[u8]) -> bool {
    memchr::memmem::find(body, br#""stream":true"#).is_some()
        || memchr::memmem::find(body, br#""stream": true"#).is_some()
}

async fn answer(
    request: Request<Incoming>,
    stream: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (bytes, kind) = if wants_stream(&body) {
        (stream, "text/event-stream")
    } else {
        (Bytes::from_static(ANSWER.as_bytes()), "application/json")
    };
    let mut response = Response::new(Full::new(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let stream = stream_body();
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let stream = stream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, stream.clone()));
            // A client that goes away mid-request is no concern of a benchmark upstream.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
