use super::*;
use serde_json::{json, Value};

const OA: Protocol = Protocol::OpenAi;
const AN: Protocol = Protocol::Anthropic;

fn base(protocol: Protocol) -> Value {
    match protocol {
        Protocol::Anthropic => {
            json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
        }
        _ => json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    }
}

/// The base body of `protocol` with the top-level fields of `patch` set (a `null` in `patch`
/// removes the field).
fn with(protocol: Protocol, patch: Value) -> Vec<u8> {
    let mut body = base(protocol);
    for (key, value) in patch.as_object().unwrap() {
        match value {
            Value::Null => body.as_object_mut().unwrap().remove(key),
            _ => body
                .as_object_mut()
                .unwrap()
                .insert(key.clone(), value.clone()),
        };
    }
    body.to_string().into_bytes()
}

fn refused(protocol: Protocol, body: &[u8]) -> InvalidRequest {
    match validate_request(protocol, body) {
        Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(body)),
        Err(error) => error,
    }
}

fn accepted(protocol: Protocol, body: &[u8]) -> Envelope {
    match validate_request(protocol, body) {
        Ok(envelope) => envelope,
        Err(error) => panic!("refused ({error}): {}", String::from_utf8_lossy(body)),
    }
}

/// Each case: a patch of the base body, the `param` it must name and a fragment of its message.
fn assert_refusals(protocol: Protocol, cases: &[(Value, &str, &str)]) {
    for (patch, param, fragment) in cases {
        let error = refused(protocol, &with(protocol, patch.clone()));
        assert_eq!(error.param.as_deref(), Some(*param), "{patch}: {error}");
        assert!(error.message.contains(fragment), "{patch}: {error}");
    }
}

#[test]
fn body_must_be_one_utf8_json_object() {
    for protocol in [OA, AN] {
        for (body, fragment) in [
            (&b"[1]"[..], "must be a JSON object"),
            (b"\"hi\"", "must be a JSON object"),
            (b"{\"model\":", "EOF"),
            (b"{} {}", "trailing characters"),
            (b"", "EOF"),
        ] {
            let error = refused(protocol, body);
            assert_eq!(error.param, None);
            assert!(error.message.contains(fragment), "{error}");
        }
    }
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    for protocol in [OA, AN] {
        let mut body = with(protocol, json!({}));
        let at = body.len() - 10;
        body[at] = 0xff;
        let error = refused(protocol, &body);
        assert_eq!(error.param, None);
        assert_eq!(
            error.message,
            format!("the request body is not valid UTF-8 (invalid byte at offset {at})")
        );
    }
}

#[test]
fn lone_surrogates_are_refused_anywhere() {
    for protocol in [OA, AN] {
        for text in [r"\ud800", r"\udc00", r"a\ud83d b", r"\ud83d\u0041"] {
            let body = String::from_utf8(with(protocol, json!({"extra": {"deep": ["PLACE"]}})))
                .unwrap()
                .replace("PLACE", text);
            let error = refused(protocol, body.as_bytes());
            assert_eq!(error.param, None);
            assert!(
                error
                    .message
                    .starts_with("the request body holds a lone surrogate"),
                "{text}: {error}"
            );
        }
        let paired = String::from_utf8(with(protocol, json!({"x": "PLACE"})))
            .unwrap()
            .replace("PLACE", r"\ud83d\ude00");
        accepted(protocol, paired.as_bytes());
    }
}

#[test]
fn a_top_level_key_given_twice_is_refused() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false,"stream":true}"#;
    let error = refused(OA, body);
    assert_eq!(error.message, "the top-level key `stream` is given twice");
}

#[test]
fn gemini_is_not_a_client_protocol() {
    assert!(validate_request(Protocol::Gemini, &with(OA, json!({}))).is_err());
}

