"""The MCP proxy (`[mcp.NAME]` at `/mcp/NAME`) driven by the official MCP Python SDK as the client,
in front of a real MCP server written with the same SDK (tests/e2e/mcp_upstream.py), under faults:
the server answering 500, too slow, killed and restarted."""

import asyncio
import pathlib
import socket
import subprocess
import sys
import time

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from conftest import http, wait_until

UPSTREAM = pathlib.Path(__file__).with_name("mcp_upstream.py")
CLIENT_KEY = "ck-mcp-e2e"
UPSTREAM_SECRET = "mcp-upstream-secret-42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """The MCP server as a child process on a fixed port (so that it can be restarted there)."""

    def __init__(self):
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(UPSTREAM), str(self.port), UPSTREAM_SECRET], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self.proc.stdout.readline()
        assert "listening on" in line, line

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def fault(self, mode):
        status, _, body = http("POST", f"http://127.0.0.1:{self.port}/_fault", {"mode": mode})
        assert status == 200, body


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.kill()


@pytest.fixture
def gateway(upstream, gateway_factory):
    return gateway_factory(
        f"""
state = "memory"
[auth]
client_keys = ["{CLIENT_KEY}"]
[mcp.calc]
url = "http://127.0.0.1:{upstream.port}/mcp"
timeouts = {{ first_byte = "1500ms", total = "10s" }}
retry = {{ max_attempts = 3, base_delay = "10ms", max_delay = "50ms" }}
circuit_breaker = {{ failure_threshold = 3, open_for = "1s" }}
headers = {{ "x-upstream-token" = "{UPSTREAM_SECRET}" }}
"""
    )


async def session_run(url, steps):
    """Opens an MCP session through the gateway and runs `steps(session)`."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await steps(session)


def run(gateway, steps):
    return asyncio.run(asyncio.wait_for(session_run(f"{gateway.url}/mcp/calc", steps), 30))


def text_of(result):
    return " ".join(part.text for part in result.content)


def metrics(gateway):
    return http("GET", f"{gateway.url}/metrics")[2].decode()


def counter(text, labels):
    for line in text.splitlines():
        if line.startswith("backstop_tool_calls_total{" + labels + "}"):
            return float(line.rsplit(" ", 1)[1])
    return 0


def test_tools_list_and_call_through_the_proxy(gateway):
    async def steps(session):
        tools = await session.list_tools()
        called = await session.call_tool("add", {"a": 2, "b": 3})
        return tools, called

    tools, called = run(gateway, steps)
    assert {tool.name for tool in tools.tools} == {"add", "slow_echo"}
    assert not called.is_error
    assert text_of(called) == "5"
    assert 'backstop_tool_calls_total{tool="mcp/calc",outcome="success",class="none"}' in metrics(gateway)


def test_the_clients_key_is_required(gateway):
    status, _, body = http("POST", f"{gateway.url}/mcp/calc", {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 401, body
    status, _, body = http(
        "POST", f"{gateway.url}/mcp/calc", b"{not json", headers={"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert status == 400
    assert b"-32700" in body


def test_a_500ing_server_gives_an_error_result_then_its_breaker_answers_at_once(gateway, upstream):
    async def steps(session):
        upstream.fault("500")
        failed = await session.call_tool("add", {"a": 1, "b": 1})
        try:
            await session.list_tools()
            listed = None
        except Exception as error:  # the SDK raises the JSON-RPC error
            listed = str(error)
        instant = await session.call_tool("add", {"a": 1, "b": 1})
        return failed, listed, instant

    failed, listed, instant = run(gateway, steps)
    assert failed.is_error
    assert "`calc` is unavailable (transient: status 500)" in text_of(failed)
    assert listed is not None and "unavailable" in listed
    # The open breaker answers without calling the server (counted as rejected below).
    assert instant.is_error
    assert "circuit open" in text_of(instant)
    text = metrics(gateway)
    # tools/call is not retried (it may have side effects); tools/list is, until the third
    # failure in a row opens the breaker.
    assert counter(text, 'tool="mcp/calc",outcome="failure",class="transient"') == 3
    assert counter(text, 'tool="mcp/calc",outcome="rejected",class="breaker_open"') >= 1
    logs = gateway.stderr()
    assert "circuit opened" in logs and "mcp/calc" in logs
    assert UPSTREAM_SECRET not in logs and UPSTREAM_SECRET not in text


def test_a_slow_server_times_out_into_an_error_result(gateway, upstream):
    async def steps(session):
        upstream.fault("slow")
        started = time.monotonic()
        result = await session.call_tool("add", {"a": 1, "b": 1})
        return result, time.monotonic() - started

    result, elapsed = run(gateway, steps)
    assert result.is_error
    assert "unavailable: no answer within 1.5s" in text_of(result)
    assert elapsed < 5


def test_a_killed_server_gives_error_results_and_a_restarted_one_serves_again(gateway, upstream):
    async def steps(session):
        upstream.kill()
        return await session.call_tool("add", {"a": 4, "b": 4})

    result = run(gateway, steps)
    assert result.is_error
    # The SDK's background GET stream reconnects too, and its failures may open the breaker first.
    text = text_of(result)
    assert "cannot connect" in text or "circuit open" in text, text

    upstream.start()

    def serves_again():
        try:
            called = run(gateway, lambda session: session.call_tool("add", {"a": 4, "b": 4}))
        except Exception:
            return False
        return not called.is_error and text_of(called) == "8"

    assert wait_until(serves_again, timeout=10)


def test_a_server_killed_during_a_tool_call_gives_an_error_result(gateway, upstream):
    async def steps(session):
        call = asyncio.create_task(session.call_tool("slow_echo", {"text": "hi", "seconds": 1.0}))
        await asyncio.sleep(0.4)
        upstream.kill()
        return await call

    result = run(gateway, steps)
    assert result.is_error
    # The server's event stream had begun: the gateway ends it with the error result itself.
    text = text_of(result)
    assert "`calc` is unavailable (the stream" in text, text
