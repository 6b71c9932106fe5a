//! The passthrough hot path: `read_envelope`, `validate_request` (what the gateway runs on every
//! request) and `rewrite_model` on a ~2 KB chat request, against a full `serde_json::Value` parse
//! and re-serialisation as the baseline they avoid; and the two readers on a ~1 MB prompt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark setup may fail loudly

use backstop_protocol::{read_envelope, rewrite_model, validate_request, Protocol};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// A realistic ~2 KB request: system prompt, a few turns, a tool with a schema.
fn body() -> Vec<u8> {
    let turn =
        "Please summarise the following paragraph about circuit breakers in distributed systems, \
                keeping the \\\"half-open\\\" state explained in one sentence.";
    let body = format!(
        r#"{{"model":"smart","messages":[{{"role":"system","content":"You are a concise assistant."}},
        {{"role":"user","content":"{turn}"}},{{"role":"assistant","content":"{turn}"}},
        {{"role":"user","content":"{turn} {turn}"}},{{"role":"assistant","content":"{turn}"}},
        {{"role":"user","content":"{turn}"}},{{"role":"assistant","content":"{turn} {turn}"}},{{"role":"user","content":"{turn}"}}],
        "tools":[{{"type":"function","function":{{"name":"lookup","description":"Look a term up","parameters":
        {{"type":"object","properties":{{"term":{{"type":"string"}},"model":{{"type":"string"}}}},"required":["term"]}}}}}}],
        "temperature":0.2,"max_tokens":1024,"stream":true,"stream_options":{{"include_usage":true}}}}"#
    );
    body.into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = body();
    assert!(
        body.len() > 1800 && body.len() < 2600,
        "body is {} bytes",
        body.len()
    );
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("read_envelope", |b| {
        b.iter(|| read_envelope(black_box(&body)).unwrap())
    });
    g.bench_function("validate_request", |b| {
        b.iter(|| validate_request(Protocol::OpenAi, black_box(&body)).unwrap())
    });
    g.bench_function("rewrite_model", |b| {
        b.iter(|| rewrite_model(black_box(&body), black_box("claude-sonnet-4-5-20250929")).unwrap())
    });
    g.bench_function("baseline_value_roundtrip", |b| {
        b.iter(|| {
            let mut v: serde_json::Value = serde_json::from_slice(black_box(&body)).unwrap();
            v["model"] = "claude-sonnet-4-5-20250929".into();
            serde_json::to_vec(&v).unwrap()
        })
    });
    g.finish();

    let big = megabyte_body();
    let mut g = c.benchmark_group("envelope_1mb");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.sample_size(20);
    g.bench_function("read_envelope", |b| {
        b.iter(|| read_envelope(black_box(&big)).unwrap())
    });
    g.bench_function("validate_request", |b| {
        b.iter(|| validate_request(Protocol::OpenAi, black_box(&big)).unwrap())
    });
    g.finish();
}

/// A ~1 MB agent conversation: turns of source code with the escapes JSON gives it.
fn megabyte_body() -> Vec<u8> {
    let code = r#"fn main() {\n    println!(\"hello, world\");\n    let x = vec![1, 2, 3];\n}\n"#;
    let turn = code.repeat(40);
    let mut body = String::from(r#"{"model":"smart","stream":true,"max_tokens":100,"messages":["#);
    let mut i = 0;
    while body.len() < 1 << 20 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        body.push_str(&format!(r#"{{"role":"{role}","content":"{turn}"}},"#));
        i += 1;
    }
    body.push_str(r#"{"role":"user","content":"Explain."}]}"#);
    body.into_bytes()
}

criterion_group!(benches, bench);
criterion_main!(benches);