#[test]
fn common_rules_in_both_protocols() {
    let shared = [
        (json!({"model": null}), "model", "is required"),
        (json!({"model": ""}), "model", "must not be empty"),
        (json!({"model": 5}), "model", "must be a string"),
        (json!({"messages": null}), "messages", "is required"),
        (json!({"messages": "hi"}), "messages", "must be an array"),
        (json!({"messages": []}), "messages", "at least one message"),
        (
            json!({"messages": ["hi"]}),
            "messages[0]",
            "must be an object",
        ),
        (
            json!({"messages": [{"content": "hi"}]}),
            "messages[0].role",
            "is required",
        ),
        (
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                {"role": "wizard", "content": "c"}]}),
            "messages[2].role",
            "unknown role \"wizard\"",
        ),
        (
            json!({"messages": [{"role": 7, "content": "hi"}]}),
            "messages[0].role",
            "must be a string",
        ),
        (
            json!({"messages": [{"role": "user"}]}),
            "messages[0].content",
            "is required",
        ),
        (
            json!({"messages": [{"role": "user", "content": 42}]}),
            "messages[0].content",
            "must be a string or an array",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}),
            "messages[0].content[0].type",
            "is required",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "messages[0].content[0].text",
            "is required",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "hologram"}]}]}),
            "messages[0].content[0].type",
            "unknown content",
        ),
        (
            json!({"messages": [{"role": "user", "content": ["x"]}]}),
            "messages[0].content[0]",
            "must be an object",
        ),
        (json!({"max_tokens": 0}), "max_tokens", "positive integer"),
        (json!({"max_tokens": -5}), "max_tokens", "positive integer"),
        (json!({"max_tokens": 1.5}), "max_tokens", "positive integer"),
        (
            json!({"max_tokens": "100"}),
            "max_tokens",
            "positive integer",
        ),
        (
            json!({"temperature": "hot"}),
            "temperature",
            "must be a number",
        ),
        (json!({"temperature": -0.1}), "temperature", "between 0 and"),
        (json!({"top_p": 1.5}), "top_p", "between 0 and 1"),
        (json!({"top_p": true}), "top_p", "must be a number"),
        (json!({"stream": "yes"}), "stream", "must be a boolean"),
        (json!({"stream": 1}), "stream", "must be a boolean"),
        (json!({"tools": {}}), "tools", "must be an array"),
        (
            json!({"tools": ["lookup"]}),
            "tools[0]",
            "must be an object",
        ),
        (json!({"tool_choice": 3}), "tool_choice", "must be"),
    ];
    assert_refusals(OA, &shared);
    assert_refusals(AN, &shared);
}

#[test]
fn openai_rules() {
    assert_refusals(
        OA,
        &[
            (
                json!({"temperature": 2.5}),
                "temperature",
                "between 0 and 2",
            ),
            (
                json!({"max_completion_tokens": 0}),
                "max_completion_tokens",
                "positive integer",
            ),
            (json!({"n": 0}), "n", "positive integer"),
            (json!({"n": "2"}), "n", "positive integer"),
            (
                json!({"presence_penalty": 3}),
                "presence_penalty",
                "between -2 and 2",
            ),
            (json!({"seed": 1.5}), "seed", "must be an integer"),
            (
                json!({"stop": 5}),
                "stop",
                "a string or an array of strings",
            ),
            (json!({"stop": ["a", 1]}), "stop[1]", "must be a string"),
            (
                json!({"stream_options": true}),
                "stream_options",
                "must be an object",
            ),
            (
                json!({"stream_options": {"include_usage": "yes"}}),
                "stream_options.include_usage",
                "must be a boolean",
            ),
            (
                json!({"parallel_tool_calls": "no"}),
                "parallel_tool_calls",
                "must be a boolean",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "42"}]}),
                "messages[0].tool_call_id",
                "is required",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": null}]}),
                "messages[0].content",
                "unless the message has `tool_calls`",
            ),
            (
                json!({"messages": [{"role": "system", "content": [{"type": "image_url",
                    "image_url": {"url": "http://x"}}]}]}),
                "messages[0].content[0].type",
                "unknown content part type \"image_url\"",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url",
                    "image_url": {"detail": "low"}}]}]}),
                "messages[0].content[0].image_url.url",
                "is required",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio",
                    "input_audio": "x"}]}]}),
                "messages[0].content[0].input_audio",
                "must be an object",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c1",
                    "type": "function", "function": {"arguments": "{}"}}]}]}),
                "messages[0].tool_calls[0].function.name",
                "is required",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c1",
                    "type": "function", "function": {"name": "f", "arguments": {}}}]}]}),
                "messages[0].tool_calls[0].function.arguments",
                "must be a string",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": "f"}]}),
                "messages[0].tool_calls",
                "must be an array",
            ),
            (
                json!({"messages": [{"role": "function", "content": "x"}]}),
                "messages[0].name",
                "is required",
            ),
            (
                json!({"tools": [{"function": {"name": "f"}}]}),
                "tools[0].type",
                "is required",
            ),
            (
                json!({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
                "tools[0].type",
                "unknown tool type \"retrieval\"",
            ),
            (
                json!({"tools": [{"type": "function"}]}),
                "tools[0].function",
                "is required",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": ""}}]}),
                "tools[0].function.name",
                "must not be empty",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}),
                "tools[0].function.parameters",
                "must be an object",
            ),
            (
                json!({"tool_choice": "always"}),
                "tool_choice",
                "unknown tool_choice \"always\"",
            ),
            (
                json!({"tool_choice": {"type": "function"}}),
                "tool_choice.function",
                "is required",
            ),
            (
                json!({"tool_choice": {"type": "function", "function": {}}}),
                "tool_choice.function.name",
                "is required",
            ),
            (
                json!({"functions": [{"description": "x"}]}),
                "functions[0].name",
                "is required",
            ),
            (
                json!({"function_call": "maybe"}),
                "function_call",
                "unknown function_call",
            ),
            (
                json!({"response_format": {"type": "yaml"}}),
                "response_format.type",
                "unknown response_format type \"yaml\"",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}),
                "response_format.json_schema.name",
                "is required",
            ),
        ],
    );
}

