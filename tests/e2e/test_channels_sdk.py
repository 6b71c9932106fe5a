"""The cloud channels' wire formats, checked with the official clients: the anthropic SDK's
`AnthropicBedrock` (botocore SigV4, AWS event-stream decoding) and `AnthropicVertex`, and the
openai SDK's `AzureOpenAI`, pointed at `backstop mock` directly and at a gateway in front of it.
"""

import os
from urllib.parse import unquote

import anthropic
import openai
import pytest

from conftest import http, wait_until
from test_mock_sdk import ANSWER

# backstop_mock::BEDROCK_SECRET_ACCESS_KEY: the secret the mock verifies signatures with.
BEDROCK_SECRET = "backstop-mock-secret-access-key"
CLAUDE_ON_BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_ON_VERTEX = "claude-sonnet-4-5@20250929"


def bedrock(mock, secret=BEDROCK_SECRET):
    return anthropic.AnthropicBedrock(
        aws_access_key="AKIDBACKSTOPE2E",
        aws_secret_key=secret,
        aws_region="us-east-1",
        base_url=mock.url,
        max_retries=0,
        timeout=10,
    )


def vertex(mock, token="ya29.e2e-token"):
    return anthropic.AnthropicVertex(
        project_id="backstop-e2e",
        region="us-east5",
        access_token=token,
        base_url=f"{mock.url}/v1",
        max_retries=0,
        timeout=10,
    )


def azure(mock):
    return openai.AzureOpenAI(
        api_key="azure-e2e-key",
        api_version="2024-10-21",
        azure_endpoint=mock.url,
        max_retries=0,
        timeout=10,
    )


def ask(client, model, **extra):
    return client.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}], **extra
    )


@pytest.mark.parametrize("make,model", [(bedrock, CLAUDE_ON_BEDROCK), (vertex, CLAUDE_ON_VERTEX)])
def test_claude_sdks_get_the_answer_and_the_stream(mock, make, model):
    client = make(mock)
    message = ask(client, model)
    assert message.content[0].text == ANSWER
    assert message.usage.output_tokens > 0
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ANSWER
    assert final.stop_reason == "end_turn"
    paths = [r["path"] for r in mock.requests()]
    assert len(paths) == 2, paths


def test_bedrock_paths_and_body_are_the_sdks(mock):
    ask(bedrock(mock), CLAUDE_ON_BEDROCK)
    (request,) = mock.requests()
    # The SDK leaves `:` as it is, the gateway encodes it (`%3A`): Bedrock takes both.
    assert unquote(request["path"]) == f"/model/{CLAUDE_ON_BEDROCK}/invoke"
    # Newer SDKs send an API version date here, the documented value is bedrock-2023-05-31.
    assert request["body"]["anthropic_version"]
    assert "model" not in request["body"]


def test_a_wrong_bedrock_secret_is_the_sdks_permission_error(mock):
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        ask(bedrock(mock, secret="wrong-secret"), CLAUDE_ON_BEDROCK)
    assert "signature we calculated does not match" in str(raised.value)


def test_bedrock_faults_are_the_sdks_typed_errors(mock):
    mock.fault(route="bedrock", kind="rate_limit", count=1)
    with pytest.raises(anthropic.RateLimitError):
        ask(bedrock(mock), CLAUDE_ON_BEDROCK)
    mock.fault(route="bedrock", kind="error_event", at=2, count=1)
    with pytest.raises(anthropic.APIError):
        with bedrock(mock).messages.stream(
            model=CLAUDE_ON_BEDROCK, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            "".join(stream.text_stream)


def test_vertex_faults_are_the_sdks_typed_errors(mock):
    with pytest.raises(anthropic.AuthenticationError):
        ask(vertex(mock, token="not-a-google-token"), CLAUDE_ON_VERTEX)
    mock.fault(route="vertex", kind="rate_limit", count=1)
    with pytest.raises(anthropic.RateLimitError) as raised:
        ask(vertex(mock), CLAUDE_ON_VERTEX)
    assert "RESOURCE_EXHAUSTED" in str(raised.value)
    mock.fault(route="vertex", kind="overloaded", count=1)
    with pytest.raises(anthropic.InternalServerError) as raised:
        ask(vertex(mock), CLAUDE_ON_VERTEX)
    assert raised.value.status_code == 529


def test_azure_sdk_gets_the_answer_the_stream_and_the_content_filter(mock):
    client = azure(mock)
    completion = client.chat.completions.create(
        model="gpt4o-prod", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.choices[0].message.content == ANSWER
    chunks = client.chat.completions.create(
        model="gpt4o-prod",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    paths = [r["path"] for r in mock.requests()]
    assert paths == ["/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"] * 2
    mock.fault(route="azure", kind="content_filter", count=1)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "content_filter"
    assert raised.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    mock.fault(route="azure", kind="rate_limit", retry_after="3", count=1)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "x"}])
    assert raised.value.response.headers["retry-after-ms"] == "3000"


