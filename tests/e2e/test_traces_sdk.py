"""Traces as a real collector reads them: the gateway's OTLP/HTTP protobuf batches decoded with
the official `opentelemetry-proto` package, the request's span tree checked end to end (an
OpenAI client to an Anthropic upstream, and a client's own `traceparent` continued)."""

import http.server
import threading

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from conftest import standard_config, wait_until

HELLO = [{"role": "user", "content": "Say hello"}]


class Collector:
    """An OTLP/HTTP collector on an ephemeral port that keeps every batch it is sent."""

    def __init__(self):
        self.batches = []
        self.content_types = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.content_types.append((self.path, self.headers["content-type"]))
                collector.batches.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        """Every span received, with the resource attributes and scope it came under."""
        found = []
        for batch in self.batches:
            for resource_spans in batch.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append((resource, scope_spans.scope.name, span))
        return found


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind)


def attributes(key_values):
    return {kv.key: value(kv.value) for kv in key_values}


@pytest.fixture
def collector():
    started = Collector()
    yield started
    started.server.shutdown()


@pytest.fixture
def traced(mock, mock2, gateway_factory, collector):
    extra = f"""
[models.translated]
targets = [{{ provider = "an", model = "claude-sonnet-4-5" }}]
[telemetry]
otlp_endpoint = "{collector.url}"
service_name = "backstop-e2e"
resource = {{ "deployment.environment" = "test" }}
"""
    return gateway_factory(standard_config(mock, mock2, extra))


def test_a_translated_request_is_a_server_span_with_a_client_child_under_the_clients_trace(traced, collector, mock):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    client = openai.OpenAI(base_url=f"{traced.url}/v1", api_key="k", max_retries=0, timeout=20)
    answer = client.chat.completions.create(
        model="translated",
        messages=HELLO,
        extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    assert answer.choices[0].finish_reason == "stop"
    assert wait_until(lambda: len(collector.spans()) >= 2, timeout=10)
    assert collector.content_types[0] == ("/v1/traces", "application/x-protobuf")

    spans = collector.spans()
    assert len(spans) == 2, spans
    by_kind = {span.kind: (resource, scope, span) for resource, scope, span in spans}
    resource, scope, server = by_kind[Span.SPAN_KIND_SERVER]
    _, _, client_span = by_kind[Span.SPAN_KIND_CLIENT]
    assert resource == {"service.name": "backstop-e2e", "deployment.environment": "test"}
    assert scope == "backstop"

    # The tree: the client's span, the request's span under it, the attempt's under that.
    assert server.trace_id.hex() == trace_id == client_span.trace_id.hex()
    assert server.parent_span_id.hex() == parent_id
    assert client_span.parent_span_id == server.span_id
    assert server.flags & 0x300 == 0x300, "the request's parent is remote"
    assert client_span.flags & 0x300 == 0x100, "the attempt's parent is local"
    assert server.start_time_unix_nano <= client_span.start_time_unix_nano
    assert client_span.end_time_unix_nano <= server.end_time_unix_nano

    request = attributes(server.attributes)
    assert server.name == "chat translated"
    assert request["gen_ai.request.model"] == "translated"
    assert request["http.response.status_code"] == 200
    assert request["backstop.stream"] is False
    assert request["backstop.target"] == "an/claude-sonnet-4-5"
    assert request["backstop.attempts"] == 1

    attempt = attributes(client_span.attributes)
    assert client_span.name == "chat claude-sonnet-4-5"
    assert attempt["gen_ai.system"] == "anthropic"
    assert attempt["backstop.model"] == "translated"
    assert attempt["backstop.outcome"] == "answered"
    assert attempt["gen_ai.response.finish_reasons"] == ["stop"]
    assert attempt["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert attempt["gen_ai.usage.output_tokens"] > 0
    assert client_span.status.code == Status.STATUS_CODE_OK

    # The upstream was called under the attempt's own span.
    sent = mock.requests()[-1]["headers"]["traceparent"]
    assert sent == f"00-{trace_id}-{client_span.span_id.hex()}-01"