#[test]
fn anthropic_rules() {
    assert_refusals(
        AN,
        &[
            (json!({"max_tokens": null}), "max_tokens", "is required"),
            (
                json!({"temperature": 1.5}),
                "temperature",
                "between 0 and 1",
            ),
            (json!({"top_k": -1}), "top_k", "non-negative integer"),
            (
                json!({"stop_sequences": "END"}),
                "stop_sequences",
                "must be an array",
            ),
            (
                json!({"stop_sequences": ["END", 2]}),
                "stop_sequences[1]",
                "must be a string",
            ),
            (
                json!({"system": 5}),
                "system",
                "must be a string or an array",
            ),
            (
                json!({"system": [{"type": "image", "source": {}}]}),
                "system[0].type",
                "unknown content block type \"image\"",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].role",
                "unknown role \"tool\"",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image"}]}]}),
                "messages[0].content[0].source",
                "is required",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use",
                    "id": "t1", "name": "f", "input": "{}"}]}]}),
                "messages[0].content[0].input",
                "must be an object",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result",
                    "content": "42"}]}]}),
                "messages[0].content[0].tool_use_id",
                "is required",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result",
                    "tool_use_id": "t1", "content": [{"type": "tool_use"}]}]}]}),
                "messages[0].content[0].content[0].type",
                "unknown content block type \"tool_use\"",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result",
                    "tool_use_id": "t1", "is_error": "no"}]}]}),
                "messages[0].content[0].is_error",
                "must be a boolean",
            ),
            (
                json!({"tools": [{"name": "f"}]}),
                "tools[0].input_schema",
                "is required",
            ),
            (
                json!({"tools": [{"input_schema": {"type": "object"}}]}),
                "tools[0].name",
                "is required",
            ),
            (
                json!({"tools": [{"type": 3}]}),
                "tools[0].type",
                "must be a string",
            ),
            (
                json!({"tool_choice": "auto"}),
                "tool_choice",
                "must be an object",
            ),
            (
                json!({"tool_choice": {"type": "required"}}),
                "tool_choice.type",
                "unknown tool_choice type \"required\"",
            ),
            (
                json!({"tool_choice": {"type": "tool"}}),
                "tool_choice.name",
                "is required",
            ),
            (json!({"metadata": "u1"}), "metadata", "must be an object"),
            (
                json!({"metadata": {"user_id": 5}}),
                "metadata.user_id",
                "must be a string",
            ),
            (
                json!({"thinking": {"budget_tokens": 2048}}),
                "thinking.type",
                "is required",
            ),
        ],
    );
}

