"""Spans nest under the request, and export to OpenTelemetry with GenAI conventions."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiport.observe.traces import Tracer, export_otel


async def test_spans_nest_and_record_errors() -> None:
    tracer = Tracer("req_1", "org_1")
    async with tracer.span("agent", "agent"):
        async with tracer.span("tool:calculator", "tool", {"arguments": "{}"}) as span:
            span.result("42")
        with pytest.raises(RuntimeError):
            async with tracer.span("tool:http_get", "tool"):
                raise RuntimeError("boom")
    rows = tracer.rows()
    assert [r["name"] for r in rows] == ["agent", "tool:calculator", "tool:http_get"]
    assert rows[1]["parent_id"] == rows[0]["id"] == rows[2]["parent_id"]
    assert rows[1]["result_preview"] == "42" and rows[2]["status"] == "error" and "boom" in rows[2]["error"]


async def test_otel_export_uses_genai_conventions() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = Tracer("req_2", "org_1")
    async with tracer.span("model step 1", "model") as step:
        step.attributes["gen_ai.request.model"] = "echo"
        async with tracer.span("tool:calculator", "tool", {"arguments": '{"expression": "1+1"}'}) as span:
            span.result("2")
    export_otel(tracer.spans)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    tool, model = spans["tool:calculator"], spans["model step 1"]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert model.attributes["gen_ai.operation.name"] == "chat" and model.attributes["gen_ai.request.model"] == "echo"
    assert tool.parent is not None and tool.parent.span_id == model.context.span_id
    assert tool.end_time >= tool.start_time
