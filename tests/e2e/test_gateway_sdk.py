"""The official SDKs, unchanged, against the real `backstop` binary in front of mock
upstreams: both client protocols, every translation direction, streaming, tools, errors."""

import json

import anthropic
import openai
import pytest

from conftest import http, mock_answer, standard_config

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def gateway(mock, mock2, gateway_factory):
    return gateway_factory(standard_config(mock, mock2))


def oai(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)


def anth(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0, timeout=20)


@pytest.fixture
def answer(mock):
    return mock_answer(mock)


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_openai_sdk_plain(gateway, answer, model):
    raw = oai(gateway).chat.completions.with_raw_response.create(model=model, messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content == answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0
    assert raw.headers["x-backstop-model"] == model
    assert raw.headers["x-backstop-attempts"] == "1"
    assert raw.headers["x-backstop-fallback"] == "false"
    assert raw.headers["x-backstop-tier"] == "full"
    assert raw.headers["x-request-id"]


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_openai_sdk_streaming_with_usage(gateway, answer, model):
    stream = oai(gateway).chat.completions.create(
        model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == answer
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_anthropic_sdk_plain(gateway, answer, model):
    raw = anth(gateway).messages.with_raw_response.create(model=model, max_tokens=1024, messages=HELLO)
    message = raw.parse()
    assert "".join(block.text for block in message.content if block.type == "text") == answer
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0
    expected = {"gpt": "oa/gpt-4o-mini", "claude": "an/claude-sonnet-4-5", "gemini": "ge/gemini-2.5-flash"}
    assert raw.headers["x-backstop-target"] == expected[model]


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_anthropic_sdk_streaming(gateway, answer, model):
    with anth(gateway).messages.stream(model=model, max_tokens=1024, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == answer
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_tool_calls(gateway, model, stream):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    client = oai(gateway)
    if stream:
        calls = {}
        finish = None
        for chunk in client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_OPENAI], stream=True):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or []:
                    call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                    call["id"] = delta.id or call["id"]
                    if delta.function:
                        call["name"] += delta.function.name or ""
                        call["arguments"] += delta.function.arguments or ""
        assert len(calls) == 1
        call = calls[0]
        name, arguments, call_id = call["name"], call["arguments"], call["id"]
    else:
        completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL_OPENAI])
        finish = completion.choices[0].finish_reason
        tool_call = completion.choices[0].message.tool_calls[0]
        name, arguments, call_id = tool_call.function.name, tool_call.function.arguments, tool_call.id
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert isinstance(json.loads(arguments), dict)
    assert call_id
    follow_up = messages + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 C"},
    ]
    final = client.chat.completions.create(model=model, messages=follow_up, tools=[WEATHER_TOOL_OPENAI])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_tool_use(gateway, model, stream):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    client = anth(gateway)
    if stream:
        with client.messages.stream(model=model, max_tokens=512, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC]) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(model=model, max_tokens=512, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC])
    assert message.stop_reason == "tool_use"
    tool_use = next(block for block in message.content if block.type == "tool_use")
    assert tool_use.name == "get_weather"
    assert isinstance(tool_use.input, dict)
    follow_up = messages + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 21 C"}]},
    ]
    final = client.messages.create(model=model, max_tokens=512, messages=follow_up, tools=[WEATHER_TOOL_ANTHROPIC])
    assert final.stop_reason == "end_turn"
    assert final.content[0].text


def test_system_prompt_and_params_reach_a_translated_upstream(gateway, mock):
    oai(gateway).chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be terse."}, *HELLO],
        max_tokens=77,
        temperature=0.3,
        stop=["END"],
    )
    sent = mock.requests()[-1]["body"]
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["max_tokens"] == 77
    assert sent["temperature"] == 0.3
    assert sent["stop_sequences"] == ["END"]
    system = sent["system"]
    assert "Be terse." in (system if isinstance(system, str) else json.dumps(system))


def test_passthrough_rewrites_only_the_model_and_never_forwards_client_credentials(gateway, mock):
    oai(gateway).chat.completions.create(model="gpt", messages=HELLO, seed=7, logit_bias={"50256": -100})
    seen = mock.requests()[-1]
    assert seen["body"]["model"] == "gpt-4o-mini"
    assert seen["body"]["seed"] == 7
    assert seen["body"]["logit_bias"] == {"50256": -100}
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert "client-key" not in json.dumps(headers)


