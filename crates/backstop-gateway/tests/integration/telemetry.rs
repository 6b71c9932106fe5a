//! OpenTelemetry export: the spans of a request that retried and was continued on a
//! fallback reach a real OTLP/HTTP receiver (protobuf, decoded with `opentelemetry-proto`),
//! as one tree under the client's own trace, with the trace carried on to the upstreams.

use crate::common::*;
use crate::rescue::{full_answer, openai_stream, RESCUE};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every span received, with the `service.name` of its resource.
pub type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// A tiny OTLP/HTTP collector: every span posted to `/v1/traces`, decoded.
pub struct Collector {
    pub url: String,
    pub spans: Received,
}

pub async fn collector() -> Collector {
    let spans: Received = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Collector { url, spans }
}

async fn receive(State(spans): State<Received>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.lock().unwrap().push((service.clone(), span));
            }
        }
    }
    Vec::new()
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        AnyValue::ArrayValue(array) => Some(
            array
                .values
                .iter()
                .filter_map(|v| text(v.value.as_ref()?))
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

pub fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_retried_and_continued_request_is_one_trace_at_the_collector() {
    let collector = collector().await;
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"gw-under-test\"\nresource = {{ \"deployment.environment\" = \"test\" }}\n",
        collector.url
    );
    let s = setup(&format!("{RESCUE}\n{telemetry}")).await;
    fault(
        &s.primary,
        json!({"kind": "status", "status": 500, "count": 1}),
    )
    .await;
    fault(
        &s.primary,
        json!({"kind": "cut_after", "events": 20, "count": 1}),
    )
    .await;
    let response = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .json(&chat("rescued", true))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let (content, _, errors, _) = openai_stream(&text);
    assert_eq!(content, full_answer(), "{text}");
    assert!(errors.is_empty());

    let arrived = eventually(Duration::from_secs(10), || {
        collector.spans.lock().unwrap().len() >= 4
    })
    .await;
    let spans = collector.spans.lock().unwrap().clone();
    assert!(arrived, "spans at the collector: {spans:?}");
    assert!(
        spans.iter().all(|(service, _)| service == "gw-under-test"),
        "{:?}",
        spans.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    let spans: Vec<Span> = spans.into_iter().map(|(_, span)| span).collect();
    assert!(spans.iter().all(|span| hex(&span.trace_id) == CLIENT_TRACE));

    let request = spans
        .iter()
        .find(|span| span.name == "chat rescued")
        .expect("the request's span");
    assert_eq!(
        hex(&request.parent_span_id),
        CLIENT_SPAN,
        "continues the client's trace"
    );
    assert_eq!(
        attribute(request, "gen_ai.request.model").as_deref(),
        Some("rescued")
    );
    assert_eq!(attribute(request, "backstop.tier").as_deref(), Some("full"));
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );

    let mut children: Vec<&Span> = spans
        .iter()
        .filter(|span| span.parent_span_id == request.span_id)
        .collect();
    children.sort_by_key(|span| span.start_time_unix_nano);
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let summary: Vec<Row> = children
        .iter()
        .map(|span| {
            (
                span.name.clone(),
                attribute(span, "backstop.attempt"),
                attribute(span, "backstop.outcome"),
                attribute(span, "backstop.failure_class"),
            )
        })
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        summary,
        vec![
            (
                "chat p-model".into(),
                some("1"),
                some("failed"),
                some("transient")
            ),
            (
                "chat p-model".into(),
                some("2"),
                some("failed"),
                some("transient")
            ),
            ("continue m-model".into(), some("1"), some("answered"), None),
        ],
        "the attempt spans: {children:?}"
    );
    let (failed, retried, continued) = (children[0], children[1], children[2]);
    assert_eq!(
        attribute(failed, "http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(
        attribute(failed, "gen_ai.system").as_deref(),
        Some("openai")
    );
    assert_eq!(
        attribute(failed, "backstop.target").as_deref(),
        Some("primary/p-model")
    );
    assert!(attribute(retried, "backstop.retry_delay_ms").is_some());
    assert_eq!(
        attribute(continued, "backstop.fallback").as_deref(),
        Some("true")
    );
    assert_eq!(
        attribute(continued, "backstop.call").as_deref(),
        Some("continuation")
    );
    assert_eq!(
        attribute(continued, "gen_ai.request.model").as_deref(),
        Some("m-model")
    );
    assert!(attribute(continued, "backstop.breaker_state").is_some());
    assert_eq!(
        attribute(continued, "gen_ai.response.finish_reasons").as_deref(),
        Some("stop")
    );
    assert_eq!(
        attribute(continued, "gen_ai.response.model").as_deref(),
        Some("m-model"),
        "the model the upstream reported"
    );

    // The upstreams saw the trace, each call under its own span.
    let sent: Vec<String> = s
        .primary
        .requests()
        .iter()
        .chain(s.secondary.requests().iter())
        .map(|r| r.headers.get("traceparent").cloned().unwrap_or_default())
        .collect();
    let expected: Vec<String> = children
        .iter()
        .map(|span| format!("00-{CLIENT_TRACE}-{}-01", hex(&span.span_id)))
        .collect();
    assert_eq!(sent, expected);

    // Nothing secret or said went into a span.
    let everything = format!("{spans:?}");
    for secret in [
        "sk-primary-secret",
        "sk-secondary-secret",
        "Say hello",
        "Hello",
    ] {
        assert!(!everything.contains(secret), "{secret} in a span");
    }
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("backstop_telemetry_spans_total{outcome=\"exported\"}"));
}

