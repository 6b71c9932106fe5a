//! Request and response translation between the protocols, from fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use backstop_protocol::{
    anthropic, decode_response, encode_request, encode_response, gemini, openai, ChatRequest,
    ChatResponse, ContentPart, FinishReason, ImageSource, Protocol, ProtocolError, Role,
    ToolChoice,
};
use serde_json::{json, Value};

const OPENAI_REQ: &str = include_str!("fixtures/openai_request.json");
const ANTHROPIC_REQ: &str = include_str!("fixtures/anthropic_request.json");

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// Tool-call arguments compared as JSON, not text (whitespace differs between providers).
fn normalized(parts: &[ContentPart]) -> Vec<ContentPart> {
    parts
        .iter()
        .map(|p| match p {
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => ContentPart::ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments: serde_json::from_str::<Value>(arguments)
                    .unwrap()
                    .to_string(),
            },
            ContentPart::ToolResult {
                call_id,
                content,
                is_error,
            } => ContentPart::ToolResult {
                call_id: call_id.clone(),
                content: normalized(content),
                is_error: *is_error,
            },
            other => other.clone(),
        })
        .collect()
}

fn assert_same_semantics(a: &ChatRequest, b: &ChatRequest) {
    assert_eq!(a.system_text(), b.system_text());
    assert_eq!(a.messages.len(), b.messages.len());
    for (x, y) in a.messages.iter().zip(&b.messages) {
        assert_eq!(x.role, y.role);
        assert_eq!(normalized(&x.content), normalized(&y.content));
    }
    assert_eq!(a.tools, b.tools);
    assert_eq!(a.tool_choice, b.tool_choice);
    assert_eq!(a.stop, b.stop);
    assert_eq!(a.max_tokens, b.max_tokens);
    assert_eq!(a.temperature, b.temperature);
    assert_eq!(a.top_p, b.top_p);
    assert_eq!(a.stream, b.stream);
    assert_eq!(a.user, b.user);
}

#[test]
fn openai_request_decodes() {
    let req = openai::decode_request(OPENAI_REQ.as_bytes()).unwrap();
    assert_eq!(req.model, "smart");
    assert_eq!(req.system_text(), "You are a weather assistant.");
    assert_eq!(
        req.messages.len(),
        3,
        "tool messages and the next user turn merge"
    );
    let user = &req.messages[0].content;
    assert!(
        matches!(&user[1], ContentPart::Image(ImageSource::Base64 { media_type, .. }) if media_type == "image/png")
    );
    assert_eq!(
        user[2],
        ContentPart::Image(ImageSource::Url("https://example.com/map.jpg".into()))
    );
    assert_eq!(req.messages[1].role, Role::Assistant);
    assert_eq!(req.messages[1].content.len(), 2);
    let results = &req.messages[2].content;
    assert!(
        matches!(&results[0], ContentPart::ToolResult { call_id, .. } if call_id == "call_paris")
    );
    assert!(
        matches!(&results[1], ContentPart::ToolResult { call_id, .. } if call_id == "call_tokyo")
    );
    assert_eq!(
        results[2],
        ContentPart::Text("Summarise in one sentence.".into())
    );
    assert_eq!(req.stop, ["\n\nEND", "STOP"]);
    assert!(req.stream && req.include_usage);
    assert_eq!((req.max_tokens, req.seed), (Some(512), Some(42)));
    assert!(req.extra.contains_key("logit_bias"));
}

#[test]
fn openai_to_anthropic_request() {
    let req = openai::decode_request(OPENAI_REQ.as_bytes()).unwrap();
    let enc = anthropic::encode_request(&req, "claude-sonnet-4-5").unwrap();
    let body = parse(&enc.body);
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["system"], "You are a weather assistant.");
    assert_eq!(body["max_tokens"], 512);
    assert_eq!(body["stop_sequences"], json!(["\n\nEND", "STOP"]));
    assert_eq!(
        body["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    assert_eq!(body["metadata"]["user_id"], "user-123");
    assert!(body.get("logit_bias").is_none() && body.get("seed").is_none());
    assert!(enc.warnings.iter().any(|w| w.contains("logit_bias")));
    assert!(enc.warnings.iter().any(|w| w.contains("seed")));
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["content"][1]["source"]["type"], "base64");
    assert_eq!(
        msgs[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://example.com/map.jpg"})
    );
    assert_eq!(
        msgs[1]["content"][0]["input"],
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], "call_tokyo");
    assert_eq!(msgs[2]["content"][2]["type"], "text");
}

