"""Admin API for quotas and rate limits. Changes apply at once in this process and within
`AIPORT_RULES_REFRESH_SECONDS` in the others."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from aiport.accounts.limits import (
    QuotaSpec,
    RateLimitSpec,
    delete_rule,
    quota_view,
    rate_limit_view,
    set_quota,
    set_rate_limit,
)
from aiport.gateway.ledger import window_for
from aiport.gateway.rules import QuotaRule
from aiport.store.models import Quota, RateLimit
from aiport.web.admin import require_admin
from aiport.web.v1 import runtime

router = APIRouter(prefix="/api/admin", tags=["admin: limits"])


@router.get("/quotas", summary="Quotas of the organization, with the current window's usage")
async def list_quotas(request: Request) -> dict[str, Any]:
    principal = await require_admin(request)
    rt = runtime(request)
    async with rt.sessions() as session:
        quotas = list((await session.execute(select(Quota).where(Quota.org_id == principal.org_id))).scalars())
    data = []
    for q in quotas:
        rule = QuotaRule(q.id, q.scope, q.subject_id, q.metric, q.period, q.rolling_seconds, q.limit_value)
        window = window_for(rule)
        used = await rt.pipeline.admitter.durable_usage(rule, window.start, window.end)
        data.append(
            {
                **quota_view(q),
                "used": used,
                "window_start": window.start.isoformat(),
                "resets_at": window.end.isoformat(),
            }
        )
    return {"object": "list", "data": data}


@router.put("/quotas", summary="Set a quota (creates it, or replaces the limit of the same scope/metric/period)")
async def put_quota(spec: QuotaSpec, request: Request, response: Response) -> dict[str, Any]:
    principal = await require_admin(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        quota, created = await set_quota(session, principal.org_id, spec)
        view = quota_view(quota)
    rt.rules.invalidate(principal.org_id)
    response.status_code = 201 if created else 200
    return view


@router.delete("/quotas/{quota_id}", status_code=204, summary="Remove a quota")
async def remove_quota(quota_id: str, request: Request) -> None:
    principal = await require_admin(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        await delete_rule(session, principal.org_id, Quota, quota_id)
    rt.rules.invalidate(principal.org_id)


@router.get("/rate-limits", summary="Rate limits of the organization")
async def list_rate_limits(request: Request) -> dict[str, Any]:
    principal = await require_admin(request)
    async with runtime(request).sessions() as session:
        rows = (await session.execute(select(RateLimit).where(RateLimit.org_id == principal.org_id))).scalars()
        return {"object": "list", "data": [rate_limit_view(r) for r in rows]}


@router.put("/rate-limits", summary="Set requests/tokens per minute for a key, user, team or model")
async def put_rate_limit(spec: RateLimitSpec, request: Request, response: Response) -> dict[str, Any]:
    principal = await require_admin(request)
    rt = runtime(request)
    models = {m.name for m in rt.settings.catalog.models} | set(rt.settings.catalog.routes)
    async with rt.sessions() as session, session.begin():
        limit, created = await set_rate_limit(session, principal.org_id, spec, models)
        view = rate_limit_view(limit)
    rt.rules.invalidate(principal.org_id)
    response.status_code = 201 if created else 200
    return view


@router.delete("/rate-limits/{limit_id}", status_code=204, summary="Remove a rate limit")
async def remove_rate_limit(limit_id: str, request: Request) -> None:
    principal = await require_admin(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        await delete_rule(session, principal.org_id, RateLimit, limit_id)
    rt.rules.invalidate(principal.org_id)
