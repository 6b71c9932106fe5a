"""The cached tier and idempotency keys through the official SDKs and the real binary: an answer
first given to the OpenAI SDK is streamed from the cache to the Anthropic SDK while the provider is
down, and a step repeated with the same Idempotency-Key is replayed without an upstream call."""

import anthropic
import openai

from conftest import standard_config, wait_until

KEPT = """
[models.kept]
targets = [{ provider = "oa", model = "gpt-4o-mini" }]
cache = { ttl = "1h", serve = "on_failure" }
"""

ASK = [{"role": "user", "content": "Summarise the plan"}]


def test_a_cached_answer_reaches_the_anthropic_sdk_as_a_stream_while_the_provider_is_down(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2, KEPT))
    oa = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    fresh = oa.chat.completions.with_raw_response.create(model="kept", max_tokens=64, messages=ASK)
    assert fresh.headers["x-backstop-tier"] == "full"
    text = fresh.parse().choices[0].message.content

    mock.fault(kind="status", status=503)
    an = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0)
    seen = {}

    def cached():
        with an.messages.with_streaming_response.create(model="kept", max_tokens=64, messages=ASK, stream=True) as raw:
            seen["tier"] = raw.headers.get("x-backstop-tier")
            seen["age"] = raw.headers.get("x-backstop-cache-age")
            seen["text"] = "".join(
                event.delta.text for event in raw.parse() if event.type == "content_block_delta"
            )
        return seen["tier"] == "cached"

    assert wait_until(cached), seen
    assert seen["text"] == text
    assert int(seen["age"]) < 60


def test_a_repeated_step_is_replayed_without_an_upstream_call(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    key = {"Idempotency-Key": "task-7-step-3"}
    first = client.chat.completions.with_raw_response.create(model="gpt", messages=ASK, extra_headers=key)
    assert "x-backstop-idempotent-replay" not in first.headers
    again = client.chat.completions.with_raw_response.create(model="gpt", messages=ASK, extra_headers=key)
    assert again.headers["x-backstop-idempotent-replay"] == "true"
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    streamed = client.chat.completions.create(model="gpt", messages=ASK, extra_headers=key, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == first.parse().choices[0].message.content
    assert len(mock.requests()) == 1

    try:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "Something else"}], extra_headers=key)
        raise AssertionError("a reused key with another body must fail")
    except openai.UnprocessableEntityError as error:
        assert error.status_code == 422