#[test]
fn openai_anthropic_openai_round_trip() {
    let original = openai::decode_request(OPENAI_REQ.as_bytes()).unwrap();
    let to_anthropic = anthropic::encode_request(&original, "claude").unwrap();
    let via = anthropic::decode_request(&to_anthropic.body).unwrap();
    let back = openai::encode_request(&via, "smart").unwrap();
    let again = openai::decode_request(&back.body).unwrap();
    assert_same_semantics(&original, &again);
}

#[test]
fn anthropic_openai_anthropic_round_trip() {
    let original = anthropic::decode_request(ANTHROPIC_REQ.as_bytes()).unwrap();
    let to_openai = openai::encode_request(&original, "gpt-4o").unwrap();
    let body = parse(&to_openai.body);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are a weather assistant.\n\nBe brief."})
    );
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["user"], "user-9");
    assert_eq!(
        body["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/jpeg;base64,/9j/4AAQSkZJRg=="
    );
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "tool", "user"]
    );
    assert_eq!(body["messages"][4]["content"], "Error: service down");
    assert!(to_openai.warnings.iter().any(|w| w.contains("top_k")));

    let via = openai::decode_request(&to_openai.body).unwrap();
    let back = anthropic::encode_request(&via, "claude").unwrap();
    let again = anthropic::decode_request(&back.body).unwrap();
    // The system prompt becomes one string and is_error turns into an "Error: " prefix on the way.
    assert_eq!(again.system_text(), original.system_text());
    assert_eq!(again.tools, original.tools);
    assert_eq!(again.tool_choice, Some(ToolChoice::Required));
    assert_eq!(again.parallel_tool_calls, Some(false));
    assert_eq!(again.stop, original.stop);
    assert_eq!(
        normalized(&again.messages[1].content),
        normalized(&original.messages[1].content)
    );
}

