"""The official openai and anthropic SDKs (and plain HTTP for Gemini) against backstop-mock.

Starts `target/debug/backstop-mock --listen 127.0.0.1:0` (override with BACKSTOP_MOCK_BIN),
reads the URL from its first stdout line, and checks that every non-fault response parses
with the SDKs and that faults surface as the SDKs' typed errors.
"""

import json
import os
import pathlib
import subprocess
import urllib.request

import anthropic
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The mock's fixed default answer (backstop_mock::DEFAULT_ANSWER): 60 words in 60 chunks.
ANSWER = (
    "Backstop mock provider answer: this deterministic text exists so that tests can tell a complete "
    "reply from a truncated one. Every word arrives as its own chunk, in order, and the usage numbers "
    "count exactly those chunks. If you are reading all of it, the stream reached its natural end "
    "without being cut, stalled, reset, or silently replaced. All done."
)
TOOL_ARGS = {"location": "Paris", "unit": "celsius"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def mock_url():
    binary = os.environ.get("BACKSTOP_MOCK_BIN", str(ROOT / "target" / "debug" / "backstop-mock"))
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "-q", "-p", "backstop-mock", "--bin", "backstop-mock"], cwd=ROOT, check=True)
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def control(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture()
def mock(mock_url):
    control(mock_url, "DELETE", "/_mock/faults")
    control(mock_url, "DELETE", "/_mock/requests")
    yield mock_url
    control(mock_url, "DELETE", "/_mock/faults")


def add_fault(url, fault):
    control(url, "POST", "/_mock/faults", fault)


@pytest.fixture()
def oai(mock):
    return openai.OpenAI(api_key="sk-test", base_url=mock + "/v1", max_retries=0, timeout=10)


@pytest.fixture()
def ant(mock):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=mock, max_retries=0, timeout=10)


USER = [{"role": "user", "content": "Say something deterministic."}]


# ---------------------------------------------------------------- OpenAI

def test_openai_plain(oai):
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert r.choices[0].message.content == ANSWER
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-mini"
    assert r.usage.completion_tokens == 60
    assert r.usage.prompt_tokens == 7
    assert r.usage.total_tokens == 67
    assert r.system_fingerprint


def test_openai_stream_with_usage(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 60


def test_openai_tools_plain_and_streamed(oai):
    r = oai.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL])
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGS
    assert r.choices[0].finish_reason == "tool_calls"

    stream = oai.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL], stream=True)
    name, args, ids = None, "", set()
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
            if tc.id:
                ids.add(tc.id)
    assert name == "get_weather" and len(ids) == 1
    assert json.loads(args) == TOOL_ARGS

    followup = USER + [
        {"role": "assistant", "tool_calls": [{"id": call.id, "type": "function",
                                               "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    r = oai.chat.completions.create(model="gpt-4o", messages=followup, tools=[WEATHER_TOOL])
    assert r.choices[0].message.content == ANSWER


def test_openai_typed_errors(oai, mock):
    add_fault(mock, {"kind": "status", "status": 429, "retry_after": "2", "count": 1})
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(model="gpt-4o", messages=USER)
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.code == "rate_limit_exceeded"

    add_fault(mock, {"kind": "context_length", "count": 1})
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="gpt-4o", messages=USER)
    assert err.value.code == "context_length_exceeded"

    add_fault(mock, {"kind": "insufficient_quota", "count": 1})
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(model="gpt-4o", messages=USER)
    assert err.value.code == "insufficient_quota"

    for kind, exc in [("unauthorized", openai.AuthenticationError), ("forbidden", openai.PermissionDeniedError),
                      ("unknown_model", openai.NotFoundError)]:
        add_fault(mock, {"kind": kind, "count": 1})
        with pytest.raises(exc):
            oai.chat.completions.create(model="gpt-4o", messages=USER)

    add_fault(mock, {"kind": "status", "status": 503, "count": 1})
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=USER)

    add_fault(mock, {"kind": "reset", "count": 1})
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-4o", messages=USER)

    assert oai.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content == ANSWER
    log = control(mock, "GET", "/_mock/requests")
    assert [e["outcome"] for e in log[:2]] == ["status 429", "status 400"]
    assert log[-2]["outcome"] == "reset"
    assert all(e["headers"]["authorization"] == "***" for e in log)


def test_openai_cut_stream_raises(oai, mock):
    add_fault(mock, {"kind": "cut_after", "events": 10, "count": 1})
    received = ""
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            received += chunk.choices[0].delta.content or ""
    assert ANSWER.startswith(received) and received != ANSWER


def test_openai_error_event_mid_stream(oai, mock):
    add_fault(mock, {"kind": "error_event", "at": 3, "count": 2})
    received = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in oai.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            received += chunk.choices[0].delta.content or ""
    assert type(err.value) is openai.APIError, "the SDK's error for an error data line, not a transport error"
    assert err.value.message == "The server had an error while processing your request. Sorry about that!"
    assert err.value.type == "server_error"
    assert received and ANSWER.startswith(received) and received != ANSWER

    with pytest.raises(openai.InternalServerError) as err:
        oai.chat.completions.create(model="gpt-4o", messages=USER)
    assert err.value.status_code == 500
    assert [e["outcome"] for e in control(mock, "GET", "/_mock/requests")] == ["error event after 3", "status 500"]


def test_openai_wrong_model(oai, mock):
    add_fault(mock, {"kind": "wrong_model", "name": "gpt-4o-2099-12-31", "count": 1})
    r = oai.chat.completions.create(model="gpt-4o", messages=USER)
    assert r.model == "gpt-4o-2099-12-31"


# ---------------------------------------------------------------- Anthropic

def test_anthropic_plain(ant):
    r = ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER)
    assert r.content[0].text == ANSWER
    assert r.stop_reason == "end_turn"
    assert r.model == "claude-mock-1"
    assert r.usage.output_tokens == 60
    assert r.usage.input_tokens == 7


def test_anthropic_stream(ant):
    with ant.messages.stream(model="claude-mock-1", max_tokens=1024, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ANSWER
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 60


def test_anthropic_tools_plain_and_streamed(ant):
    tools = [{"name": "get_weather", "description": "Current weather",
              "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}]
    r = ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER, tools=tools)
    block = r.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == TOOL_ARGS
    assert r.stop_reason == "tool_use"

    with ant.messages.stream(model="claude-mock-1", max_tokens=1024, messages=USER, tools=tools) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == TOOL_ARGS

    followup = USER + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": block.id, "name": "get_weather", "input": TOOL_ARGS}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "18C"}]},
    ]
    r = ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=followup, tools=tools)
    assert r.content[0].text == ANSWER


def test_anthropic_prefill_and_max_tokens(ant, mock):
    words = ANSWER.split(" ")
    prefix = " ".join(words[:10])
    r = ant.messages.create(model="claude-mock-1", max_tokens=1024,
                            messages=USER + [{"role": "assistant", "content": prefix}])
    assert prefix + r.content[0].text == ANSWER
    assert r.usage.output_tokens == 50

    r = ant.messages.create(model="claude-mock-1", max_tokens=5, messages=USER)
    assert r.stop_reason == "max_tokens"
    assert r.content[0].text == " ".join(words[:5])

    add_fault(mock, {"kind": "reject_prefill", "count": 1})
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model="claude-opus-4-6", max_tokens=1024,
                            messages=USER + [{"role": "assistant", "content": prefix}])
    assert "prefill" in str(err.value)


