//! HTTPS: ALPN picks HTTP/2 or HTTP/1.1, the log records the version, faults still apply, and
//! a client that does not trust the certificate is refused.

use backstop_mock::{Fault, FaultKind, MockConfig, MockTls, TestCerts};
use reqwest::Version;

use super::*;

/// A TLS mock, its certificates, and a client that trusts the test CA (and nothing else).
async fn tls_harness(http1_only: bool) -> (Harness, TestCerts) {
    let certs = TestCerts::generate().unwrap();
    let mock = certs
        .start_mock(MockConfig::default(), http1_only)
        .await
        .unwrap();
    let ca = reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    (Harness { mock, client }, certs)
}

#[tokio::test]
async fn https_negotiates_http2_by_alpn_and_logs_the_version() {
    let (h, _certs) = tls_harness(false).await;
    assert!(h.mock.url().starts_with("https://127.0.0.1:"));
    assert!(h.mock.is_tls());

    let resp = h.openai(chat("gpt-4o")).await;
    assert_eq!(resp.version(), Version::HTTP_2);
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["model"], "gpt-4o");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with(&backstop_mock::DEFAULT_ANSWER[..10]));

    let resp = h.openai(streamed(chat("gpt-4o"))).await;
    assert_eq!(resp.version(), Version::HTTP_2);
    let text = resp.text().await.unwrap();
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));

    let log = h.mock.requests();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.version == "HTTP/2.0"), "{log:?}");
    assert!(log[1].stream);
    let listed = h.get_json("/_mock/requests", &[]).await;
    assert_eq!(listed[0]["version"], "HTTP/2.0", "{listed}");
}

#[tokio::test]
async fn https_with_only_http1_offered_falls_back_to_http1() {
    let (h, _certs) = tls_harness(true).await;
    let resp = h.anthropic(messages("claude-x")).await;
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    let log = h.mock.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].version, "HTTP/1.1");
    assert_eq!(log[0].path, "/v1/messages");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let (h, _certs) = tls_harness(false).await;
    let stranger = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap();
    let err = stranger
        .post(h.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(h.mock.requests().is_empty());
    // The mock keeps serving those who do trust it.
    assert_eq!(h.openai(chat("gpt-4o")).await.status(), 200);
}

#[tokio::test]
async fn faults_apply_over_tls_reset_included() {
    let (h, _certs) = tls_harness(false).await;
    h.mock.add_fault(Fault::status(503).count(1));
    h.mock.add_fault(Fault::new(FaultKind::Reset).count(1));
    assert_eq!(h.openai(chat("gpt-4o")).await.status(), 503);
    let err = h
        .client
        .post(h.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(h.openai(chat("gpt-4o")).await.status(), 200);
    let outcomes: Vec<String> = h.mock.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["status 503", "reset", "ok"]);
}

#[tokio::test]
async fn cleartext_logs_http1_and_prior_knowledge_http2() {
    let h = Harness::start().await;
    assert!(h.mock.url().starts_with("http://"));
    assert_eq!(h.openai(chat("gpt-4o")).await.status(), 200);
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2c
        .post(h.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let versions: Vec<String> = h.mock.requests().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["HTTP/1.1", "HTTP/2.0"]);
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_an_error() {
    let one = TestCerts::generate().unwrap();
    let other = TestCerts::generate().unwrap();
    let err = MockTls::from_pem(one.cert_pem.as_bytes(), other.key_pem.as_bytes()).unwrap_err();
    assert!(err.to_string().starts_with("invalid TLS setup:"), "{err}");
    assert_eq!(
        one.mock_tls().unwrap().alpn(),
        ["h2".to_owned(), "http/1.1".to_owned()]
    );
    assert_eq!(one.mock_tls().unwrap().http1_only().alpn(), ["http/1.1"]);
}
