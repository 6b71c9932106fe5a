"""The Responses API through Backstop with the official clients, unchanged: the `openai` SDK's
`responses.create` and `responses.stream` over every target protocol, tools, JSON-schema
output, `previous_response_id` across providers, and the OpenAI Agents SDK running an agent
with a function tool on its default Responses model and on its Chat Completions model while
the primary target goes down mid-run."""

import json

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from conftest import standard_config

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def gateway(mock, mock2, gateway_factory):
    return gateway_factory(standard_config(mock, mock2))


def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)


@pytest.fixture
def answer(mock):
    """The mock's deterministic answer, asked of the mock directly."""
    direct = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    text = direct.chat.completions.create(model="probe", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    mock.clear()
    return text


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_responses_create(gateway, answer, model):
    raw = client(gateway).responses.with_raw_response.create(model=model, input="Say hello", instructions="Be brief.")
    response = raw.parse()
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == answer
    assert response.instructions == "Be brief."
    assert response.usage.output_tokens > 0
    assert raw.headers["x-backstop-model"] == model


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_responses_stream(gateway, answer, model):
    with client(gateway).responses.stream(model=model, input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == answer
    assert final.output_text == answer
    assert final.status == "completed"


def test_raw_event_stream_has_sequence_numbers(gateway):
    events = list(client(gateway).responses.create(model="claude", input="Say hello", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"


def test_json_schema_output_reaches_the_upstream(gateway, mock):
    schema = {"type": "object", "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]}
    client(gateway).responses.create(
        model="gemini",
        input="Greet me",
        text={"format": {"type": "json_schema", "name": "greeting", "schema": schema, "strict": True}},
    )
    sent = mock.requests()[-1]["body"]
    assert sent["generationConfig"]["responseMimeType"] == "application/json"
    assert sent["generationConfig"]["responseJsonSchema"] == schema


def test_a_conversation_started_on_openai_continues_on_claude(gateway, mock, answer):
    sdk = client(gateway)
    first = sdk.responses.create(model="gpt", input="Weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    # The OpenAI target is down for the next turn: the conversation goes on on Claude.
    mock.fault(route="openai", kind="status", status=503)
    second = sdk.responses.create(
        model="claude",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == answer
    sent = [r for r in mock.requests() if r["path"].endswith("/messages")][-1]["body"]
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert client(gateway).responses.retrieve(second.id).output_text == answer
    client(gateway).responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client(gateway).responses.retrieve(second.id)


def test_errors_come_in_the_responses_error_shape(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model="gpt", input="x", tools=[{"type": "web_search_preview"}])
    assert refused.value.body["param"] == "tools[0].type"
    assert "web_search_preview" in refused.value.body["message"]


set_tracing_disabled(True)

# The mock upstream that the tool below breaks, set by the test that runs the agent.
BROKEN_DURING_RUN = []


@function_tool
def get_weather(location: str, unit: str) -> str:
    """Weather in a place (the mock calls tools with {"location": "Paris", "unit": "celsius"})."""
    # While the agent waits for this tool, its model's primary target goes down.
    for upstream in BROKEN_DURING_RUN:
        upstream.fault(kind="status", status=503)
    return f"sunny in {location}, 21 degrees {unit}"


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_agents_sdk_runs_a_tool_agent_through_a_failover(gateway, mock, mock2, answer, api):
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)
    model = (
        OpenAIResponsesModel(model="gpt", openai_client=sdk)
        if api == "responses"
        else OpenAIChatCompletionsModel(model="gpt", openai_client=sdk)
    )
    agent = Agent(name="weather", instructions="Answer with the weather.", tools=[get_weather], model=model)
    BROKEN_DURING_RUN[:] = [mock]
    try:
        result = Runner.run_sync(agent, "Weather in Paris?")
    finally:
        BROKEN_DURING_RUN.clear()
    assert result.final_output == answer
    tool_outputs = [item for item in result.new_items if item.type == "tool_call_output_item"]
    assert [item.output for item in tool_outputs] == ["sunny in Paris, 21 degrees celsius"]
    # The first turn was served by the primary, the turn after the tool by the fallback.
    assert [r["model"] for r in mock.requests()][0] == "gpt-4o-mini"
    finishing = mock2.requests()
    assert [r["model"] for r in finishing] == ["gpt-4o-backup"]
    last = finishing[0]["body"]["messages"][-1]
    assert last["role"] == "tool" and last["content"] == "sunny in Paris, 21 degrees celsius"