def test_errors_in_the_callers_protocol(gateway):
    status, _, body = http("POST", f"{gateway.url}/v1/chat/completions", b'{"model": "gpt", "messages": [')
    assert status == 400
    assert "error" in json.loads(body) and json.loads(body)["error"]["message"]
    status, _, body = http("POST", f"{gateway.url}/v1/messages", b"not json")
    assert status == 400
    assert json.loads(body)["type"] == "error"

    with pytest.raises(openai.NotFoundError) as not_found:
        oai(gateway).chat.completions.create(model="nope", messages=HELLO)
    assert "gpt" in str(not_found.value) and "claude" in str(not_found.value)
    with pytest.raises(anthropic.NotFoundError):
        anth(gateway).messages.create(model="nope", max_tokens=10, messages=HELLO)


def test_malformed_json_never_reaches_the_upstream(gateway, mock):
    http("POST", f"{gateway.url}/v1/chat/completions", b'{"model": "gpt", ')
    assert mock.requests() == []


def test_body_over_the_limit_is_413(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2, '[server]\nmax_body_size = "2KB"\n'))
    with pytest.raises(openai.APIStatusError) as error:
        oai(gateway).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x" * 5000}])
    assert error.value.status_code == 413
    with pytest.raises(anthropic.APIStatusError) as error:
        anth(gateway).messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "x" * 5000}])
    assert error.value.status_code == 413
    assert mock.requests() == []


def test_client_keys(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2, '[auth]\nclient_keys = ["${GOOD_KEY}"]\n'), env={"GOOD_KEY": "let-me-in"})
    with pytest.raises(openai.AuthenticationError):
        oai(gateway).chat.completions.create(model="gpt", messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError):
        anth(gateway).messages.create(model="claude", max_tokens=10, messages=HELLO)
    good = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="let-me-in", max_retries=0)
    assert good.chat.completions.create(model="gpt", messages=HELLO).choices[0].message.content
    good = anthropic.Anthropic(base_url=gateway.url, api_key="let-me-in", max_retries=0)
    assert good.messages.create(model="claude", max_tokens=10, messages=HELLO).content
    assert "let-me-in" not in gateway.stderr()


def test_fallback_serves_when_the_primary_fails(gateway, mock, mock2):
    mock.fault(route="openai", kind="status", status=503, always=True)
    raw = oai(gateway).chat.completions.with_raw_response.create(model="gpt", messages=HELLO)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-backstop-model"] == "backup"
    assert raw.headers["x-backstop-fallback"] == "true"
    assert raw.headers["x-backstop-tier"] == "reduced"
    assert raw.headers["x-backstop-target"] == "backup/gpt-4o-backup"
    assert int(raw.headers["x-backstop-attempts"]) == 4
    assert len(mock.requests()) == 3
    assert len(mock2.requests()) == 1


def test_models_and_health(gateway):
    ids = [m.id for m in oai(gateway).models.list()]
    assert sorted(ids) == ["backup", "claude", "gemini", "gpt"]
    assert http("GET", f"{gateway.url}/healthz")[0] == 200
    assert http("GET", f"{gateway.url}/readyz")[0] == 200


def test_json_logs_have_one_line_per_request_and_no_secret(mock, mock2, gateway_factory):
    config = standard_config(mock, mock2, '[auth]\nclient_keys = ["client-secret-key"]\nadmin_key = "admin-secret-key"\n')
    gateway = gateway_factory(config, args=["--log-format", "json"])
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-secret-key", max_retries=0)
    mock.fault(route="openai", kind="unauthorized", count=1)
    client.chat.completions.create(model="gpt", messages=HELLO)
    client.chat.completions.create(model="claude", messages=HELLO, stream=True).close()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=HELLO)
    http("GET", f"{gateway.url}/admin/targets", headers={"authorization": "Bearer admin-secret-key"})
    logs = gateway.stderr()
    for secret in ["client-secret-key", "admin-secret-key", "sk-upstream-openai", "sk-upstream-anthropic", "sk-upstream-backup", "Say hello"]:
        assert secret not in logs, f"{secret} leaked into the logs"
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert len(requests) == 3
    served = next(line for line in requests if line["model"] == "gpt")
    assert served["served_by"] == "backup/gpt-4o-backup" and served["attempts"] == 2 and served["fallback"] is True
    assert any(line.get("message") == "circuit opened" for line in lines)
