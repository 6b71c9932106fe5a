"""The Responses API's native passthrough with the official `openai` SDK: a target that speaks
the Responses API itself (`responses = true`) gets the client's request at its own
`/v1/responses`, and the SDK's `responses.create` and `responses.stream` read the upstream's
answer through Backstop, stored by Backstop, rescued by Backstop when the stream breaks."""

import openai
import pytest

from conftest import standard_config

NATIVE = """
[providers.native]
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream-native"
responses = true
[models.native]
targets = [{{ provider = "native", model = "gpt-4.1" }}]
fallbacks = ["claude"]
[models.rescued]
targets = [{{ provider = "native", model = "gpt-4.1" }}]
fallbacks = ["mirror"]
[models.mirror]
targets = [{{ provider = "backup", model = "gpt-4o-backup" }}]
prefill = true
"""


@pytest.fixture
def gateway(mock, mock2, gateway_factory):
    return gateway_factory(standard_config(mock, mock2, NATIVE.format(url=mock.url)))


def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)


@pytest.fixture
def answer(mock):
    """The mock's deterministic answer, asked of the mock directly."""
    direct = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    text = direct.responses.create(model="probe", input="hi").output_text
    mock.clear()
    return text


def forwarded(mock):
    return [r for r in mock.requests() if r["path"] == "/v1/responses"]


def test_create_is_served_by_the_upstreams_responses_api(gateway, mock, answer):
    raw = client(gateway).responses.with_raw_response.create(
        model="native", input="Say hello", instructions="Be brief.", metadata={"run": "1"}
    )
    response = raw.parse()
    assert raw.headers["x-backstop-target"] == "native/gpt-4.1"
    assert response.status == "completed"
    assert response.output_text == answer
    assert response.model == "gpt-4.1"
    assert response.metadata == {"run": "1"}
    assert response.usage.input_tokens > 0 and response.usage.output_tokens == 60
    sent = forwarded(mock)
    assert len(sent) == 1
    assert sent[0]["body"]["model"] == "gpt-4.1"
    assert sent[0]["body"]["instructions"] == "Be brief."
    assert client(gateway).responses.retrieve(response.id).output_text == answer


def test_the_upstreams_typed_events_reach_the_sdk_in_sequence(gateway, mock, answer):
    events = list(client(gateway).responses.create(model="native", input="Say hello", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == answer
    assert events[-1].response.usage.output_tokens == 60
    assert forwarded(mock)[0]["stream"] is True


def test_stream_and_a_follow_up_by_previous_response_id(gateway, mock, answer):
    with client(gateway).responses.stream(model="native", input="Say hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == answer
    follow = client(gateway).responses.create(model="native", input="Again", previous_response_id=final.id)
    assert follow.previous_response_id == final.id
    sent = forwarded(mock)[-1]["body"]
    assert "previous_response_id" not in sent
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]


def test_a_broken_passthrough_stream_is_rescued_within_the_sdks_stream(gateway, mock, mock2, answer):
    mock.fault(kind="cut_after", events=31)
    with client(gateway).responses.stream(model="rescued", input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == answer
    assert final.output_text == answer
    assert final.status == "completed"
    assert len(forwarded(mock)) == 1
    assert len(mock2.requests()) == 1


def test_an_upstream_failure_falls_over_to_anthropic(gateway, mock, answer):
    mock.fault(kind="status", status=500, route="openai")
    raw = client(gateway).responses.with_raw_response.create(model="native", input="Say hello")
    assert raw.headers["x-backstop-target"] == "an/claude-sonnet-4-5"
    assert raw.parse().output_text == answer
    assert any(r["path"] == "/v1/messages" for r in mock.requests())
