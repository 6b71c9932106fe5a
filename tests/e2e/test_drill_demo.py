"""`backstop demo` and `backstop drill` as a user runs them: the real binary, real processes."""

import json
import subprocess
import time

from conftest import BINARY, standard_config

SHORT_BREAKER = """
[circuit_breaker]
failure_threshold = 2
open_for = "300ms"
success_threshold = 1
"""


def run(*args, timeout=90):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)


def test_the_demo_runs_in_under_a_minute_and_names_the_failover():
    started = time.monotonic()
    result = run("demo", timeout=75)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"
    out = result.stdout
    for act in ("-- healthy:", "-- rate limits:", "-- outage:", "-- recovery:", "-- api down:", "-- api back:"):
        assert act in out, out
    assert "failover: anthropic/claude-sonnet-4-5 served" in out, out
    assert "failover: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0 served" in out, out
    assert "breakers:" in out and "openai/gpt-4o open" in out, out
    assert "Backstop drill:" in out and "success rate" in out, out


def test_a_drill_with_json_reports_figures_the_mocks_agree_with(mock, mock2, tmp_path):
    path = tmp_path / "backstop.toml"
    path.write_text(standard_config(mock, mock2, SHORT_BREAKER))
    result = run(
        "drill", "--config", str(path), "--target", "oa/gpt-4o-mini",
        "--rate", "20", "--duration", "3s", "--fault-at", "1s", "--fault-for", "1s",
        "--fault", "status:503", "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "gpt"
    assert report["targets"] == ["oa/gpt-4o-mini"]
    assert report["requests"] == 60
    assert report["success_rate"] == 1.0
    assert report["failover_target"] == "backup/gpt-4o-backup"
    assert 0 < report["failover_ms"] < 1000
    assert report["recovery_ms"] is not None
    assert report["attempts_per_request"] >= 1.0
    for phase in ("before", "during", "after"):
        assert report["phases"][phase]["p50_ms"] <= report["phases"][phase]["p99_ms"]
    primary_calls = [r for r in mock.requests() if r["model"] == "gpt-4o-mini"]
    backup_calls = [r for r in mock2.requests() if r["model"] == "gpt-4o-backup"]
    assert len(primary_calls) == report["served_by"]["oa/gpt-4o-mini"]
    assert len(backup_calls) == report["served_by"]["backup/gpt-4o-backup"]


def test_a_drill_without_a_gateway_is_a_usage_error():
    result = run("drill", "--target", "oa/gpt-4o-mini")
    assert result.returncode == 2
    assert "--config" in result.stderr and "--url" in result.stderr
