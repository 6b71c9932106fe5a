"""A real MCP server (the official SDK's MCPServer, formerly FastMCP) over Streamable HTTP,
with faults a test switches at run time: `POST /_fault {"mode": "500" | "slow" | "none"}` ("500" fails
the JSON-RPC POSTs, not the GET stream).

Run: python mcp_upstream.py PORT [TOKEN]; with TOKEN, a call without `x-upstream-token: TOKEN`
gets a 401. It prints `listening on http://127.0.0.1:PORT` when ready."""

import asyncio
import json
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("backstop-e2e")
MODE = {"mode": "none"}
TOKEN = sys.argv[2] if len(sys.argv) > 2 else None


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


@server.tool()
async def slow_echo(text: str, seconds: float) -> str:
    """Echoes text after a delay."""
    await asyncio.sleep(seconds)
    return text


inner = server.streamable_http_app(streamable_http_path="/mcp")


async def app(scope, receive, send):
    """The MCP app behind the fault switch."""
    if scope["type"] == "http" and scope["path"] == "/_fault":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        MODE["mode"] = json.loads(body)["mode"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(MODE).encode()})
        return
    if scope["type"] == "http" and scope["path"] == "/mcp":
        if TOKEN and dict(scope["headers"]).get(b"x-upstream-token") != TOKEN.encode():
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"missing x-upstream-token"})
            return
        # JSON-RPC calls (POST) fail; the client's background GET stream is left alone, so
        # how many failures a test sees does not depend on when the SDK opened that stream.
        if MODE["mode"] == "500" and scope["method"] == "POST":
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"internal error"})
            return
        if MODE["mode"] == "slow":
            await asyncio.sleep(30)
    await inner(scope, receive, send)


class Announcing(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        print(f"listening on http://127.0.0.1:{self.config.port}", flush=True)


if __name__ == "__main__":
    config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="on")
    Announcing(config).run()
