//! Stream translation: decode each provider's fixture stream, encode it for each client protocol,
//! decode that output again and check that nothing was lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use backstop_protocol::{
    FinishReason, Protocol, SseDecoder, SseEvent, StreamDecoder, StreamEncoder, StreamEvent, Usage,
};
use bytes::BytesMut;
use serde_json::Value;

fn fixture(p: Protocol) -> &'static str {
    match p {
        Protocol::OpenAi => include_str!("fixtures/openai_stream.sse"),
        Protocol::Anthropic => include_str!("fixtures/anthropic_stream.sse"),
        Protocol::Gemini => include_str!("fixtures/gemini_stream.sse"),
        Protocol::Responses => include_str!("fixtures/responses_stream.sse"),
    }
}

fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut evs = d.push(bytes);
    evs.extend(d.finish());
    evs
}

fn decode_all(p: Protocol, bytes: &[u8]) -> (Vec<StreamEvent>, StreamDecoder) {
    let mut dec = StreamDecoder::new(p);
    let mut out = Vec::new();
    for ev in sse_events(bytes) {
        out.extend(
            dec.decode(&ev)
                .unwrap_or_else(|e| panic!("{p}: {e} in {ev:?}")),
        );
    }
    (out, dec)
}

#[derive(Debug, Default, PartialEq)]
struct Summary {
    text: String,
    tools: Vec<(String, String, Value)>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

fn summarize(events: &[StreamEvent]) -> Summary {
    let mut s = Summary::default();
    let mut args: Vec<String> = Vec::new();
    assert!(
        matches!(events.first(), Some(StreamEvent::Start { .. })),
        "{events:?}"
    );
    for e in events {
        match e {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta { text } => s.text.push_str(text),
            StreamEvent::ToolCallStart { index, id, name } => {
                assert_eq!(*index as usize, s.tools.len());
                s.tools.push((id.clone(), name.clone(), Value::Null));
                args.push(String::new());
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                args[*index as usize].push_str(arguments)
            }
            StreamEvent::Finish { reason } => s.finish = Some(reason.clone()),
            StreamEvent::Usage(u) => s.usage = Some(*u),
            StreamEvent::Done => s.done = true,
        }
    }
    for (t, a) in s.tools.iter_mut().zip(args) {
        t.2 = serde_json::from_str(&a).unwrap_or_else(|e| panic!("arguments {a:?}: {e}"));
    }
    s
}

fn expected_usage(p: Protocol) -> (u64, u64) {
    match p {
        Protocol::OpenAi => (82, 47),
        Protocol::Anthropic => (472, 89),
        Protocol::Gemini => (120, 47),
        Protocol::Responses => (82, 47),
    }
}

fn check_source(p: Protocol, s: &Summary) {
    assert_eq!(s.text, "Checking both.", "{p}");
    let cities: Vec<&Value> = s.tools.iter().map(|t| &t.2["city"]).collect();
    assert_eq!(cities, ["Paris", "Tokyo"], "{p}");
    assert!(s.tools.iter().all(|t| t.1 == "get_weather"));
    assert_eq!(s.finish, Some(FinishReason::ToolCalls), "{p}");
    let u = s.usage.unwrap_or_else(|| panic!("{p}: no usage"));
    assert_eq!((u.input_tokens, u.output_tokens), expected_usage(p), "{p}");
    assert!(s.done, "{p}");
}

const ALL: [Protocol; 4] = [
    Protocol::OpenAi,
    Protocol::Anthropic,
    Protocol::Gemini,
    Protocol::Responses,
];

#[test]
fn fixtures_decode() {
    for p in ALL {
        let (events, dec) = decode_all(p, fixture(p).as_bytes());
        check_source(p, &summarize(&events));
        assert!(dec.saw_terminator() && dec.saw_finish(), "{p}");
    }
}

/// Every Anthropic delta refers to an open block, blocks open in order from 0 and all close
/// before `message_delta`; the stream ends with `message_stop`.
fn check_anthropic_framing(bytes: &[u8]) {
    let evs = sse_events(bytes);
    let names: Vec<&str> = evs
        .iter()
        .map(|e| e.event.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let mut open: Option<u64> = None;
    let mut next = 0;
    for e in &evs {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["type"].as_str(), e.event.as_deref());
        match e.event.as_deref() {
            Some("content_block_start") => {
                assert_eq!(open, None, "block opened while another is open");
                assert_eq!(v["index"], next);
                open = Some(next);
                next += 1;
            }
            Some("content_block_delta") => assert_eq!(Some(v["index"].as_u64().unwrap()), open),
            Some("content_block_stop") => {
                assert_eq!(Some(v["index"].as_u64().unwrap()), open);
                open = None;
            }
            Some("message_delta") => {
                assert_eq!(open, None);
                assert!(v["usage"]["output_tokens"].is_u64());
            }
            _ => {}
        }
    }
}

/// Every Responses event is named by its `type`, numbered from 0, and the stream opens with
/// `response.created` and ends with `response.completed` carrying the whole answer.
fn check_responses_framing(bytes: &[u8]) {
    let evs = sse_events(bytes);
    let values: Vec<Value> = evs
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    for (n, (e, v)) in evs.iter().zip(&values).enumerate() {
        assert_eq!(v["type"].as_str(), e.event.as_deref());
        assert_eq!(v["sequence_number"], n as u64);
    }
    assert_eq!(values[0]["type"], "response.created");
    let last = values.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["output"].as_array().unwrap().len(), 3);
}

