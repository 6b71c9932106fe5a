//! Streaming cost per upstream event: SSE framing plus canonical decoding (what the gateway pays
//! on every streamed event, passthrough included), and decoding plus re-encoding for another
//! client protocol (what a translated stream pays).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark setup may fail loudly

use backstop_protocol::{Protocol, SseDecoder, StreamDecoder, StreamEncoder};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn fixture(p: Protocol) -> &'static [u8] {
    match p {
        Protocol::OpenAi => include_bytes!("../tests/fixtures/openai_stream.sse"),
        Protocol::Anthropic => include_bytes!("../tests/fixtures/anthropic_stream.sse"),
        Protocol::Gemini => include_bytes!("../tests/fixtures/gemini_stream.sse"),
        Protocol::Responses => include_bytes!("../tests/fixtures/responses_stream.sse"),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    for (from, to) in [
        (Protocol::OpenAi, None),
        (Protocol::Anthropic, None),
        (Protocol::OpenAi, Some(Protocol::Anthropic)),
        (Protocol::Anthropic, Some(Protocol::OpenAi)),
        (Protocol::Anthropic, Some(Protocol::Responses)),
    ] {
        let bytes = fixture(from);
        let events = SseDecoder::new().push(bytes).len() as u64;
        g.throughput(Throughput::Elements(events));
        let name = match to {
            None => format!("decode_{from}"),
            Some(to) => format!("translate_{from}_to_{to}"),
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sse = SseDecoder::new();
                let mut dec = StreamDecoder::new(from);
                let mut enc = to.map(|p| StreamEncoder::new(p, true));
                let mut out = BytesMut::new();
                let mut events = Vec::new();
                for ev in sse.push(black_box(bytes)) {
                    events.clear();
                    dec.decode_into(&ev, &mut events).unwrap();
                    if let Some(enc) = enc.as_mut() {
                        for e in &events {
                            enc.encode(e, &mut out);
                        }
                    }
                }
                (out, events)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
