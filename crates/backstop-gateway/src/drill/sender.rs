//! The drill's client: one small OpenAI chat request per tick, read to the end,
//! reduced to the `x-backstop-*` headers that say who served it. A stream counts as
//! answered only when it ends with `[DONE]`: one cut or ended by an error event is not.

use super::load::Outcome;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use std::future::Future;
use std::time::Duration;

/// Sends the drill's chat request to a gateway.
#[derive(Debug, Clone)]
pub struct ChatSender {
    client: reqwest::Client,
    url: String,
    body: Bytes,
    client_key: Option<String>,
    stream: bool,
}

impl ChatSender {
    /// A sender of chat requests (streaming ones if `stream`) for `model` to `base_url`
    /// (`http://HOST:PORT`), giving up on one request after `timeout`.
    pub fn new(
        base_url: &str,
        model: &str,
        client_key: Option<String>,
        timeout: Duration,
        stream: bool,
    ) -> Result<Self, reqwest::Error> {
        let client = crate::client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()?;
        let body = serde_json::json!({
            "model": model,
            "max_tokens": 16,
            "stream": stream,
            "messages": [{"role": "user", "content": "Backstop drill: say hello"}],
        });
        Ok(Self {
            client,
            url: format!("{}/v1/chat/completions", base_url.trim_end_matches('/')),
            body: Bytes::from(body.to_string()),
            client_key,
            stream,
        })
    }

    /// One request; a transport error becomes an outcome without a status.
    pub fn send(&self) -> impl Future<Output = Outcome> + Send + 'static {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(self.body.clone());
        if let Some(key) = &self.client_key {
            request = request.bearer_auth(key);
        }
        let stream = self.stream;
        async move {
            match request.send().await {
                Ok(response) => {
                    let mut outcome = outcome_of(response.status().as_u16(), response.headers());
                    let whole = match response.bytes().await {
                        Ok(body) => !stream || outcome.status != Some(200) || ends_done(&body),
                        Err(_) => false,
                    };
                    if !whole {
                        outcome.status = None;
                    }
                    outcome
                }
                Err(_) => Outcome::default(),
            }
        }
    }
}

/// An OpenAI event stream that finished: its last event is `[DONE]`.
fn ends_done(body: &[u8]) -> bool {
    body.trim_ascii_end().ends_with(b"data: [DONE]")
}

/// Reads the `x-backstop-*` headers of a model response.
pub fn outcome_of(status: u16, headers: &HeaderMap) -> Outcome {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Outcome {
        status: Some(status),
        target: text("x-backstop-target"),
        model: text("x-backstop-model"),
        attempts: text("x-backstop-attempts")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        fallback: text("x-backstop-fallback").as_deref() == Some("true"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_headers_say_who_served() {
        let mut headers = HeaderMap::new();
        headers.insert("x-backstop-target", "azure/gpt-4o".parse().unwrap());
        headers.insert("x-backstop-model", "smart".parse().unwrap());
        headers.insert("x-backstop-attempts", "3".parse().unwrap());
        headers.insert("x-backstop-fallback", "true".parse().unwrap());
        let outcome = outcome_of(200, &headers);
        assert_eq!(outcome.target.as_deref(), Some("azure/gpt-4o"));
        assert_eq!(outcome.model.as_deref(), Some("smart"));
        assert_eq!(outcome.attempts, 3);
        assert!(outcome.fallback);
        assert!(ends_done(b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!ends_done(b"data: {}\n\ndata: {\"error\":{}}\n\n"));
        let bare = outcome_of(503, &HeaderMap::new());
        assert_eq!(
            (bare.status, bare.attempts, bare.fallback),
            (Some(503), 0, false)
        );
    }
}
