//! Invalid requests: a 400 in the caller's protocol, never an upstream call, on every path.
//!
//! Each invalid request is sent in both client protocols, to a model whose target speaks the
//! caller's protocol (the body would be forwarded as it came) and to models whose target speaks
//! another (the body would be translated), streaming and not. Every model has a fallback, so a
//! request that slipped through and failed upstream would show up as an attempt or a call.

use crate::common::{gateway, mock, two_upstreams, Setup};
use serde_json::{json, Value};

/// Models whose primary speaks each protocol; each falls back to `backup` (OpenAI).
const MODELS: &str = r#"
[providers.gem]
kind = "gemini"
base_url = "PRIMARY"
api_key = "gem-secret"
[models.claude_fb]
targets = [{ provider = "anth", model = "claude-sonnet-4-5" }]
fallbacks = ["backup"]
[models.gemini_fb]
targets = [{ provider = "gem", model = "gemini-2.5-flash" }]
fallbacks = ["backup"]
"#;

/// The public model served by a target of each protocol.
const ROUTES: [(&str, &str); 3] = [
    ("gpt", "openai"),
    ("claude_fb", "anthropic"),
    ("gemini_fb", "gemini"),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    OpenAi,
    Anthropic,
}

impl Caller {
    fn path(self) -> &'static str {
        match self {
            Caller::OpenAi => "/v1/chat/completions",
            Caller::Anthropic => "/v1/messages",
        }
    }

    /// A valid request body of this protocol.
    fn body(self, model: &str, stream: bool) -> Value {
        let mut body = json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "Say hello"}]});
        if self == Caller::Anthropic {
            body["max_tokens"] = json!(64);
        }
        body
    }
}

/// An invalid request: how to spoil a valid body, the OpenAI `param` it must name (`None` when
/// the body as a whole is wrong) and a fragment of the message.
struct Case {
    name: &'static str,
    spoil: fn(Value) -> Vec<u8>,
    param: Option<&'static str>,
    fragment: &'static str,
}

fn set(mut body: Value, key: &str, value: Value) -> Vec<u8> {
    body[key] = value;
    body.to_string().into_bytes()
}

/// The body with the user's text replaced by raw JSON bytes.
fn with_text(body: Value, raw: &[u8]) -> Vec<u8> {
    let text = body.to_string();
    let (before, after) = text.split_once("Say hello").unwrap();
    [before.as_bytes(), raw, after.as_bytes()].concat()
}

const CASES: &[Case] = &[
    Case {
        name: "unknown role",
        spoil: |b| {
            set(
                b,
                "messages",
                json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                    {"role": "wizard", "content": "c"}]),
            )
        },
        param: Some("messages[2].role"),
        fragment: r#"messages[2].role: unknown role "wizard""#,
    },
    Case {
        name: "content of the wrong type",
        spoil: |b| set(b, "messages", json!([{"role": "user", "content": 42}])),
        param: Some("messages[0].content"),
        fragment: "messages[0].content: must be a string or an array",
    },
    Case {
        name: "temperature as a word",
        spoil: |b| set(b, "temperature", json!("hot")),
        param: Some("temperature"),
        fragment: "temperature: must be a number",
    },
    Case {
        name: "messages as a string",
        spoil: |b| set(b, "messages", json!("hi")),
        param: Some("messages"),
        fragment: "messages: must be an array",
    },
    Case {
        name: "max_tokens of zero",
        spoil: |b| set(b, "max_tokens", json!(0)),
        param: Some("max_tokens"),
        fragment: "max_tokens: must be a positive integer",
    },
    Case {
        name: "tools as an object",
        spoil: |b| set(b, "tools", json!({"name": "lookup"})),
        param: Some("tools"),
        fragment: "tools: must be an array",
    },
    Case {
        name: "invalid UTF-8",
        spoil: |b| with_text(b, b"caf\xc3(\xff"),
        param: None,
        fragment: "not valid UTF-8",
    },
    Case {
        name: "lone surrogate",
        spoil: |b| with_text(b, br"hi \ud800 there"),
        param: None,
        fragment: "surrogate",
    },
];