fn check_openai_framing(bytes: &[u8]) {
    let evs = sse_events(bytes);
    assert_eq!(evs.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = evs[..evs.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let id = &chunks[0]["id"];
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id);
        assert_eq!(c["created"], chunks[0]["created"]);
    }
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert!(usage["usage"]["total_tokens"].is_u64());
    let finishes = chunks
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"].is_string())
        .count();
    assert_eq!(finishes, 1);
}

#[test]
fn every_provider_to_every_client() {
    for from in ALL {
        for to in ALL {
            let (events, _) = decode_all(from, fixture(from).as_bytes());
            let mut enc = StreamEncoder::new(to, true);
            let mut out = BytesMut::new();
            for e in &events {
                enc.encode(e, &mut out);
            }
            let (again, dec) = decode_all(to, &out);
            let s = summarize(&again);
            check_source(from, &s);
            assert!(dec.saw_terminator(), "{from} -> {to}");
            match to {
                Protocol::Anthropic => check_anthropic_framing(&out),
                Protocol::OpenAi => check_openai_framing(&out),
                Protocol::Responses => check_responses_framing(&out),
                Protocol::Gemini => {}
            }
        }
    }
}

fn encode(p: Protocol, include_usage: bool, events: &[StreamEvent]) -> BytesMut {
    let mut enc = StreamEncoder::new(p, include_usage);
    let mut out = BytesMut::new();
    for e in events {
        enc.encode(e, &mut out);
    }
    out
}

#[test]
fn finish_usage_done_in_any_order() {
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 5,
        ..Usage::default()
    };
    let start = StreamEvent::Start {
        id: "x".into(),
        model: "m".into(),
    };
    let text = StreamEvent::TextDelta { text: "hi".into() };
    let fin = StreamEvent::Finish {
        reason: FinishReason::Length,
    };
    let orders = [
        vec![
            start.clone(),
            text.clone(),
            StreamEvent::Usage(usage),
            fin.clone(),
            StreamEvent::Done,
        ],
        vec![
            start.clone(),
            text.clone(),
            fin.clone(),
            StreamEvent::Usage(usage),
            StreamEvent::Done,
        ],
        vec![
            start.clone(),
            StreamEvent::Usage(usage),
            text.clone(),
            fin.clone(),
            StreamEvent::Done,
        ],
    ];
    for p in [Protocol::OpenAi, Protocol::Anthropic] {
        for events in &orders {
            let out = encode(p, true, events);
            let (again, _) = decode_all(p, &out);
            let s = summarize(&again);
            assert_eq!(s.text, "hi");
            assert_eq!(s.finish, Some(FinishReason::Length), "{p}");
            let u = s.usage.unwrap();
            assert_eq!((u.input_tokens, u.output_tokens), (10, 5), "{p} {events:?}");
            assert!(s.done);
        }
    }
    // Events after Done are ignored; Done without Finish still closes the stream properly.
    let out = encode(
        Protocol::Anthropic,
        true,
        &[start.clone(), text.clone(), StreamEvent::Done, text.clone()],
    );
    check_anthropic_framing(&out);
    let (again, _) = decode_all(Protocol::Anthropic, &out);
    assert_eq!(summarize(&again).finish, Some(FinishReason::Stop));
}

