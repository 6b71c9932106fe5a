"""Shared fixtures for the end-to-end tests: the real `backstop` binary, started as
processes on ephemeral ports (mock upstreams and the gateway), driven by the official
OpenAI and Anthropic Python SDKs."""

import os
import pathlib
import subprocess
import tempfile
import time

import json
import urllib.error
import urllib.request

import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("BACKSTOP_BIN", str(ROOT / "target" / "debug" / "backstop"))


def http(method, url, body=None, headers=None, timeout=10):
    """A plain HTTP call with the standard library: returns (status, headers, body bytes)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Process:
    """A child process that printed `listening on http://HOST:PORT` as its first stdout line."""

    def __init__(self, args, env=None, cwd=None):
        self.proc = subprocess.Popen(
            [BINARY, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise RuntimeError(f"{args} did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.strip().split("listening on ", 1)[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stderr(self):
        self.stop()
        return self.proc.stderr.read()


class Mock(Process):
    """A `backstop mock` upstream with helpers for its control API."""

    def __init__(self):
        super().__init__(["mock", "--listen", "127.0.0.1:0"])

    def fault(self, **fault):
        status, _, body = http("POST", f"{self.url}/_mock/faults", fault)
        assert status == 200, body

    def clear(self):
        http("DELETE", f"{self.url}/_mock/faults")
        http("DELETE", f"{self.url}/_mock/requests")

    def requests(self):
        status, _, body = http("GET", f"{self.url}/_mock/requests")
        assert status == 200, body
        data = json.loads(body)
        return data["requests"] if isinstance(data, dict) else data


@pytest.fixture(scope="session")
def mocks():
    """Two independent mock providers, shared by the session; faults and logs are reset per test."""
    started = [Mock(), Mock()]
    yield started
    for mock in started:
        mock.stop()


@pytest.fixture
def mock(mocks):
    for m in mocks:
        m.clear()
    yield mocks[0]
    for m in mocks:
        m.clear()


@pytest.fixture
def mock2(mocks, mock):
    return mocks[1]


@pytest.fixture
def gateway_factory():
    """Starts `backstop serve` with the given config text; stops every gateway at the end."""
    started = []

    def start(config_text, env=None, args=()):
        directory = tempfile.mkdtemp()
        path = pathlib.Path(directory) / "backstop.toml"
        path.write_text(config_text)
        gateway = Process(["serve", "--config", str(path), "--listen", "127.0.0.1:0", *args], env=env)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def standard_config(mock, mock2, extra=""):
    """Public models over both protocols and every translation direction, on the two mocks."""
    return f"""
state = "memory"
[providers.oa]
kind = "openai"
base_url = "{mock.url}/v1"
api_key = "sk-upstream-openai"
[providers.an]
kind = "anthropic"
base_url = "{mock.url}"
api_key = "sk-upstream-anthropic"
[providers.ge]
kind = "gemini"
base_url = "{mock.url}"
api_key = "upstream-gemini"
[providers.backup]
kind = "openai"
base_url = "{mock2.url}/v1"
api_key = "sk-upstream-backup"

[models.gpt]
targets = [{{ provider = "oa", model = "gpt-4o-mini" }}]
fallbacks = ["backup"]
[models.claude]
targets = [{{ provider = "an", model = "claude-sonnet-4-5" }}]
[models.gemini]
targets = [{{ provider = "ge", model = "gemini-2.5-flash" }}]
[models.backup]
targets = [{{ provider = "backup", model = "gpt-4o-backup" }}]

[retry]
base_delay = "10ms"
max_delay = "200ms"
[timeouts]
first_byte = "3s"
idle = "2s"
total = "20s"
{extra}
"""


def mock_answer(mock):
    """The mock's deterministic answer, asked of the mock directly (its log cleared after)."""
    client = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "Say hello"}]
    text = client.chat.completions.create(model="probe", messages=messages).choices[0].message.content
    mock.clear()
    assert text and len(text.split()) > 10
    return text


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
