"""The live dashboard in a real browser: headless Chromium loads `/dashboard` from the real
`backstop` binary. Without the admin key the page asks for it and shows nothing; with it, a
fault injected through the admin API shows the target's breaker open and the tier mix moving
to `reduced`, with no console errors; a screenshot is kept in the test's output."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import http, standard_config

ADMIN_KEY = "adm-dashboard-secret"
CLIENT_KEY = "client-dashboard-secret"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = pathlib.Path(os.environ.get("BACKSTOP_TEST_OUTPUT", tempfile.gettempdir())) / "backstop-dashboard"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (.ci/run installs it)")


def browse(url, *extra, budget_ms=4000):
    """Loads `url` in headless Chromium (`--dump-dom` in `extra` prints the DOM after `budget_ms` of
    page time) and returns (its output, its console log)."""
    profile = tempfile.mkdtemp()
    try:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", *extra, url],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return done.stdout, console


@pytest.fixture
def gateway(mock, mock2, gateway_factory):
    extra = f"""
[auth]
client_keys = ["{CLIENT_KEY}"]
admin_key = "{ADMIN_KEY}"
[circuit_breaker]
failure_threshold = 2
open_for = "60s"
"""
    return gateway_factory(standard_config(mock, mock2, extra))


def ask(gateway):
    body = {"model": "gpt", "messages": [{"role": "user", "content": "Say hello"}]}
    return http("POST", f"{gateway.url}/v1/chat/completions", body, {"authorization": f"Bearer {CLIENT_KEY}"})


def test_without_the_key_the_page_asks_for_it_and_shows_nothing(gateway):
    status, headers, page = http("GET", f"{gateway.url}/dashboard")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for secret in (ADMIN_KEY, CLIENT_KEY, "sk-upstream"):
        assert secret.encode() not in page
    status, _, _ = http("GET", f"{gateway.url}/admin/dashboard")
    assert status == 401
    dom, console = browse(f"{gateway.url}/dashboard", "--dump-dom")
    assert '<form id="login">' in dom, dom  # shown: no `hidden` attribute
    assert '<div id="app" hidden="">' in dom, dom
    assert "data-target=" not in dom
    assert not [line for line in console if "Uncaught" in line], console


def test_a_wrong_key_is_refused_and_shows_nothing(gateway):
    dom, _ = browse(f"{gateway.url}/dashboard#key=not-the-key", "--dump-dom")
    assert "The admin key was refused." in dom
    assert "data-target=" not in dom


def test_an_injected_fault_shows_the_breaker_open_and_reduced_answers(gateway):
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    status, _, body = http("POST", f"{gateway.url}/admin/faults",
                           {"target": "oa/gpt-4o-mini", "kind": "status", "status": 503, "duration": "60s"}, admin)
    assert status == 200, body
    for _ in range(4):
        status, headers, body = ask(gateway)
        assert status == 200, body
        assert headers["x-backstop-tier"] == "reduced"
    state = json.loads(http("GET", f"{gateway.url}/admin/dashboard", headers=admin)[2])
    assert any(t["target"] == "oa/gpt-4o-mini" and t["state"] == "open" for t in state["targets"])

    OUTPUT.mkdir(parents=True, exist_ok=True)
    dom, console = browse(f"{gateway.url}/dashboard#key={ADMIN_KEY}", "--dump-dom", budget_ms=3000)
    assert 'data-target="oa/gpt-4o-mini" data-state="open"' in dom, dom
    assert 'data-model="gpt" data-tiers="reduced 4"' in dom, dom
    assert "tripped:" in dom
    assert '<form id="login" hidden="">' in dom
    assert not [line for line in console if "Uncaught" in line or ":ERROR:CONSOLE" in line], console
    for secret in (ADMIN_KEY, CLIENT_KEY, "sk-upstream"):
        assert secret not in dom

    shot = OUTPUT / "dashboard-outage.png"
    browse(f"{gateway.url}/dashboard#key={ADMIN_KEY}", f"--screenshot={shot}", "--window-size=1400,1000",
           "--hide-scrollbars", budget_ms=3000)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_the_demo_prints_the_dashboard_which_shows_its_outage():
    from conftest import BINARY

    demo = subprocess.Popen([BINARY, "demo"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url, outage = None, None
        for line in demo.stdout:
            if "watch it live: " in line:
                url = line.split("watch it live: ", 1)[1].strip()
            if line.startswith("-- outage"):
                outage = 0
            elif outage is not None:
                outage += 1
                if outage == 3:  # three seconds into the outage act
                    break
        assert url and url.endswith("/dashboard"), "the demo names its dashboard"
        OUTPUT.mkdir(parents=True, exist_ok=True)
        shot = OUTPUT / "dashboard-demo-outage.png"
        dom, console = browse(url, "--dump-dom", budget_ms=2000)
        browse(url, f"--screenshot={shot}", "--window-size=1400,1000", "--hide-scrollbars", budget_ms=2000)
    finally:
        demo.kill()
        demo.wait()
    # Both channels of `smart` fail; each breaker is open but for its brief half-open probes.
    assert re.search(r'data-target="(openai|azure)/gpt-4o" data-state="open"', dom), dom
    assert re.search(r'data-model="smart" data-tiers="[^"]*reduced \d+', dom), dom
    assert not [line for line in console if "Uncaught" in line], console
    assert shot.exists() and shot.stat().st_size > 10_000


def test_the_page_follows_a_fault_within_3_s_and_forces_a_breaker(gateway):
    import asyncio

    from browser import Browser

    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    target = "oa/gpt-4o-mini"
    row = f'document.querySelector(\'tr[data-target="{target}"]\')'

    async def drive():
        async with Browser() as page:
            await page.go(f"{gateway.url}/dashboard")
            assert await page.until("location.pathname === '/dashboard' && !document.getElementById('login').hidden", 5)
            assert await page.js("document.getElementById('app').hidden")
            await page.js("document.getElementById('key').value = " + json.dumps(ADMIN_KEY))
            await page.js("document.querySelector('#login button').click()")
            assert await page.until(f"{row} && {row}.dataset.state === 'closed'", 5)
            assert await page.js("sessionStorage.getItem('backstop-admin-key')") == ADMIN_KEY

            status, _, body = http("POST", f"{gateway.url}/admin/faults",
                                   {"target": target, "kind": "status", "status": 503, "duration": "60s"}, admin)
            assert status == 200, body
            for _ in range(3):
                assert ask(gateway)[0] == 200
            assert await page.until(f"{row}.dataset.state === 'open'", 3), "the breaker shows open within 3 s"
            assert await page.until(
                "document.querySelector('tr[data-model=\"gpt\"]').dataset.tiers.includes('reduced')", 3)

            # Close it from the page (the confirmation accepted), then open it again.
            await page.js("window.confirm = () => true")
            await page.js(f"document.querySelector('[aria-label=\"Close the breaker of {target}\"]').click()")
            assert await page.until(f"{row}.dataset.state === 'closed'", 3)
            await page.js(f"document.querySelector('[aria-label=\"Open the breaker of {target}\"]').click()")
            assert await page.until(f"{row}.dataset.state === 'open'", 3)
            targets = json.loads(http("GET", f"{gateway.url}/admin/targets", headers=admin)[2])["targets"]
            assert [t["state"] for t in targets if t["target"] == target] == ["open"]
            # A refused confirmation does nothing.
            await page.js("window.confirm = () => false")
            await page.js(f"document.querySelector('[aria-label=\"Close the breaker of {target}\"]').click()")
            await asyncio.sleep(1.5)
            assert await page.js(f"{row}.dataset.state") == "open"
            assert page.errors == [], page.errors

    asyncio.run(drive())
