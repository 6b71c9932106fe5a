//! Integration tests: a real `MockServer` on port 0, driven over HTTP with reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

mod control;
mod error_event;
mod faults;
mod happy;
mod script;
mod tls;
mod transport;

use backstop_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

/// A started mock and a client for it.
pub struct Harness {
    pub mock: MockServer,
    pub client: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(MockConfig::default()).await
    }

    pub async fn with(config: MockConfig) -> Harness {
        let mock = MockServer::start(config).await.expect("mock starts");
        Harness {
            mock,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.mock.url(), path)
    }

    pub async fn openai(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth("sk-test-secret")
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn anthropic(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/messages"))
            .header("x-api-key", "sk-ant-secret")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    /// A bare `POST path` without any provider header.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    /// `GET path`, with optional headers, read as JSON.
    pub async fn get_json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// `DELETE path`, read as JSON.
    pub async fn delete_json(&self, path: &str) -> Value {
        let resp = self.client.delete(self.url(path)).send().await.unwrap();
        resp.json().await.unwrap()
    }

    pub async fn gemini(&self, model: &str, action: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1beta/models/{model}:{action}")))
            .header("x-goog-api-key", "AIza-secret")
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }
}

pub fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "Say something deterministic." }] })
}

pub fn messages(model: &str) -> Value {
    json!({ "model": model, "max_tokens": 1024, "messages": [{ "role": "user", "content": "Say something." }] })
}

pub fn contents() -> Value {
    json!({ "contents": [{ "role": "user", "parts": [{ "text": "Say something." }] }] })
}

/// The same request body with `"stream": true`.
pub fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// Status and JSON body of a response.
pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// The JSON payloads of the `data:` lines of an SSE body (`[DONE]` kept as a string).
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .flat_map(|frame| frame.lines())
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|d| d.trim_end_matches('\r').to_owned())
        .collect()
}

/// Event names of an Anthropic SSE body.
pub fn sse_events(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect()
}

/// The JSON payloads of an SSE body, parsed; a final `[DONE]` is left out (anywhere else it
/// fails to parse).
pub fn sse_json(text: &str) -> Vec<Value> {
    let mut data = sse_data(text);
    if data.last().is_some_and(|d| d == "[DONE]") {
        data.pop();
    }
    data.iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}
