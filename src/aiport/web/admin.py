"""Admin JSON API (until the web UI lands): audit log and API keys. Org owners/admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from aiport.accounts.keys import create_key, key_view, list_keys, revoke_key
from aiport.domain.errors import NotFound, PermissionDenied, Unprocessable
from aiport.domain.principal import Principal
from aiport.observe.queries import LogFilter, list_logs, log_view
from aiport.observe.traces import load_tree
from aiport.store.models import AuditLog, User
from aiport.web.v1 import identify, runtime

router = APIRouter(prefix="/api/admin", tags=["admin"])

ADMIN_ROLES = ("owner", "admin")


async def require_admin(request: Request) -> Principal:
    principal = await identify(request)
    if principal.role not in ADMIN_ROLES:
        raise PermissionDenied("Only organization owners and admins may use the admin API.", code="admin_only")
    return principal


@router.get("/logs", summary="Audit records, newest first (keyset pagination with `before`)")
async def get_logs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=64, description="id of the last record seen")] = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(pattern="^(ok|error|client_closed)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    principal = await require_admin(request)
    flt = LogFilter(org_id=principal.org_id, user_id=user_id, model=model, status=status, since=since, until=until)
    async with runtime(request).sessions() as session:
        rows = await list_logs(session, flt, limit=limit, before_id=before)
    data = [log_view(r) for r in rows]
    return {"object": "list", "data": data, "next_before": data[-1]["id"] if len(data) == limit else None}


@router.get("/logs/{log_id}", summary="One audit record with input and output")
async def get_log(log_id: str, request: Request) -> dict[str, Any]:
    principal = await require_admin(request)
    async with runtime(request).sessions() as session:
        row = await session.get(AuditLog, log_id)
        if row is None or row.org_id != principal.org_id:
            raise NotFound(f"No audit record {log_id}.", code="log_not_found")
        trace = await load_tree(session, row.request_id, principal.org_id)  # retrieval, tools, steps
    return {**log_view(row, full=True), "trace": trace}


class KeyCreate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    user_id: Annotated[str | None, Field(max_length=64)] = None
    team_id: Annotated[str | None, Field(max_length=64)] = None
    allowed_models: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=100)] | None
    ) = None


@router.get("/keys", summary="API keys of the organization (prefixes only)")
async def get_keys(request: Request) -> dict[str, Any]:
    principal = await require_admin(request)
    async with runtime(request).sessions() as session:
        keys = await list_keys(session, principal.org_id)
    return {"object": "list", "data": [key_view(k) for k in keys]}


@router.post("/keys", status_code=201, summary="Create an API key; the secret is shown only in this answer")
async def post_key(body: KeyCreate, request: Request) -> dict[str, Any]:
    principal = await require_admin(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        user = await session.get(User, body.user_id or principal.user_id)
        if user is None or user.org_id != principal.org_id:
            raise NotFound(f"No user {body.user_id} in this organization.", param="user_id", code="user_not_found")
        if body.allowed_models is not None:
            known = {m.name for m in rt.settings.catalog.models} | set(rt.settings.catalog.routes)
            unknown = sorted(set(body.allowed_models) - known)
            if unknown:
                raise Unprocessable(f"Unknown models in allowed_models: {', '.join(unknown)}.", param="allowed_models")
        created = await create_key(
            session, user, name=body.name, team_id=body.team_id, allowed_models=body.allowed_models
        )
        view = key_view(created.key)
    return {**view, "key": created.secret}


@router.delete("/keys/{key_id}", summary="Revoke an API key (takes effect at once)")
async def delete_key(key_id: str, request: Request) -> dict[str, Any]:
    principal = await require_admin(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        key = await revoke_key(session, principal.org_id, key_id)
        view = key_view(key)
    rt.keys.invalidate()
    return view
