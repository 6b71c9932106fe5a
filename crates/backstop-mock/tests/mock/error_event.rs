//! `error_event`: the provider's own mid-stream error event after N events, per wire format,
//! and the 500 that stands in for it when the request does not stream.

use backstop_mock::{Fault, FaultKind};
use serde_json::{json, Value};

use super::*;

fn error_event(at: usize) -> Fault {
    Fault::new(FaultKind::ErrorEvent { at })
}

/// Status, content type and whole body text of a response.
async fn read(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, resp.text().await.unwrap())
}

fn openai_error() -> Value {
    json!({ "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error", "param": null, "code": null
    }})
}

fn gemini_error() -> Value {
    json!({ "error": {
        "code": 500,
        "message": "An internal error has occurred. Please retry or report in \
                    https://developers.generativeai.google/guide/troubleshooting",
        "status": "INTERNAL"
    }})
}

#[tokio::test]
async fn openai_gets_an_error_data_line_after_n_events_and_no_done() {
    let h = Harness::start().await;
    h.mock.add_fault(error_event(3));
    let (status, content_type, text) = read(h.openai(streamed(chat("gpt-4o"))).await).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/event-stream; charset=utf-8")
    );
    let data = sse_json(&text);
    assert_eq!(data.len(), 4, "{text}");
    assert!(data[..3]
        .iter()
        .all(|d| d["object"] == "chat.completion.chunk"));
    assert_eq!(data[3], openai_error());
    let error_line = format!("data: {}\n\n", openai_error());
    assert!(text.ends_with(&error_line), "{text}");
    assert!(!text.contains("[DONE]"));
    let log = h.mock.requests();
    assert_eq!(log[0].outcome, "error event after 3");
    assert_eq!(
        (log[0].status, log[0].fault.as_deref()),
        (Some(200), Some("error_event"))
    );
}

#[tokio::test]
async fn anthropic_overload_can_be_the_first_event() {
    let h = Harness::start().await;
    h.mock.add_fault(error_event(0));
    let (status, _, text) = read(h.anthropic(streamed(messages("claude"))).await).await;
    assert_eq!(status, 200);
    let expected = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
    assert_eq!(text, format!("event: error\ndata: {expected}\n\n"));

    h.mock.clear_faults();
    h.mock.add_fault(error_event(4));
    let (_, _, text) = read(h.anthropic(streamed(messages("claude"))).await).await;
    assert_eq!(
        sse_events(&text),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(sse_json(&text).last(), Some(&expected));
}

#[tokio::test]
async fn gemini_sends_its_error_json_as_the_last_response() {
    let h = Harness::start().await;
    h.mock.add_fault(error_event(2));
    let sse = "streamGenerateContent?alt=sse";
    let (_, _, text) = read(h.gemini("gemini-2.0-flash", sse, contents()).await).await;
    let data = sse_json(&text);
    assert_eq!(data.len(), 3);
    assert_eq!(data[2], gemini_error());
    assert!(text.ends_with("\r\n\r\n"));

    let array = "streamGenerateContent";
    let (_, content_type, text) = read(h.gemini("gemini-2.0-flash", array, contents()).await).await;
    assert_eq!(content_type, "application/json");
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(items.len(), 3, "the error closes the array: {text}");
    assert!(items[1]["candidates"].is_array());
    assert_eq!(items[2], gemini_error());

    h.mock.clear_faults();
    h.mock.add_fault(error_event(0));
    let (_, _, text) = read(h.gemini("gemini-2.0-flash", array, contents()).await).await;
    assert_eq!(text, format!("[{}]", gemini_error()));
}

#[tokio::test]
async fn past_the_last_event_the_error_replaces_the_terminator() {
    let h = Harness::start().await;
    h.mock.add_fault(error_event(99));
    let mut req = streamed(chat("gpt-4o"));
    req["max_tokens"] = json!(2);
    let (_, _, text) = read(h.openai(req).await).await;
    let data = sse_json(&text);
    assert_eq!(data.len(), 5, "role, 2 deltas, finish, error: {text}");
    assert_eq!(data[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(data[4], openai_error());
    assert_eq!(h.mock.requests()[0].outcome, "error event after 4");
}

#[tokio::test]
async fn without_a_stream_it_is_the_providers_500() {
    let h = Harness::start().await;
    h.mock.add_fault(error_event(3));
    let (status, body) = status_json(h.openai(chat("gpt-4o")).await).await;
    assert_eq!((status, body), (500, openai_error()));
    let (status, body) = status_json(h.anthropic(messages("claude")).await).await;
    assert_eq!(status, 500);
    assert_eq!(
        body["error"],
        json!({ "type": "api_error", "message": "Internal server error" })
    );
    let resp = h
        .gemini("gemini-2.0-flash", "generateContent", contents())
        .await;
    assert_eq!(status_json(resp).await, (500, gemini_error()));
    let log = h.mock.requests();
    assert!(log
        .iter()
        .all(|e| e.outcome == "status 500" && e.status == Some(500)));
    // A stream fault: the model list is not affected.
    assert_eq!(
        h.client
            .get(h.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
