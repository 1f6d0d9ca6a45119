"""Usage from the audit log, summed per user, app and model: what team admins see of their
team and org admins of everyone."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.store.models import AuditLog


async def usage_summary(
    session: AsyncSession,
    org_id: str,
    *,
    user_ids: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Totals and rows grouped by (user, app, model); `user_ids=None` means the whole org."""
    query = select(
        AuditLog.user_id,
        AuditLog.app_id,
        AuditLog.model_used,
        func.count(),
        func.coalesce(func.sum(AuditLog.prompt_tokens), 0),
        func.coalesce(func.sum(AuditLog.completion_tokens), 0),
        func.coalesce(func.sum(AuditLog.cost_usd), 0.0),
    ).where(AuditLog.org_id == org_id)
    if user_ids is not None:
        query = query.where(AuditLog.user_id.in_(list(user_ids) or [""]))
    if since is not None:
        query = query.where(AuditLog.created_at >= since)
    if until is not None:
        query = query.where(AuditLog.created_at < until)
    rows = (await session.execute(query.group_by(AuditLog.user_id, AuditLog.app_id, AuditLog.model_used))).all()
    data: list[dict[str, Any]] = []
    totals: dict[str, Any] = {
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost_usd": 0.0,
    }
    for user_id, app_id, model, calls, prompt, completion, cost in rows:
        row = {
            "user_id": user_id,
            "app_id": app_id,
            "model": model,
            "calls": int(calls),
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
            "total_tokens": int(prompt) + int(completion),
            "cost_usd": float(cost),
        }
        data.append(row)
        for key in totals:
            totals[key] += row[key]
    return {"object": "usage", "totals": totals, "data": data}