async fn send(s: &Setup, caller: Caller, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(s.gw.url(caller.path()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a 400 in `caller`'s error shape naming `case`'s field.
async fn assert_refused(response: reqwest::Response, caller: Caller, case: &Case, what: &str) {
    assert_eq!(response.status(), 400, "{what}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json", "{what}");
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["type"], "invalid_request_error", "{what}: {body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(case.fragment), "{what}: {body}");
    match caller {
        Caller::OpenAi => {
            assert_eq!(error["param"], json!(case.param), "{what}: {body}");
            assert_eq!(body.as_object().unwrap().len(), 1, "{what}: {body}");
        }
        Caller::Anthropic => assert_eq!(body["type"], "error", "{what}: {body}"),
    }
}

async fn metrics(s: &Setup) -> String {
    s.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn invalid_requests_are_refused_before_any_upstream_call() {
    let (primary, secondary) = (mock().await, mock().await);
    let models = MODELS.replace("PRIMARY", &primary.url());
    let gw = gateway(&two_upstreams(&primary, &secondary, &models)).await;
    let s = Setup {
        primary,
        secondary,
        gw,
    };
    for caller in [Caller::OpenAi, Caller::Anthropic] {
        for (model, target) in ROUTES {
            for stream in [false, true] {
                for case in CASES {
                    let body = (case.spoil)(caller.body(model, stream));
                    let what = format!(
                        "{caller:?} caller, {target} target, stream={stream}: {}",
                        case.name
                    );
                    assert_refused(send(&s, caller, body).await, caller, case, &what).await;
                }
            }
        }
    }
    assert_eq!(s.primary.requests().len(), 0, "primary was called");
    assert_eq!(s.secondary.requests().len(), 0, "fallback was called");
    let metrics = metrics(&s).await;
    assert!(
        !metrics.contains("backstop_upstream_attempts_total{"),
        "an attempt was counted:\n{metrics}"
    );

    // The same routes do reach the upstreams with a valid request: the zero above is not an
    // accident of the setup.
    for caller in [Caller::OpenAi, Caller::Anthropic] {
        for (model, target) in ROUTES {
            for stream in [false, true] {
                let body = caller.body(model, stream).to_string().into_bytes();
                let response = send(&s, caller, body).await;
                let status = response.status();
                let text = response.text().await.unwrap();
                assert_eq!(
                    status, 200,
                    "{caller:?} to {target}, stream={stream}: {text}"
                );
            }
        }
    }
    assert_eq!(s.primary.requests().len(), 12);
    assert_eq!(
        s.secondary.requests().len(),
        0,
        "no fallback for valid requests"
    );
}

#[tokio::test]
async fn a_compressed_body_is_refused_by_its_encoding_not_as_bad_json() {
    let (primary, secondary) = (mock().await, mock().await);
    let gw = gateway(&two_upstreams(&primary, &secondary, "")).await;
    let s = Setup {
        primary,
        secondary,
        gw,
    };
    let client = reqwest::Client::new();
    let case = Case {
        name: "gzip body",
        spoil: |b| b.to_string().into_bytes(),
        param: None,
        fragment: "Content-Encoding `gzip`",
    };
    for caller in [Caller::OpenAi, Caller::Anthropic] {
        let post = |encoding: &'static str| {
            client
                .post(s.gw.url(caller.path()))
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body((case.spoil)(caller.body("gpt", false)))
                .send()
        };
        let what = format!("{caller:?} caller, {}", case.name);
        assert_refused(post("gzip").await.unwrap(), caller, &case, &what).await;
        assert_eq!(
            s.primary.requests().len(),
            0,
            "{what}: the upstream was called"
        );
        let plain = post("identity").await.unwrap();
        assert_eq!(plain.status(), 200, "{caller:?} caller, identity");
        s.primary.clear_requests();
    }
}
