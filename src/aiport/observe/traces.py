"""Trace spans: every retrieval, tool call, model step and clarification of a request,
as a tree under the request's id (the trace id). Collected in memory while the request
runs, written in one insert at its end (off the model's path), read back as a tree for
the process panel and the admin record detail.

Optional export with OpenTelemetry's GenAI semantic conventions (`AIPORT_OTEL_EXPORT=true`,
off by default): spans go to whatever tracer provider the process configured.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.domain.ids import new_id
from aiport.store.knowledge import TraceSpan
from aiport.store.models import iso_utc

PREVIEW_CHARS = 500


def preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


@dataclass(slots=True)
class Span:
    id: str
    trace_id: str
    parent_id: str | None
    name: str
    kind: str
    args: dict[str, Any] | None
    started: datetime
    t0: float
    status: str = "ok"
    result_preview: str | None = None
    error: str | None = None
    duration_ms: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)

    def result(self, value: Any) -> None:
        self.result_preview = preview(value)

    def fail(self, message: str) -> None:
        self.status = "error"
        self.error = message[:2000]


class Tracer:
    """The spans of one request. `span()` nests: a span opened inside another is its child."""

    def __init__(self, trace_id: str, org_id: str | None = None) -> None:
        self.trace_id = trace_id
        self.org_id = org_id
        self.spans: list[Span] = []
        self._stack: list[Span] = []

    @asynccontextmanager
    async def span(self, name: str, kind: str, args: dict[str, Any] | None = None) -> AsyncIterator[Span]:
        span = self.start(name, kind, args)
        self._stack.append(span)
        try:
            yield span
        except BaseException as exc:
            if span.status == "ok":
                span.fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.end(span)
            self._stack.pop()

    def start(self, name: str, kind: str, args: dict[str, Any] | None = None) -> Span:
        """A span that ends outside any `with` block (a streamed answer ends after the request
        handler returned): call `end` when it is over. It has no children."""
        parent = self._stack[-1].id if self._stack else None
        span = Span(new_id("spn_"), self.trace_id, parent, name, kind, args, datetime.now(UTC), time.perf_counter())
        self.spans.append(span)
        return span

    @staticmethod
    def end(span: Span) -> None:
        span.duration_ms = round((time.perf_counter() - span.t0) * 1000, 3)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "id": s.id,
                "trace_id": s.trace_id,
                "parent_id": s.parent_id,
                "org_id": self.org_id,
                "name": s.name,
                "kind": s.kind,
                "args": s.args,
                "result_preview": s.result_preview,
                "status": s.status,
                "error": s.error,
                "started_at": s.started,
                "duration_ms": s.duration_ms,
            }
            for s in self.spans
        ]

    async def save(self, sessions: async_sessionmaker[AsyncSession], *, export: bool = False) -> None:
        if not self.spans:
            return
        async with sessions() as session, session.begin():
            await session.execute(insert(TraceSpan), self.rows())
        if export:
            export_otel(self.spans)


def _otel_attributes(span: Span) -> dict[str, Any]:
    """GenAI semantic conventions (gen_ai.*) for tool and model spans, aiport.* for the rest."""
    attrs: dict[str, Any] = {"aiport.trace_id": span.trace_id, "aiport.span.kind": span.kind}
    if span.kind == "tool":
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = span.name.removeprefix("tool:")
    elif span.kind == "model":
        attrs["gen_ai.operation.name"] = "chat"
    elif span.kind == "retrieval":
        attrs["gen_ai.operation.name"] = "retrieval"
    for key, value in span.attributes.items():
        if isinstance(value, str | int | float | bool):
            attrs[key] = value
    if span.args:
        attrs["aiport.args"] = preview(span.args)
    if span.result_preview:
        attrs["aiport.result_preview"] = span.result_preview
    return attrs


def export_otel(spans: list[Span]) -> None:
    """Replay finished spans into OpenTelemetry with their real start and end times."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    tracer = trace.get_tracer("aiport")
    made: dict[str, Any] = {}
    for s in spans:  # parents are opened before their children, so they come first
        start_ns = int(s.started.timestamp() * 1e9)
        parent = made.get(s.parent_id or "")
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        otel = tracer.start_span(s.name, context=ctx, start_time=start_ns, attributes=_otel_attributes(s))
        if s.status != "ok":
            otel.set_status(Status(StatusCode.ERROR, s.error or ""))
        made[s.id] = otel
    for s in reversed(spans):
        made[s.id].end(end_time=int(s.started.timestamp() * 1e9 + s.duration_ms * 1e6))


def span_view(row: TraceSpan) -> dict[str, Any]:
    return {
        "id": row.id,
        "parent_id": row.parent_id,
        "name": row.name,
        "kind": row.kind,
        "args": row.args,
        "result_preview": row.result_preview,
        "status": row.status,
        "error": row.error,
        "started_at": iso_utc(row.started_at),
        "duration_ms": row.duration_ms,
        "children": [],
    }


async def load_tree(session: AsyncSession, trace_id: str, org_id: str | None = None) -> list[dict[str, Any]]:
    """The spans of a trace as a tree (roots first, children in start order)."""
    query = select(TraceSpan).where(TraceSpan.trace_id == trace_id)
    if org_id is not None:
        query = query.where(TraceSpan.org_id == org_id)
    rows = list((await session.execute(query.order_by(TraceSpan.started_at, TraceSpan.id))).scalars())
    views = {r.id: span_view(r) for r in rows}
    roots: list[dict[str, Any]] = []
    for r in rows:
        parent = views.get(r.parent_id or "")
        (parent["children"] if parent is not None else roots).append(views[r.id])
    return roots