#[test]
fn openai_usage_chunk_only_when_asked() {
    let events = [
        StreamEvent::Start {
            id: "chatcmpl-1".into(),
            model: "m".into(),
        },
        StreamEvent::TextDelta { text: "a".into() },
        StreamEvent::Finish {
            reason: FinishReason::Stop,
        },
        StreamEvent::Usage(Usage {
            input_tokens: 1,
            output_tokens: 1,
            ..Usage::default()
        }),
        StreamEvent::Done,
    ];
    let without = encode(Protocol::OpenAi, false, &events);
    assert!(!String::from_utf8_lossy(&without).contains("\"usage\""));
    let with = encode(Protocol::OpenAi, true, &events);
    assert!(String::from_utf8_lossy(&with).contains("\"total_tokens\":2"));
}

#[test]
fn stream_errors() {
    let mut enc = StreamEncoder::new(Protocol::OpenAi, true);
    let mut out = BytesMut::new();
    enc.encode(
        &StreamEvent::Start {
            id: "chatcmpl-1".into(),
            model: "m".into(),
        },
        &mut out,
    );
    enc.encode(&StreamEvent::TextDelta { text: "par".into() }, &mut out);
    enc.encode_error("server_error", "upstream died", &mut out);
    enc.encode(&StreamEvent::Done, &mut out);
    let s = String::from_utf8_lossy(&out);
    assert!(s.contains(r#"data: {"error":{"#) && s.contains("upstream died"));
    assert!(!s.contains("[DONE]") && !s.contains("\"finish_reason\":\"stop\""));

    let mut enc = StreamEncoder::new(Protocol::Anthropic, true);
    let mut out = BytesMut::new();
    enc.encode(
        &StreamEvent::Start {
            id: "msg_1".into(),
            model: "m".into(),
        },
        &mut out,
    );
    enc.encode_error("overloaded_error", "Overloaded", &mut out);
    let evs = sse_events(&out);
    assert_eq!(evs.last().unwrap().event.as_deref(), Some("error"));
    assert!(evs.last().unwrap().data.contains("overloaded_error"));

    // Decoders: a malformed event is an error and the decoder keeps working; upstream error
    // events are classified.
    let mut dec = StreamDecoder::new(Protocol::Anthropic);
    let bad = SseEvent {
        event: Some("content_block_delta".into()),
        data: "{not json".into(),
    };
    assert!(dec.decode(&bad).is_err());
    let err = SseEvent {
        event: Some("error".into()),
        data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            .into(),
    };
    match dec.decode(&err) {
        Err(backstop_protocol::ProtocolError::Upstream { kind, message }) => {
            assert_eq!(kind, backstop_protocol::UpstreamErrorKind::Overloaded);
            assert_eq!(message, "Overloaded");
        }
        other => panic!("{other:?}"),
    }
    let stop = SseEvent {
        event: Some("message_stop".into()),
        data: r#"{"type":"message_stop"}"#.into(),
    };
    assert_eq!(dec.decode(&stop).unwrap(), vec![StreamEvent::Done]);
    assert!(dec.saw_terminator() && !dec.saw_finish());
}

#[test]
fn truncated_stream_has_no_terminator() {
    let full = fixture(Protocol::OpenAi);
    let at = full.find("\"finish_reason\":\"tool_calls\"").unwrap();
    let cut = &full[..full[..at].rfind("\n\n").unwrap() + 2];
    let (_, dec) = decode_all(Protocol::OpenAi, cut.as_bytes());
    assert!(!dec.saw_terminator() && !dec.saw_finish());
}

#[test]
fn openai_error_chunk_is_classified() {
    let mut dec = StreamDecoder::new(Protocol::OpenAi);
    let err = SseEvent {
        event: None,
        data: r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#.into(),
    };
    match dec.decode(&err) {
        Err(backstop_protocol::ProtocolError::Upstream { kind, message }) => {
            assert_eq!(kind, backstop_protocol::UpstreamErrorKind::ServerError);
            assert_eq!(message, "The server had an error");
        }
        other => panic!("{other:?}"),
    }
    // Escaped text in a chunk (not borrowable) decodes too.
    let ev = SseEvent {
        event: None,
        data: r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"a\"b\n"},"finish_reason":null}],"usage":null}"#.into(),
    };
    let events = dec.decode(&ev).unwrap();
    assert_eq!(
        events[1],
        StreamEvent::TextDelta {
            text: "a\"b\n".into()
        }
    );
}

