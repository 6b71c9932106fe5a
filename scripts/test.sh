#!/usr/bin/env bash
# Runs the whole test suite: Rust unit, integration and doc tests, then the end-to-end
# tests that drive the real `backstop` binary with the official OpenAI and Anthropic SDKs
# and the OpenAI Agents SDK.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import openai, anthropic, pytest, boto3, google.auth, agents, mcp, websockets, opentelemetry.proto, langchain_openai, langchain_anthropic, pydantic_ai" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
fi

cargo test --workspace   # also builds the binaries the end-to-end tests start
python3 -m pytest tests/e2e -q