#[test]
fn untranslatable_parameters() {
    let mut body = parse(OPENAI_REQ.as_bytes());
    body["n"] = json!(2);
    let req = openai::decode_request(body.to_string().as_bytes()).unwrap();
    for p in [Protocol::Anthropic, Protocol::Gemini] {
        match encode_request(p, &req, "m") {
            Err(ProtocolError::Unsupported { param, target }) => {
                assert_eq!((param.as_str(), target), ("n", p))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(openai::encode_request(&req, "m").is_ok());
    body["n"] = json!(1);
    body.as_object_mut().unwrap().remove("max_tokens");
    let req = openai::decode_request(body.to_string().as_bytes()).unwrap();
    let enc = anthropic::encode_request(&req, "m").unwrap();
    assert_eq!(
        parse(&enc.body)["max_tokens"],
        anthropic::DEFAULT_MAX_TOKENS
    );
    assert!(!enc.warnings.iter().any(|w| w.contains("`n`")));
}

#[test]
fn request_validation_errors() {
    assert!(matches!(
        openai::decode_request(b"{\"model\":\"m\"}"),
        Err(ProtocolError::MissingField("messages"))
    ));
    assert!(matches!(
        anthropic::decode_request(b"{\"messages\":[]}"),
        Err(ProtocolError::MissingField("model"))
    ));
    let err = openai::decode_request(
        br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("messages[0].content[0].image_url"),
        "{err}"
    );
    assert!(matches!(
        openai::decode_request(b"{\"model\":"),
        Err(ProtocolError::Json { .. })
    ));
    let err = anthropic::encode_request(
        &openai::decode_request(br#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{bad"}}]}]}"#).unwrap(),
        "m",
    )
    .unwrap_err();
    assert!(err.to_string().contains("arguments"), "{err}");
}

#[test]
fn response_format_translation() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
        "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}"#;
    let req = openai::decode_request(body).unwrap();
    let an = anthropic::encode_request(&req, "c").unwrap();
    let an_body = parse(&an.body);
    assert_eq!(
        an_body["output_config"]["format"],
        json!({"type": "json_schema", "schema": {"type": "object"}}),
        "the native field, not an instruction"
    );
    assert!(an_body.get("system").is_none());
    let object = openai::decode_request(
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
    )
    .unwrap();
    let an = anthropic::encode_request(&object, "c").unwrap();
    assert!(parse(&an.body)["system"]
        .as_str()
        .unwrap()
        .contains("JSON object"));
    assert!(!an.warnings.is_empty(), "an emulation is said");
    let ge = parse(&gemini::encode_request(&req, "g").unwrap().body);
    assert_eq!(
        ge["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        ge["generationConfig"]["responseJsonSchema"],
        json!({"type": "object"})
    );
}

/// Anthropic's `output_config.format` and Gemini's JSON schema reach every other protocol as
/// its own native field.
#[test]
fn structured_output_from_anthropic_and_gemini_stays_native() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    let anthropic_body = json!({"model": "c", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}}});
    let req = anthropic::decode_request(&serde_json::to_vec(&anthropic_body).unwrap()).unwrap();
    let oa = parse(&openai::encode_request(&req, "gpt").unwrap().body);
    assert_eq!(oa["response_format"]["type"], "json_schema");
    assert_eq!(oa["response_format"]["json_schema"]["schema"], schema);
    let ge = parse(&gemini::encode_request(&req, "g").unwrap().body);
    assert_eq!(ge["generationConfig"]["responseJsonSchema"], schema);
    let same = parse(&anthropic::encode_request(&req, "c2").unwrap().body);
    assert_eq!(same["output_config"], anthropic_body["output_config"]);

    let gemini_body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema}});
    let req = gemini::decode_request(&serde_json::to_vec(&gemini_body).unwrap()).unwrap();
    let an = parse(&anthropic::encode_request(&req, "c").unwrap().body);
    assert_eq!(an["output_config"]["format"]["schema"], schema);
    let oa = parse(&openai::encode_request(&req, "gpt").unwrap().body);
    assert_eq!(oa["response_format"]["json_schema"]["schema"], schema);
}

#[test]
fn openai_to_gemini_request() {
    let req = openai::decode_request(OPENAI_REQ.as_bytes()).unwrap();
    let enc = gemini::encode_request(&req, "gemini-2.5-flash").unwrap();
    let body = parse(&enc.body);
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "You are a weather assistant."
    );
    let roles: Vec<&str> = body["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user"]);
    assert_eq!(
        body["contents"][0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(
        body["contents"][1]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}})
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"temp": 18, "sky": "cloudy"}})
    );
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    let gen = &body["generationConfig"];
    assert_eq!(
        (gen["maxOutputTokens"].as_u64(), gen["seed"].as_i64()),
        (Some(512), Some(42))
    );
    assert_eq!(gen["stopSequences"], json!(["\n\nEND", "STOP"]));
    // And back: the mock provider reads Gemini requests with decode_request.
    let back = gemini::decode_request(&enc.body).unwrap();
    assert_eq!(back.system_text(), req.system_text());
    assert_eq!(back.tools[0].name, "get_weather");
    assert_eq!(back.messages.len(), 3);
    assert!(
        matches!(&back.messages[2].content[0], ContentPart::ToolResult { call_id, .. } if call_id == "call_0")
    );
}

fn response_fixture(p: Protocol) -> &'static str {
    match p {
        Protocol::OpenAi => include_str!("fixtures/openai_response.json"),
        Protocol::Anthropic => include_str!("fixtures/anthropic_response.json"),
        Protocol::Gemini => include_str!("fixtures/gemini_response.json"),
        Protocol::Responses => include_str!("fixtures/responses_response.json"),
    }
}

