"""Stream rescue through the official SDKs: a stream broken mid-answer is continued on
another target (or restarted there and compared with the text sent) and the client's text
equals the complete answer exactly."""

import anthropic
import openai

from conftest import mock_answer, standard_config

HELLO = [{"role": "user", "content": "Say hello"}]

RESCUE = """
[providers.backup_anthropic]
kind = "anthropic"
base_url = "{mock2}"
[models.primary_gpt]
targets = [{{ provider = "oa", model = "gpt-4o-mini" }}]
fallbacks = ["continuing"]
[models.continuing]
targets = [{{ provider = "backup", model = "gpt-4o-backup" }}]
prefill = true
[models.strict_gpt]
targets = [{{ provider = "oa", model = "gpt-4o-mini" }}]
fallbacks = ["continuing"]
rescue_restart = "off"
[models.primary_claude]
targets = [{{ provider = "an", model = "claude-sonnet-4-5" }}]
fallbacks = ["backup_claude"]
[models.backup_claude]
targets = [{{ provider = "backup_anthropic", model = "claude-backup" }}]
"""


def streamed_text(client, model):
    """The text and finish reasons of a streamed chat completion."""
    text, finishes = "", []
    for chunk in client.chat.completions.create(model=model, messages=HELLO, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return text, finishes


def start(mock, mock2, gateway_factory):
    return gateway_factory(standard_config(mock, mock2, RESCUE.format(mock2=mock2.url)))


def test_openai_sdk_stream_cut_at_40_of_60_is_completed(mock, mock2, gateway_factory):
    answer = mock_answer(mock)
    gateway = start(mock, mock2, gateway_factory)
    mock.fault(route="openai", kind="cut_after", events=41)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    text, finishes = streamed_text(client, "primary_gpt")
    assert text == answer
    assert finishes == ["stop"]
    assert len(mock2.requests()) == 1


def test_anthropic_sdk_stream_stalled_after_20_is_completed(mock, mock2, gateway_factory):
    answer = mock_answer(mock)
    gateway = start(mock, mock2, gateway_factory)
    mock.fault(route="anthropic", kind="stall", after=22, **{"for": "10s"})
    client = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0)
    with client.messages.stream(model="primary_claude", max_tokens=1024, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == answer
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens >= 60


def test_openai_sdk_sees_a_clean_error_when_nobody_can_continue(mock, mock2, gateway_factory):
    gateway = start(mock, mock2, gateway_factory)
    mock.fault(route="openai", kind="cut_after", events=20)
    mock2.fault(kind="reject_prefill")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    finishes = []
    try:
        for chunk in client.chat.completions.create(model="strict_gpt", messages=HELLO, stream=True):
            finishes += [c.finish_reason for c in chunk.choices if c.finish_reason]
        raise AssertionError("the truncated stream must end with an error")
    except openai.APIError as error:
        assert "failed mid-stream" in str(error)
        assert "prefill" not in str(error).split(";")[0]
    assert finishes == []


def test_openai_sdk_stream_restarted_where_no_target_takes_a_prefill(mock, mock2, gateway_factory):
    answer = mock_answer(mock)
    gateway = start(mock, mock2, gateway_factory)
    mock.fault(route="openai", kind="cut_after", events=20)
    mock2.fault(kind="reject_prefill")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    text, finishes = streamed_text(client, "primary_gpt")
    assert text == answer
    assert finishes == ["stop"]
    restart = mock2.requests()[-1]
    assert restart["body"]["messages"][-1]["role"] == "user"


def test_anthropic_sdk_stream_restarted_where_no_target_takes_a_prefill(mock, mock2, gateway_factory):
    answer = mock_answer(mock)
    gateway = start(mock, mock2, gateway_factory)
    mock.fault(route="anthropic", kind="cut_after", events=25)
    mock2.fault(kind="reject_prefill")
    client = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0)
    with client.messages.stream(model="primary_claude", max_tokens=1024, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == answer
    assert final.stop_reason == "end_turn"
