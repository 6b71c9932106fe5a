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

from conftest import standard_config

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
    """The mock's deterministic answer, asked of the mock directly."""
    client = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    text = client.chat.completions.create(model="probe", messages=messages).choices[0].message.content
    mock.clear()
    return text


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