/// What the official SDKs send, with every optional field this module checks, and fields it
/// does not know: all accepted.
#[test]
fn sdk_requests_are_accepted() {
    let openai = json!({
        "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "system", "content": "You are helpful.", "name": "sys"},
            {"role": "user", "content": [
                {"type": "text", "text": "What is here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}},
                {"id": "c2", "type": "custom", "custom": {"name": "grammar", "input": "x"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "refusal": null},
            {"role": "assistant", "audio": {"id": "a1"}},
            {"role": "function", "name": "old", "content": null},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "look", "description": "d", "strict": true,
                "parameters": {"type": "object", "properties": {}}}},
            {"type": "custom", "custom": {"name": "grammar"}}
        ],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        "parallel_tool_calls": false, "max_completion_tokens": 100, "max_tokens": null, "n": 1,
        "temperature": 0, "top_p": 1, "presence_penalty": -2, "frequency_penalty": 1.5,
        "seed": -7, "stop": ["\n"], "response_format": {"type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
        "metadata": {"k": "v"}, "service_tier": "auto", "store": false, "user": "u",
        "reasoning_effort": "low", "logprobs": true, "top_logprobs": 2, "prediction": null,
        "web_search_options": {}, "prompt_cache_key": "k", "unknown_future_field": [1, {"a": null}]
    });
    let envelope = accepted(OA, openai.to_string().as_bytes());
    assert_eq!(
        envelope,
        Envelope {
            model: "gpt-4o".into(),
            stream: true,
            include_usage: true,
            max_tokens: Some(100),
            has_stream_options: true,
            model_span: envelope.model_span.clone(),
            may_ask_for_shape: true,
        }
    );
    for choice in [
        json!("auto"),
        json!("none"),
        json!("required"),
        json!({"type": "function", "function": {"name": "look"}}),
        json!({"type": "custom", "custom": {"name": "grammar"}}),
    ] {
        accepted(OA, &with(OA, json!({"tool_choice": choice})));
    }
    accepted(
        OA,
        &with(
            OA,
            json!({"function_call": {"name": "f"}, "functions": [{"name": "f"}]}),
        ),
    );
    accepted(
        OA,
        &with(OA, json!({"stop": "END", "temperature": 2, "stream": null})),
    );

    let anthropic = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": false,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}, "citations": {"enabled": true}},
                {"type": "search_result", "source": "s", "title": "t", "content": []}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "text", "text": "Calling", "citations": null},
                {"type": "tool_use", "id": "t1", "name": "look", "input": {"q": 1}},
                {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
                {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "is_error": false, "content": [
                    {"type": "text", "text": "42"},
                    {"type": "image", "source": {"type": "file", "file_id": "f1"}}
                ]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "plain"},
                {"type": "tool_result", "tool_use_id": "t3"}
            ]},
            {"role": "system", "content": "Mid-conversation instructions."},
            {"role": "assistant", "content": "Sure"}
        ],
        "tools": [
            {"name": "look", "description": "d", "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"}},
            {"type": "custom", "name": "c", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"}
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "metadata": {"user_id": "u1"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "service_tier": "auto", "temperature": 1, "top_p": 0.9, "top_k": 40,
        "stop_sequences": ["END"], "container": null, "output_config": {"effort": "low"},
        "inference_geo": "us", "speed": "fast", "unknown_future_field": {"a": [1]}
    });
    let envelope = accepted(AN, anthropic.to_string().as_bytes());
    assert_eq!(envelope.model, "claude-sonnet-4-5");
    assert!(!envelope.stream);
    assert_eq!(envelope.max_tokens, Some(1024));
    for choice in [
        json!({"type": "any"}),
        json!({"type": "none"}),
        json!({"type": "tool", "name": "look"}),
    ] {
        accepted(AN, &with(AN, json!({"tool_choice": choice})));
    }
    accepted(
        AN,
        &with(
            AN,
            json!({"system": "Be brief.", "thinking": {"type": "adaptive"}}),
        ),
    );
}

/// The envelope read by validation is the one `read_envelope` reads.
#[test]
fn envelope_matches_read_envelope() {
    for body in [
        with(
            OA,
            json!({"stream": true, "max_tokens": 7, "max_completion_tokens": 9}),
        ),
        with(
            OA,
            json!({"stream_options": {"include_usage": false}, "max_completion_tokens": 9}),
        ),
        with(OA, json!({"stream_options": null, "stream": null})),
        with(OA, json!({"stream_options": {}})),
    ] {
        assert_eq!(
            accepted(OA, &body),
            crate::read_envelope(&body).unwrap(),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let body = with(AN, json!({"stream": true}));
    assert_eq!(accepted(AN, &body), crate::read_envelope(&body).unwrap());
}

/// The envelope says whether a top-level key can ask for the answer's shape, so that a request
/// without one is never searched or decoded for it; `null` counts as absent.
#[test]
fn envelope_tells_whether_the_body_may_ask_for_a_shape() {
    let cases = [
        (
            OA,
            json!({"response_format": {"type": "json_object"}}),
            true,
        ),
        (OA, json!({"response_format": null, "tools": null}), false),
        (
            OA,
            json!({"metadata": {"tools": "a key deeper down"}}),
            false,
        ),
        (
            AN,
            json!({"output_config": {"format": {"type": "json_schema", "schema": {}}}}),
            true,
        ),
        (AN, json!({"stream": true}), false),
    ];
    for (protocol, fields, asks) in cases {
        let body = with(protocol, fields);
        let envelope = accepted(protocol, &body);
        assert_eq!(
            envelope.may_ask_for_shape,
            asks,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(envelope, crate::read_envelope(&body).unwrap());
    }
}

#[test]
fn display_names_the_field() {
    let error = refused(
        OA,
        &with(
            OA,
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
            {"role": "wizard", "content": "c"}]}),
        ),
    );
    assert!(
        error
            .to_string()
            .starts_with(r#"messages[2].role: unknown role "wizard""#),
        "{error}"
    );
}

#[test]
fn a_responses_request_for_hosted_tools_is_routed_and_refused_only_by_translation() {
    let body = json!({"model": "m", "input": "news?", "stream": true, "max_output_tokens": 7,
        "tools": [{"type": "web_search_preview"}]})
    .to_string();
    let envelope = validate_request(Protocol::Responses, body.as_bytes()).unwrap();
    assert_eq!(envelope.model, "m");
    assert!(envelope.stream);
    assert_eq!(envelope.max_tokens, Some(7));
    let error = crate::responses::decode_request(body.as_bytes()).unwrap_err();
    assert!(
        matches!(error, crate::ProtocolError::ServerSide(_)),
        "{error}"
    );
    let refusal = invalid_request_of(error);
    assert_eq!(refusal.param.as_deref(), Some("tools[0].type"));
    assert!(refusal.message.contains("web_search_preview"), "{refusal}");
    let nameless = json!({"input": "x", "background": true}).to_string();
    let error = validate_request(Protocol::Responses, nameless.as_bytes()).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("model"));
}

