"""A headless Chromium driven over the DevTools protocol (a websocket): navigate, evaluate
JavaScript in the page, and collect console errors and uncaught exceptions."""

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import urllib.request

import websockets

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Browser:
    """One page of a headless Chromium; use as `async with Browser() as page:`."""

    async def __aenter__(self):
        self.profile = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={self.profile}",
             "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        endpoint = None
        for line in self.proc.stderr:
            if "DevTools listening on " in line:
                endpoint = line.split("DevTools listening on ", 1)[1].strip()
                break
        assert endpoint, "chromium did not open its DevTools endpoint"
        port = endpoint.split(":")[2].split("/")[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self.socket = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)
        self.errors = []
        await self.send("Runtime.enable")
        await self.send("Page.enable")
        return self

    async def __aexit__(self, *exc):
        await self.socket.close()
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def send(self, method, **params):
        """Sends one command and returns its result, noting console errors seen meanwhile."""
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 20))
            if message.get("method") == "Runtime.exceptionThrown":
                self.errors.append(message["params"]["exceptionDetails"].get("text", "exception"))
            if message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                self.errors.append(json.dumps(message["params"]["args"]))
            if message.get("id") == ident:
                assert "error" not in message, message
                return message["result"]

    async def go(self, url):
        await self.send("Page.navigate", url=url)

    async def js(self, expression):
        """The value of `expression` in the page (awaited if it is a promise)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(result["exceptionDetails"])
        return result["result"].get("value")

    async def until(self, expression, timeout):
        """Polls `expression` until it is truthy (an expression that throws, e.g. on a page still
        loading, is not yet); returns whether it became so within `timeout` seconds."""
        guarded = f"(() => {{ try {{ return !!({expression}); }} catch (error) {{ return false; }} }})()"
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if await self.js(guarded):
                return True
            await asyncio.sleep(0.05)
        return bool(await self.js(guarded))