#[tokio::test]
async fn a_dead_collector_loses_spans_not_requests() {
    // Nothing listens on the collector's port: every export fails, every request is served.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let telemetry = format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n");
    let s = setup(&telemetry).await;
    for _ in 0..5 {
        assert_eq!(s.ask("gpt", false).await.status(), 200);
    }
    let mut lost = false;
    for _ in 0..200 {
        let metrics = s.get("/metrics").await.text().await.unwrap();
        if metrics.contains("backstop_telemetry_spans_total{outcome=\"export_failed\"}") {
            lost = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(lost, "failed exports are counted");
}

#[tokio::test]
async fn sampling_follows_the_ratio_and_the_clients_own_decision() {
    let collector = collector().await;
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nsample_ratio = 0.0\n",
        collector.url
    );
    let s = setup(&telemetry).await;
    assert_eq!(s.ask("gpt", false).await.status(), 200);
    // A client's sampled trace is followed whatever the ratio.
    let response = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let arrived = eventually(Duration::from_secs(10), || {
        collector.spans.lock().unwrap().len() >= 2
    })
    .await;
    assert!(arrived);
    // Five times the export's batching delay: a span that should not be there would have come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = collector.spans.lock().unwrap().clone();
    assert_eq!(
        spans.len(),
        2,
        "only the client-sampled request's spans: {spans:?}"
    );
    assert!(spans
        .iter()
        .all(|(_, span)| hex(&span.trace_id) == CLIENT_TRACE));
    let (_, attempt) = spans
        .iter()
        .find(|(_, span)| attribute(span, "backstop.attempt").is_some())
        .unwrap();
    assert_eq!(
        attribute(attempt, "gen_ai.response.finish_reasons").as_deref(),
        Some("stop"),
        "a whole answer's finish reason"
    );
    assert!(attribute(attempt, "gen_ai.response.model").is_some());
    let sent: Vec<String> = s
        .primary
        .requests()
        .iter()
        .map(|r| r.headers.get("traceparent").cloned().unwrap_or_default())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], "", "a request nobody traces carries no trace");
    assert!(sent[1].starts_with(&format!("00-{CLIENT_TRACE}-")) && sent[1].ends_with("-01"));
    // A client's trace that it did not sample is carried on, unrecorded.
    let response = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"))
        .json(&chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let last = s.primary.requests().last().unwrap().headers["traceparent"].clone();
    assert!(
        last.starts_with(&format!("00-{CLIENT_TRACE}-")) && last.ends_with("-00"),
        "{last}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(collector.spans.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_hedge_that_wins_is_its_own_span_and_the_slow_call_ends_cancelled() {
    let collector = collector().await;
    let config = format!(
        "[models.hedged]\ntargets = [{{ provider = \"primary\", model = \"h\", weight = 1000000 }}, {{ provider = \"secondary\", model = \"h\", weight = 1 }}]\nhedge = {{ delay = \"200ms\" }}\n[telemetry]\notlp_endpoint = \"{}\"\n",
        collector.url
    );
    let s = setup(&config).await;
    fault(&s.primary, json!({"kind": "delay_headers", "delay": "3s"})).await;
    let response = s.ask("hedged", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backstop-target"], "secondary/h");
    let arrived = eventually(Duration::from_secs(10), || {
        collector.spans.lock().unwrap().len() >= 3
    })
    .await;
    let spans: Vec<Span> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(_, span)| span.clone())
        .collect();
    assert!(arrived, "{spans:?}");
    let request = spans.iter().find(|s| s.name == "chat hedged").unwrap();
    let outcome = |name: &str| {
        let span = spans
            .iter()
            .find(|s| s.name == name && s.parent_span_id == request.span_id)
            .unwrap_or_else(|| panic!("no span {name}: {spans:?}"));
        (
            attribute(span, "backstop.target"),
            attribute(span, "backstop.outcome"),
            attribute(span, "backstop.hedge"),
        )
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        outcome("chat h"),
        (some("primary/h"), some("cancelled"), None)
    );
    assert_eq!(
        outcome("hedge h"),
        (some("secondary/h"), some("answered"), some("true"))
    );
}

/// A collector that takes `delay` to answer each export.
async fn slow_collector(delay: Duration) -> Collector {
    let spans: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(move |state: State<Received>, body: Bytes| async move {
                let answer = receive(state, body).await;
                tokio::time::sleep(delay).await;
                answer
            }),
        )
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Collector { url, spans }
}

#[tokio::test]
async fn a_shutdown_waits_for_the_last_spans_to_reach_the_collector() {
    // The first request's export keeps the collector busy; the second request's spans are
    // still queued when the gateway is told to stop.
    let collector = slow_collector(Duration::from_millis(500)).await;
    let telemetry = format!("[telemetry]\notlp_endpoint = \"{}\"\n", collector.url);
    let mut s = setup(&telemetry).await;
    assert_eq!(s.ask("gpt", false).await.status(), 200);
    let first = eventually(Duration::from_secs(10), || {
        !collector.spans.lock().unwrap().is_empty()
    })
    .await;
    assert!(first, "the first export arrives");
    let response = s.ask("gpt", false).await;
    assert_eq!(response.status(), 200);
    let second = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    s.gw.signal_shutdown();
    s.gw.task.await.unwrap().unwrap();
    let spans = collector.spans.lock().unwrap().clone();
    assert!(
        spans
            .iter()
            .any(|(_, span)| attribute(span, "backstop.request_id").as_deref() == Some(&second)),
        "the last request's span was sent before the gateway stopped: {spans:?}"
    );
}