#[test]
fn openai_chunks_translate_the_choice_with_index_zero_wherever_it_stands() {
    let event = |data: &str| SseEvent {
        event: None,
        data: data.into(),
    };
    let mut dec = StreamDecoder::new(Protocol::OpenAi);
    let mut out = vec![StreamEvent::Done];
    dec.decode_into(
        &event(r#"{"id":"c","model":"m","choices":[{"index":1,"delta":{"content":"other"},"finish_reason":"length"},{"index":0,"delta":{"content":"mine"},"finish_reason":null},{"index":0,"delta":{"content":"again"}}]}"#),
        &mut out,
    )
    .unwrap();
    let text = StreamEvent::TextDelta {
        text: "mine".into(),
    };
    assert_eq!(out.len(), 3, "appended after what the buffer held: {out:?}");
    assert_eq!(out[2], text);
    assert!(
        !dec.saw_finish(),
        "the other choice's finish is not this answer's"
    );
    for choices in [r#""choices":null"#, r#""choices":[]"#, r#""x":1"#] {
        let events = dec
            .decode(&event(&format!(r#"{{"id":"c",{choices}}}"#)))
            .unwrap();
        assert!(events.is_empty(), "{choices}: {events:?}");
    }
    for bad in [
        r#""choices":{}"#,
        r#""choices":[{"index":"0"}]"#,
        r#""choices":3"#,
    ] {
        let mut out = vec![StreamEvent::Done];
        let json = format!(r#"{{"id":"c",{bad}}}"#);
        assert!(dec.decode_into(&event(&json), &mut out).is_err(), "{bad}");
        assert_eq!(
            out,
            [StreamEvent::Done],
            "{bad}: an error leaves the buffer as it was"
        );
    }
}

#[test]
fn anthropic_block_deltas_decode_alike_by_either_path() {
    // With the event name `content_block_delta` the decoder reads borrowed fields first; without
    // it, the data alone decides and it reads a JSON tree. Both must give the same events or errors.
    let cases = [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\"b\n\u00e9"},"extra":[1,{"x":null}]}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta"}}"#,
        r#"{"type":"content_block_delta","index":7,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"x"}}}"#,
        r#"{"type":"content_block_delta","index":"1","delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"text":"untyped"}}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"cut"#,
    ];
    let decoder = || {
        let mut dec = StreamDecoder::new(Protocol::Anthropic);
        let start = SseEvent {
            event: Some("content_block_start".into()),
            data: r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}"#.into(),
        };
        dec.decode(&start).unwrap();
        dec
    };
    for data in cases {
        let named = decoder().decode(&SseEvent {
            event: Some("content_block_delta".into()),
            data: data.into(),
        });
        let unnamed = decoder().decode(&SseEvent {
            event: None,
            data: data.into(),
        });
        assert_eq!(format!("{named:?}"), format!("{unnamed:?}"), "{data}");
    }
}
