"""Structured output through the official SDKs: an answer that breaks the schema is corrected by
Backstop before the client sees it, and the SDK's own parsing gets a valid object."""

import anthropic
import openai
import pydantic

from conftest import standard_config

CHECKED = """
[models.gpt_checked]
targets = [{ provider = "oa", model = "gpt-4o-mini" }]
structured = { max_corrections = 2 }
[models.claude_checked]
targets = [{ provider = "an", model = "claude-sonnet-4-5" }]
structured = { max_corrections = 2 }
"""


class Count(pydantic.BaseModel):
    n: int


ASK = [{"role": "user", "content": "How many?"}]


def test_openai_sdk_parse_gets_the_corrected_answer(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2, CHECKED))
    mock.fault(route="openai", kind="answer", text='{"n": "three"}', count=1)
    mock.fault(route="openai", kind="answer", text='{"n": 3}')
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.parse(model="gpt_checked", messages=ASK, response_format=Count)
    assert raw.headers["x-backstop-corrections"] == "1"
    completion = raw.parse()
    assert completion.choices[0].message.parsed == Count(n=3)
    correction = mock.requests()[-1]["body"]["messages"][-1]["content"]
    assert correction.startswith("Your previous answer did not match the schema")


def test_anthropic_sdk_output_format_gets_the_corrected_answer(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2, CHECKED))
    mock.fault(route="anthropic", kind="answer", text="Three, I think.", count=1)
    mock.fault(route="anthropic", kind="answer", text='{"n": 3}')
    client = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}
    raw = client.messages.with_raw_response.create(
        model="claude_checked", max_tokens=100, messages=ASK,
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
    )
    assert raw.headers["x-backstop-corrections"] == "1"
    message = raw.parse()
    assert Count.model_validate_json(message.content[0].text) == Count(n=3)