#[test]
fn responses_decode() {
    let oa = openai::decode_response(response_fixture(Protocol::OpenAi).as_bytes()).unwrap();
    assert_eq!(oa.finish, FinishReason::ToolCalls);
    assert_eq!(oa.content.len(), 2);
    assert_eq!(
        (
            oa.usage.input_tokens,
            oa.usage.output_tokens,
            oa.usage.cache_read_tokens
        ),
        (82, 47, Some(64))
    );
    let an = anthropic::decode_response(response_fixture(Protocol::Anthropic).as_bytes()).unwrap();
    assert_eq!(an.finish, FinishReason::ToolCalls);
    assert_eq!(
        an.content[0],
        ContentPart::Text("I'll check the weather in both cities.".into())
    );
    assert_eq!((an.usage.input_tokens, an.usage.output_tokens), (572, 91));
    let ge = gemini::decode_response(response_fixture(Protocol::Gemini).as_bytes()).unwrap();
    assert_eq!(ge.finish, FinishReason::ToolCalls);
    assert_eq!((ge.usage.input_tokens, ge.usage.output_tokens), (120, 40));
    // Gemini gives no ids: each call gets its own, never one an earlier answer had.
    let ids: Vec<&str> = ge
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::ToolCall { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let again = gemini::decode_response(response_fixture(Protocol::Gemini).as_bytes()).unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    for part in &again.content {
        if let ContentPart::ToolCall { id, .. } = part {
            assert!(
                id.starts_with("call_") && !ids.contains(&id.as_str()),
                "{id} repeated"
            );
        }
    }
}

fn semantics(r: &ChatResponse) -> (Vec<ContentPart>, FinishReason, u64, u64) {
    (
        normalized(&r.content),
        r.finish.clone(),
        r.usage.input_tokens,
        r.usage.output_tokens,
    )
}

#[test]
fn responses_translate_both_ways() {
    let all = [
        Protocol::OpenAi,
        Protocol::Anthropic,
        Protocol::Gemini,
        Protocol::Responses,
    ];
    for from in all {
        let resp = decode_response(from, response_fixture(from).as_bytes()).unwrap();
        for to in all {
            let body = encode_response(to, &resp);
            let again = decode_response(to, &body).unwrap();
            assert_eq!(semantics(&again), semantics(&resp), "{from} -> {to}");
        }
    }
    let resp = decode_response(
        Protocol::Anthropic,
        response_fixture(Protocol::Anthropic).as_bytes(),
    )
    .unwrap();
    let oa = parse(&openai::encode_response(&resp));
    assert_eq!(oa["object"], "chat.completion");
    assert_eq!(oa["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        oa["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"],
        r#"{"city":"Tokyo"}"#
    );
    assert_eq!(
        oa["usage"],
        json!({"prompt_tokens": 572, "completion_tokens": 91, "total_tokens": 663, "prompt_tokens_details": {"cached_tokens": 100}})
    );
    let resp = decode_response(
        Protocol::OpenAi,
        response_fixture(Protocol::OpenAi).as_bytes(),
    )
    .unwrap();
    let an = parse(&anthropic::encode_response(&resp));
    assert_eq!(an["type"], "message");
    assert_eq!(an["stop_reason"], "tool_use");
    assert_eq!(
        an["content"][0],
        json!({"type": "tool_use", "id": "call_a1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(an["usage"]["input_tokens"], 18);
    assert_eq!(an["usage"]["cache_read_input_tokens"], 64);
}

#[test]
fn stop_sequence_and_refusal_reasons() {
    let body = br##"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"a"}],
        "stop_reason":"stop_sequence","stop_sequence":"%%","usage":{"input_tokens":1,"output_tokens":1}}"##;
    let r = anthropic::decode_response(body).unwrap();
    assert_eq!(r.finish, FinishReason::StopSequence(Some("%%".into())));
    assert_eq!(
        parse(&openai::encode_response(&r))["choices"][0]["finish_reason"],
        "stop"
    );
    let an = parse(&anthropic::encode_response(&r));
    assert_eq!(
        (an["stop_reason"].as_str(), an["stop_sequence"].as_str()),
        (Some("stop_sequence"), Some("%%"))
    );
    let blocked =
        br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#;
    assert_eq!(
        gemini::decode_response(blocked).unwrap().finish,
        FinishReason::ContentFilter
    );
}
