//! The passthrough path and SSE framing on the real-shaped fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use backstop_protocol::{read_envelope, rewrite_model, SseDecoder};
use serde_json::Value;

const REQUESTS: [&str; 2] = [
    include_str!("fixtures/openai_request.json"),
    include_str!("fixtures/anthropic_request.json"),
];

const STREAMS: [&str; 3] = [
    include_str!("fixtures/openai_stream.sse"),
    include_str!("fixtures/anthropic_stream.sse"),
    include_str!("fixtures/gemini_stream.sse"),
];

#[test]
fn rewrite_model_on_fixtures_changes_only_the_model() {
    for body in REQUESTS {
        let env = read_envelope(body.as_bytes()).unwrap();
        assert_eq!(env.model, "smart");
        let out = rewrite_model(body.as_bytes(), "provider/model-\u{e9}\"x").unwrap();
        let out = std::str::from_utf8(&out).unwrap();
        // Byte-for-byte: the same text with only the value swapped.
        let at = body.find("\"model\": \"smart\"").unwrap();
        let expected = format!(
            "{}\"model\": {}{}",
            &body[..at],
            serde_json::to_string("provider/model-\u{e9}\"x").unwrap(),
            &body[at + "\"model\": \"smart\"".len()..]
        );
        assert_eq!(out, expected);
        let mut a: Value = serde_json::from_str(body).unwrap();
        a["model"] = "provider/model-\u{e9}\"x".into();
        assert_eq!(serde_json::from_str::<Value>(out).unwrap(), a);
        assert_eq!(
            read_envelope(out.as_bytes()).unwrap().model,
            "provider/model-\u{e9}\"x"
        );
    }
    let env = read_envelope(REQUESTS[0].as_bytes()).unwrap();
    assert!(env.stream && env.include_usage);
    assert_eq!(env.max_tokens, Some(512));
    assert_eq!(
        read_envelope(REQUESTS[1].as_bytes()).unwrap().max_tokens,
        Some(1024)
    );
}

#[test]
fn sse_fixture_split_anywhere_gives_same_events() {
    for stream in STREAMS {
        let bytes = stream.as_bytes();
        let whole = SseDecoder::new().push(bytes);
        assert!(whole.len() >= 3);
        // CRLF line endings decode to the same events.
        let crlf = stream.replace('\n', "\r\n");
        assert_eq!(SseDecoder::new().push(crlf.as_bytes()), whole);
        for cut in (0..bytes.len()).step_by(7) {
            let mut d = SseDecoder::new();
            let mut got = d.push(&bytes[..cut]);
            got.extend(d.push(&bytes[cut..]));
            got.extend(d.finish());
            assert_eq!(got, whole, "cut at {cut}");
        }
    }
}