def test_anthropic_typed_errors(ant, mock):
    add_fault(mock, {"route": "anthropic", "kind": "overloaded", "count": 1})
    with pytest.raises(anthropic.APIStatusError) as err:
        ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER)
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"

    add_fault(mock, {"route": "anthropic", "kind": "rate_limit", "retry_after": 3, "count": 1})
    with pytest.raises(anthropic.RateLimitError) as err:
        ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER)
    assert err.value.response.headers["retry-after"] == "3"
    assert err.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"

    add_fault(mock, {"route": "anthropic", "kind": "context_length", "count": 1})
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER)
    assert "prompt is too long" in str(err.value)

    add_fault(mock, {"kind": "status", "status": 500, "count": 1})
    with pytest.raises(anthropic.InternalServerError):
        ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER)


def test_anthropic_overload_as_the_first_stream_event(ant, mock):
    add_fault(mock, {"route": "anthropic", "kind": "error_event", "at": 0, "count": 2})
    with pytest.raises(anthropic.APIStatusError) as err:
        with ant.messages.stream(model="claude-mock-1", max_tokens=1024, messages=USER) as stream:
            "".join(stream.text_stream)
    assert err.value.status_code == 200, "the stream had already answered 200"
    assert err.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    with pytest.raises(anthropic.InternalServerError) as err:
        ant.messages.create(model="claude-mock-1", max_tokens=1024, messages=USER)
    assert err.value.body["error"]["type"] == "api_error"


# ---------------------------------------------------------------- Gemini over plain HTTP

def gemini(url, model, action, body):
    req = urllib.request.Request(f"{url}/v1beta/models/{model}:{action}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "x-goog-api-key": "AIza-test"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def test_gemini_plain_and_sse(mock):
    body = {"contents": [{"role": "user", "parts": [{"text": "Say something deterministic."}]}]}
    r = json.loads(gemini(mock, "gemini-2.0-flash", "generateContent", body))
    assert r["candidates"][0]["content"]["parts"][0]["text"] == ANSWER
    assert r["usageMetadata"]["candidatesTokenCount"] == 60
    raw = gemini(mock, "gemini-2.0-flash", "streamGenerateContent?alt=sse", body)
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == ANSWER
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"

    add_fault(mock, {"route": "gemini", "kind": "rate_limit", "retry_after": "4", "count": 1})
    with pytest.raises(urllib.error.HTTPError) as err:
        gemini(mock, "gemini-2.0-flash", "generateContent", body)
    assert err.value.code == 429
    detail = json.loads(err.value.read())
    assert detail["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_gemini_error_event(mock):
    body = {"contents": [{"role": "user", "parts": [{"text": "Say something deterministic."}]}]}
    add_fault(mock, {"route": "gemini", "kind": "error_event", "at": 2, "count": 2})
    raw = gemini(mock, "gemini-2.0-flash", "streamGenerateContent?alt=sse", body)
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    assert len(events) == 3
    assert events[-1]["error"]["code"] == 500 and events[-1]["error"]["status"] == "INTERNAL"
    with pytest.raises(urllib.error.HTTPError) as err:
        gemini(mock, "gemini-2.0-flash", "generateContent", body)
    assert err.value.code == 500
    assert json.loads(err.value.read())["error"]["status"] == "INTERNAL"