/// `base` of `protocol` with its message's content replaced by `content`, written as is.
fn with_content(protocol: Protocol, content: &str) -> Vec<u8> {
    String::from_utf8(with(protocol, json!({})))
        .unwrap()
        .replace(r#""content":"hi""#, &format!(r#""content":{content}"#))
        .into_bytes()
}

#[test]
fn free_text_with_escapes_is_checked_without_being_decoded() {
    let text = r#""line\nquote\" caf\u00e9 \ud83d\ude00 back\\slash \\ud800 \/""#;
    for protocol in [OA, AN] {
        accepted(protocol, &with_content(protocol, text));
        accepted(
            protocol,
            &with_content(protocol, &format!(r#"[{{"type":"text","text":{text}}}]"#)),
        );
        for (bad, fragment) in [
            (r#""bad \x escape""#, "not valid JSON: invalid escape"),
            (r#""bad \u12G4 hex""#, "not valid JSON: invalid escape"),
            ("\"raw \n newline\"", "not valid JSON: control character"),
            (r#""unterminated"#, "not valid JSON"),
            (r#""\ud800""#, "holds a lone surrogate"),
            (r#""x \udc00 y""#, "holds a lone surrogate"),
            (r#""\ud83d\u0041""#, "holds a lone surrogate"),
            (r#""\ud83d""#, "holds a lone surrogate"),
            (
                r#"[{"type":"text","text":"\ud800"}]"#,
                "holds a lone surrogate",
            ),
            (r#"[{"type":"text","text":"\q"}]"#, "not valid JSON"),
        ] {
            let error = refused(protocol, &with_content(protocol, bad));
            assert_eq!(error.param, None, "{bad}: {error}");
            assert!(error.message.contains(fragment), "{bad}: {error}");
        }
        // A rule still sees a kept value's type.
        let error = refused(protocol, &with_content(protocol, "5"));
        assert_eq!(error.param.as_deref(), Some("messages[0].content"));
        let error = refused(
            protocol,
            &with_content(protocol, r#"[{"type":"text","text":5}]"#),
        );
        assert_eq!(error.param.as_deref(), Some("messages[0].content[0].text"));
    }
    let system = with(AN, json!({"system": "PLACE"}));
    let system = String::from_utf8(system).unwrap();
    accepted(AN, system.replace("PLACE", r"a\nb\u00e9").as_bytes());
    let error = refused(AN, system.replace("PLACE", r"a\ud800").as_bytes());
    assert!(error.message.contains("lone surrogate"), "{error}");
    let tool =
        r#"[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"\udfff"}]}]"#;
    let error = refused(AN, &with_content(AN, tool));
    assert!(error.message.contains("lone surrogate"), "{error}");
}

#[test]
fn text_keys_nested_in_each_other_are_bounded() {
    for depth in [50, 110, 126, 5_000] {
        let content = format!(
            "{}\"x\\ny\"{}",
            r#"{"content":"#.repeat(depth),
            "}".repeat(depth)
        );
        let body = with_content(OA, &format!(r#"[{{"type":"text","text":{content}}}]"#));
        let full = serde_json::from_slice::<Value>(&body);
        match validate_request(OA, &body) {
            // Deep but within serde_json's limit: a text part whose text is not a string.
            Err(error) if full.is_ok() => {
                assert_eq!(error.param.as_deref(), Some("messages[0].content[0].text"))
            }
            Err(error) => assert!(error.message.contains("recursion limit"), "{error}"),
            Ok(_) => panic!("accepted at depth {depth}"),
        }
    }
}
