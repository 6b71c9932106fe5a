"""The `backstop` command line: check, exit codes, zero-config, graceful stop."""

import signal
import subprocess

import openai

from conftest import BINARY, ROOT, Process, http


def run(*args, env=None):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60, env=env)


def test_check_prints_the_routing_plan_of_the_example():
    result = run("check", "--config", str(ROOT / "backstop.example.toml"))
    assert result.returncode == 0, result.stderr
    assert "model smart" in result.stdout
    assert "fallbacks: gpt -> fast" in result.stdout
    assert "sk-example" not in result.stdout


def test_a_bad_config_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[providers.a]\nkind = "anthropic"\n[models.m]\ntargets = [{ provider = "b", model = "x" }]\n')
    result = run("check", "--config", str(path))
    assert result.returncode == 2
    assert "models.m.targets[0].provider" in result.stderr
    assert "unknown provider `b`" in result.stderr
    result = run("serve", "--config", str(path))
    assert result.returncode == 2


def test_zero_config_without_keys_starts_and_explains(tmp_path):
    env = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "GEMINI_API_KEY": ""}
    gateway = Process(["serve", "--listen", "127.0.0.1:0"], env=env, cwd=tmp_path)
    try:
        assert http("GET", f"{gateway.url}/healthz")[0] == 200
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            raise AssertionError("expected an error")
        except openai.APIStatusError as error:
            assert error.status_code == 503
            assert "OPENAI_API_KEY" in str(error)
    finally:
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(timeout=10) == 0
