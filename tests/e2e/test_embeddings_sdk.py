"""Embeddings through Backstop with the official `openai` SDK: OpenAI-compatible and Gemini
targets (the SDK asks for base64 vectors by default and decodes them), a batch split to fit
Gemini's limit, failover within one embedding space, and `backstop check` refusing a fallback
across spaces."""

import pathlib
import subprocess
import tempfile

import openai
import pytest

from conftest import BINARY, standard_config

EMBEDDINGS = """
[models.embed]
targets = [{{ provider = "oa", model = "text-embedding-3-small" }}]
embedding_space = "small"
fallbacks = ["embed_twin"]
[models.embed_twin]
targets = [{{ provider = "backup", model = "text-embedding-3-small" }}]
embedding_space = "small"
[models.gecko]
targets = [{{ provider = "ge", model = "text-embedding-004" }}]
embedding_space = "gecko"
"""


@pytest.fixture
def gateway(mock, mock2, gateway_factory):
    return gateway_factory(standard_config(mock, mock2, EMBEDDINGS.format()))


def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)


def test_openai_and_gemini_targets_embed_every_input_in_order(gateway):
    texts = ["alpha", "beta", "gamma"]
    openai_side = client(gateway).embeddings.create(model="embed", input=texts, dimensions=6)
    gemini_side = client(gateway).embeddings.create(model="gecko", input=texts, dimensions=6)
    assert [d.index for d in openai_side.data] == [0, 1, 2]
    assert all(len(d.embedding) == 6 for d in openai_side.data)
    assert openai_side.data[0].embedding != openai_side.data[1].embedding
    assert openai_side.usage.prompt_tokens > 0
    # The mock derives a vector from its text alone: both providers give the same ones.
    for a, b in zip(openai_side.data, gemini_side.data):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)


def test_a_batch_over_geminis_limit_is_split(gateway, mock):
    texts = [f"text {i}" for i in range(250)]
    answer = client(gateway).embeddings.create(model="gecko", input=texts, encoding_format="float")
    assert [d.index for d in answer.data] == list(range(250))
    calls = [len(r["body"]["requests"]) for r in mock.requests() if r["path"].endswith(":batchEmbedContents")]
    assert calls == [100, 100, 50]
    direct = client(gateway).embeddings.create(model="embed", input=texts[200:], encoding_format="float")
    for a, b in zip(answer.data[200:], direct.data):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)


def test_float_and_base64_encodings_agree(gateway):
    sdk = client(gateway)
    packed = sdk.embeddings.create(model="gecko", input="x")
    floats = sdk.embeddings.create(model="gecko", input="x", encoding_format="float")
    assert packed.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_a_failing_target_fails_over_within_its_space(gateway, mock, mock2):
    mock.fault(kind="status", status=503, model="text-embedding-3-small")
    raw = client(gateway).embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    assert raw.headers["x-backstop-model"] == "embed_twin"
    assert raw.headers["x-backstop-fallback"] == "true"
    assert len(raw.parse().data) == 2
    assert [r["model"] for r in mock2.requests()] == ["text-embedding-3-small"]


def test_bad_input_is_a_400_naming_the_field(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).embeddings.create(model="embed", input=[], encoding_format="float")
    assert refused.value.body["param"] == "input"


def test_check_refuses_a_fallback_across_spaces(mock, mock2):
    config = standard_config(mock, mock2, EMBEDDINGS.format() + '[models.gecko_fallback]\ntargets = [{ provider = "oa", model = "x" }]\nembedding_space = "gecko"\n')
    config = config.replace('fallbacks = ["embed_twin"]', 'fallbacks = ["gecko_fallback"]')
    path = pathlib.Path(tempfile.mkdtemp()) / "backstop.toml"
    path.write_text(config)
    result = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "models.embed.fallbacks[0]" in result.stderr
    assert "cannot fall back to `gecko_fallback`" in result.stderr


def test_check_prints_the_embedding_space(mock, mock2):
    path = pathlib.Path(tempfile.mkdtemp()) / "backstop.toml"
    path.write_text(standard_config(mock, mock2, EMBEDDINGS.format()))
    result = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "embedding space: small (embeddings fall back only within it)" in result.stdout
