"""The durable queue through the official OpenAI SDK and the real binary: a client asks with
`Prefer: respond-async`, gets the 202, polls `GET /v1/backstop/jobs/{id}` while the provider fails,
and reads the answer once it is back, for chat completions and the Responses API; in SQLite mode a
job acknowledged before the gateway is killed completes after a restart."""

import json
import time

import openai
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from conftest import standard_config, wait_until

LATER = """
[models.later]
targets = [{ provider = "oa", model = "gpt-4o-mini" }]
[circuit_breaker]
open_for = "300ms"
"""

ASYNC = {"Prefer": "respond-async"}


def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)


def queued(raw):
    """The job id of a 202 answer, as a client reads it from the raw response."""
    assert raw.status_code == 202, raw.http_response.text
    assert raw.headers["x-backstop-tier"] == "queued"
    job = raw.http_response.json()
    assert job["status"] == "queued"
    assert raw.headers["location"] == f"/v1/backstop/jobs/{job['id']}"
    return job["id"]


def poll(sdk, job_id, timeout=30.0):
    """Polls the job the way a client loop would, until it is finished."""
    deadline = time.monotonic() + timeout
    while True:
        job = sdk.get(f"/backstop/jobs/{job_id}", cast_to=object)
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def asked(mock, content):
    """The mock's log of requests about `content`."""
    return [r for r in mock.requests() if content in json.dumps(r)]


def test_a_respond_async_request_is_answered_through_its_job_once_the_provider_is_back(mock, mock2, gateway_factory):
    gateway = gateway_factory(standard_config(mock, mock2, LATER))
    sdk = client(gateway)
    mock.fault(kind="status", status=503)

    chat_id = queued(
        sdk.chat.completions.with_raw_response.create(
            model="later", messages=[{"role": "user", "content": "queued chat"}], extra_headers=ASYNC
        )
    )
    response_id = queued(
        sdk.responses.with_raw_response.create(model="later", input="queued response", extra_headers=ASYNC)
    )
    assert wait_until(lambda: len(asked(mock, "queued chat")) >= 1, timeout=10), "the worker tries while it fails"
    assert sdk.get(f"/backstop/jobs/{chat_id}", cast_to=object)["status"] in ("queued", "running")

    mock.clear()
    chat = poll(sdk, chat_id)
    assert chat["status"] == "done", chat
    assert chat["status_code"] == 200
    answer = ChatCompletion.model_validate(chat["result"])
    assert answer.choices[0].message.content

    responded = poll(sdk, response_id)
    assert responded["status"] == "done", responded
    # Read as the SDK reads an answer it receives: built without strict validation.
    answer = Response.construct(**responded["result"])
    assert answer.id.startswith("resp_")
    assert answer.output_text

    try:
        sdk.get("/backstop/jobs/job_unknown", cast_to=object)
        raise AssertionError("an unknown job must be a 404")
    except openai.NotFoundError as error:
        assert error.status_code == 404


def test_a_job_acknowledged_before_a_kill_completes_after_a_restart(mock, mock2, gateway_factory, tmp_path):
    durable = standard_config(mock, mock2, LATER).replace(
        'state = "memory"', f'state = "sqlite:{tmp_path / "state.db"}"'
    )
    first = gateway_factory(durable)
    mock.fault(kind="status", status=503)
    job_id = queued(
        client(first).chat.completions.with_raw_response.create(
            model="later", messages=[{"role": "user", "content": "survive a restart"}], extra_headers=ASYNC
        )
    )
    first.proc.kill()
    first.proc.wait()

    mock.clear()
    second = gateway_factory(durable)
    job = poll(client(second), job_id)
    assert job["status"] == "done", job
    assert ChatCompletion.model_validate(job["result"]).choices[0].message.content
    answered = [r for r in asked(mock, "survive a restart") if r.get("outcome") == "ok"]
    assert len(answered) == 1, answered
