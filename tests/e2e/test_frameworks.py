"""Agent frameworks through Backstop, unchanged but for their base URL: LangChain's `ChatOpenAI`
and `ChatAnthropic` and pydantic-ai's OpenAI and Anthropic models, each on a model served over
the other protocol too, while the upstream fails the first call. The framework sees one clean
answer: a tool call it can run, the turn after the tool result, a stream, a typed output."""

import anthropic
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from conftest import mock_answer, standard_config

# The mock's configured tool arguments (see docs/mock.md).
PARIS = {"location": "Paris", "unit": "celsius"}


class Weather(BaseModel):
    location: str
    unit: str


@tool
def get_weather(location: str, unit: str) -> str:
    """Weather in a location."""
    return f"sunny in {location}"


@pytest.fixture
def gateway(mock, mock2, gateway_factory):
    return gateway_factory(standard_config(mock, mock2))


@pytest.fixture
def answer(mock):
    return mock_answer(mock)


def langchain(protocol, model, gateway):
    # The frameworks' own retries are off: what recovers is Backstop.
    if protocol == "openai":
        return ChatOpenAI(model=model, base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)
    return ChatAnthropic(model=model, base_url=gateway.url, api_key="client-key", max_retries=0, timeout=20)


def outcomes(mock):
    return [r["outcome"] for r in mock.requests()]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_langchain_tool_turns_and_stream_through_a_failing_upstream(gateway, mock, answer, protocol, model):
    llm = langchain(protocol, model, gateway)
    mock.fault(kind="status", status=503, count=1)
    question = HumanMessage("Weather in Paris?")
    call = llm.bind_tools([get_weather]).invoke([question])
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [("get_weather", PARIS)]
    assert outcomes(mock)[0] == "status 503" and outcomes(mock)[-1] == "ok"

    result = get_weather.invoke(call.tool_calls[0]["args"])
    reply = llm.bind_tools([get_weather]).invoke(
        [question, call, ToolMessage(result, tool_call_id=call.tool_calls[0]["id"])]
    )
    assert reply.content == answer and not reply.tool_calls

    mock.fault(kind="status", status=503, count=1)
    assert "".join(str(chunk.content) for chunk in llm.stream("hi")) == answer


def pydantic_ai_model(protocol, model, gateway):
    # Clients of the SDKs with their retries off, as in `langchain` above.
    if protocol == "openai":
        sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)
        return OpenAIChatModel(model, provider=OpenAIProvider(openai_client=sdk))
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0, timeout=20)
    return AnthropicModel(model, provider=AnthropicProvider(anthropic_client=sdk))


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_pydantic_ai_typed_output_and_tool_agent_through_a_failing_upstream(gateway, mock, answer, protocol, model):
    llm = pydantic_ai_model(protocol, model, gateway)
    mock.fault(kind="status", status=503, count=1)
    assert Agent(llm, output_type=Weather).run_sync("Weather in Paris?").output == Weather(**PARIS)
    assert outcomes(mock)[0] == "status 503"

    asked = []
    agent = Agent(llm)

    @agent.tool_plain
    def weather(location: str, unit: str) -> str:
        """Weather in a location."""
        asked.append({"location": location, "unit": unit})
        return f"sunny in {location}"

    mock.fault(kind="status", status=503, count=1)
    assert agent.run_sync("Weather in Paris?").output == answer
    assert asked == [PARIS]


def test_a_conversation_gemini_served_continues_on_anthropic(gateway, mock, answer):
    """Gemini gives its tool calls no ids; the ids Backstop makes up never repeat, so the same
    conversation, two tool turns later, is accepted by Anthropic (which refuses repeated ids;
    so does the mock)."""
    tools = [get_weather]
    gemini = langchain("openai", "gemini", gateway).bind_tools(tools)
    history = []
    for question in ["Weather in Paris?", "And in Tokyo?"]:
        # Each question asked on its own, so that Gemini answers each with a tool call.
        call = gemini.invoke([HumanMessage(question)])
        assert [c["name"] for c in call.tool_calls] == ["get_weather"]
        history += [HumanMessage(question), call, ToolMessage("sunny", tool_call_id=call.tool_calls[0]["id"])]
    ids = [m.tool_calls[0]["id"] for m in history if getattr(m, "tool_calls", None)]
    assert len(set(ids)) == 2, ids
    reply = langchain("openai", "claude", gateway).bind_tools(tools).invoke(history)
    assert reply.content == answer


def test_repeated_tool_call_ids_in_a_history_are_made_unique_for_anthropic(gateway, mock, answer):
    """A history that already repeats an id (as another gateway, or a provider numbering each
    answer's calls from 0, left it) is sent to Anthropic with each call renamed and its result
    following it."""
    def turn(question, result):
        call = {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        return [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_0", "content": result},
        ]

    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)
    messages = turn("Paris?", "sunny") + turn("Tokyo?", "rainy")
    completion = sdk.chat.completions.create(model="claude", messages=messages)
    assert completion.choices[0].message.content == answer
    sent = mock.requests()[-1]["body"]["messages"]
    uses = [b for m in sent for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
    results = [b for m in sent for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert len({u["id"] for u in uses}) == 2
    assert [r["tool_use_id"] for r in results] == [u["id"] for u in uses]
    assert [r["content"][0]["text"] for r in results] == ["sunny", "rainy"]