def test_azure_sdk_reads_the_output_filter_and_the_gateway_fails_over(mock, gateway_factory):
    client = azure(mock)
    mock.fault(route="azure", kind="output_filter", count=2)
    completion = client.chat.completions.create(
        model="gpt4o-prod", messages=[{"role": "user", "content": "x"}]
    )
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None
    assert completion.choices[0].model_extra["content_filter_results"]["violence"]["filtered"]
    chunks = list(
        client.chat.completions.create(
            model="gpt4o-prod", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    gateway = gateway_factory(f"""
state = "memory"
[providers.azure]
kind = "azure"
base_url = "{mock.url}"
api_key = "azure-e2e-key"
[providers.openai]
kind = "openai"
base_url = "{mock.url}/v1"
api_key = "sk-e2e"
[models.gpt]
targets = [{{ provider = "azure", model = "gpt4o-prod" }}]
fallbacks = ["gpt-openai"]
[models.gpt-openai]
targets = [{{ provider = "openai", model = "gpt-4o" }}]
""")
    through = openai.OpenAI(api_key="unused", base_url=f"{gateway.url}/v1", max_retries=0, timeout=20)
    for stream in (False, True):
        mock.clear()
        mock.fault(route="azure", kind="output_filter")
        response = through.chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "Say hello"}], stream=stream
        )
        assert response.headers["x-backstop-target"] == "openai/gpt-4o"
        parsed = response.parse()
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
        else:
            text = parsed.choices[0].message.content
        assert text == ANSWER
        assert [r["route"] for r in mock.requests()] == ["azure", "openai"]


def cloud_environment(mock):
    """Only the clouds' standard variables, the endpoints pointing at the mock."""
    blank = [
        "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL", "AZURE_OPENAI_AD_TOKEN", "OPENAI_API_VERSION", "GOOGLE_APPLICATION_CREDENTIALS",
    ]
    return {
        **{name: "" for name in blank},
        "AWS_ACCESS_KEY_ID": "AKIDBACKSTOPZERO",
        "AWS_SECRET_ACCESS_KEY": BEDROCK_SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": mock.url,
        "AZURE_OPENAI_ENDPOINT": mock.url,
        "AZURE_OPENAI_API_KEY": "azure-zero-config-key",
    }


def test_zero_config_from_the_clouds_variables_serves_bedrock_and_azure(mock, tmp_path):
    import subprocess

    from conftest import BINARY, Process

    env = cloud_environment(mock)
    gateway = Process(["serve", "--listen", "127.0.0.1:0"], env=env, cwd=tmp_path)
    try:
        claude = anthropic.Anthropic(api_key="unused", base_url=gateway.url, max_retries=0, timeout=20)
        response = claude.messages.with_raw_response.create(
            model=CLAUDE_ON_BEDROCK, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
        )
        assert response.headers["x-backstop-target"] == f"bedrock/{CLAUDE_ON_BEDROCK}"
        assert response.parse().content[0].text == ANSWER
        gpt = openai.OpenAI(api_key="unused", base_url=f"{gateway.url}/v1", max_retries=0, timeout=20)
        response = gpt.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert response.headers["x-backstop-target"] == "azure/gpt-4o"
        paths = [unquote(r["path"]) for r in mock.requests()]
        assert paths == [
            f"/model/{CLAUDE_ON_BEDROCK}/invoke",
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        ]
    finally:
        gateway.stop()
    result = subprocess.run(
        [BINARY, "check"], capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env}, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"bedrock at {mock.url}, AWS SigV4 in us-east-1" in result.stdout
    assert f"azure at {mock.url}, API key in api-key" in result.stdout
    for secret in (BEDROCK_SECRET, "AKIDBACKSTOPZERO", "azure-zero-config-key"):
        assert secret not in result.stdout + result.stderr


def channels_config(mock):
    return f"""
state = "memory"
[providers.anthropic]
kind = "anthropic"
base_url = "{mock.url}"
api_key = "sk-ant-e2e"
[providers.bedrock]
kind = "bedrock"
base_url = "{mock.url}"
region = "us-east-1"
access_key_id = "AKIDBACKSTOPE2E"
secret_access_key = "{BEDROCK_SECRET}"
[providers.vertex]
kind = "vertex"
base_url = "{mock.url}"
project = "backstop-e2e"
location = "us-east5"
access_token = "ya29.e2e-gateway-token"
[models.claude]
targets = [
  {{ provider = "anthropic", model = "claude-sonnet-4-5-20250929" }},
  {{ provider = "bedrock", model = "{CLAUDE_ON_BEDROCK}" }},
  {{ provider = "vertex", model = "{CLAUDE_ON_VERTEX}" }},
]
[retry]
base_delay = "10ms"
max_delay = "100ms"
[timeouts]
first_byte = "3s"
idle = "2s"
total = "20s"
"""


def test_one_model_over_three_channels_through_the_gateway(mock, gateway_factory):
    gateway = gateway_factory(channels_config(mock))
    client = anthropic.Anthropic(api_key="unused", base_url=gateway.url, max_retries=0, timeout=20)
    mock.fault(route="anthropic", kind="status", status=503)
    mock.fault(route="vertex", kind="status", status=503)
    with client.messages.stream(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        served = stream.response.headers["x-backstop-target"]
    assert text == ANSWER
    assert served == f"bedrock/{CLAUDE_ON_BEDROCK}"
    mock.clear()
    mock.fault(route="anthropic", kind="status", status=503)
    mock.fault(route="bedrock", kind="rate_limit")
    response = client.messages.with_raw_response.create(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert response.headers["x-backstop-target"] == f"vertex/{CLAUDE_ON_VERTEX}"
    assert response.parse().content[0].text == ANSWER


def test_check_shows_each_channel_without_its_secrets(mock, tmp_path):
    import subprocess

    from conftest import BINARY

    path = tmp_path / "backstop.toml"
    path.write_text(channels_config(mock))
    result = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "AWS SigV4 in us-east-1" in result.stdout
    assert "OAuth access token" in result.stdout
    assert BEDROCK_SECRET not in result.stdout and "ya29.e2e-gateway-token" not in result.stdout
    path.write_text(channels_config(mock).replace('project = "backstop-e2e"\n', ""))
    result = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "providers.vertex.project" in result.stderr
