"""Reading the audit log: filtered, newest first, keyset-paginated (ids sort by time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.store.models import AuditLog, iso_utc

SUMMARY_FIELDS = (
    "id",
    "request_id",
    "created_at",
    "user_id",
    "team_id",
    "api_key_id",
    "app_id",
    "app_version_id",
    "entry_point",
    "model_requested",
    "model_used",
    "provider",
    "status",
    "http_status",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "client_ip",
    "cache_hit",
    "stream",
    "finish_reason",
    "error",
    "saved_cost_usd",
    "route_score",
)


@dataclass(slots=True)
class LogFilter:
    org_id: str
    user_id: str | None = None
    model: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_logs(
    session: AsyncSession, flt: LogFilter, *, limit: int = 50, before_id: str | None = None
) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.org_id == flt.org_id)
    if flt.user_id:
        query = query.where(AuditLog.user_id == flt.user_id)
    if flt.model:
        query = query.where(AuditLog.model_used == flt.model)
    if flt.status:
        query = query.where(AuditLog.status == flt.status)
    if flt.since:
        query = query.where(AuditLog.created_at >= flt.since)
    if flt.until:
        query = query.where(AuditLog.created_at < flt.until)
    if before_id:
        query = query.where(AuditLog.id < before_id)
    query = query.order_by(AuditLog.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


def log_view(row: AuditLog, *, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {f: getattr(row, f) for f in SUMMARY_FIELDS}
    view["created_at"] = iso_utc(row.created_at)
    view["output_preview"] = (row.output_text or "")[:200]
    if full:
        view.update(
            client_request_id=row.client_request_id,
            user_agent=row.user_agent,
            input_messages=row.input_messages,
            request_params=row.request_params,
            output_text=row.output_text,
            output_tool_calls=row.output_tool_calls,
            route_reason=row.route_reason,
            idempotency_key=row.idempotency_key,
            attempts=row.attempts,
            parent_request_id=row.parent_request_id,
        )
    return view
