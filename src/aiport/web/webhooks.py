"""Outbound webhooks over HTTP: an org's subscriptions (owners/admins), the delivery log,
redelivery and pings. Sending and retrying is jobs/dispatcher.py's work."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from aiport.domain.errors import GatewayError, NotFound, PermissionDenied, Unprocessable
from aiport.domain.ids import new_id
from aiport.domain.principal import Principal
from aiport.jobs import queries, ssrf
from aiport.jobs.views import delivery_view, subscription_view
from aiport.jobs.webhook_secrets import derive_secret, new_salt
from aiport.jobs.webhooks import EVENTS, ping_delivery
from aiport.store.jobs import WebhookDelivery, WebhookSubscription
from aiport.store.models import utcnow
from aiport.web.jobs import ADMIN_ROLES, jobs_service, json_body, openapi_body
from aiport.web.runtime import Runtime
from aiport.web.v1 import identify, read_json_body, runtime

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    events: Annotated[list[str], Field(min_length=1, max_length=20, description=f"any of {', '.join(EVENTS)}, or *")]
    description: Annotated[str, Field(max_length=200)] = ""
    app_id: Annotated[str | None, Field(max_length=40)] = None
    active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str | None, Field(min_length=1, max_length=2000)] = None
    events: Annotated[list[str] | None, Field(min_length=1, max_length=20)] = None
    description: Annotated[str | None, Field(max_length=200)] = None
    active: bool | None = None


async def _require_admin(request: Request) -> Principal:
    principal = await identify(request)
    if principal.role not in ADMIN_ROLES:
        raise PermissionDenied("Only organization owners and admins may manage webhooks.", code="admin_only")
    return principal


async def _check_target(rt: Runtime, url: str, events: list[str]) -> None:
    for i, event in enumerate(events):
        if event != "*" and event not in EVENTS:
            raise Unprocessable(
                f"Unknown event {event!r}; choose from {', '.join(EVENTS)} or '*'.", param=f"events[{i}]"
            )
    try:
        await ssrf.vet(url, allow_private=rt.settings.webhook_allow_private)
    except ssrf.UnsafeTarget as exc:
        raise Unprocessable(str(exc), param="url", code="unsafe_url") from exc


async def _subscription(rt: Runtime, principal: Principal, webhook_id: str) -> WebhookSubscription:
    async with rt.sessions() as session:
        sub = await session.get(WebhookSubscription, webhook_id[:64])
    if sub is None or sub.org_id != principal.org_id:
        raise NotFound(f"No webhook {webhook_id[:64]}.", code="webhook_not_found")
    return sub


def _with_secret(rt: Runtime, sub: WebhookSubscription) -> dict[str, Any]:
    secret = derive_secret(jobs_service(rt).webhooks.master_key, sub.id, sub.secret_salt)
    return {**subscription_view(sub), "secret": secret}


@router.post(
    "",
    status_code=201,
    summary="Add a webhook; its signing secret is shown only in this answer",
    openapi_extra=openapi_body(WebhookCreate),
)
async def create_webhook(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await _require_admin(request)
    body: WebhookCreate = json_body(WebhookCreate, await read_json_body(request, 64 * 1024))
    await _check_target(rt, body.url, body.events)
    sub = WebhookSubscription(
        id=new_id("whk_"),
        org_id=principal.org_id,
        app_id=body.app_id,
        created_by=principal.user_id,
        url=body.url,
        events=body.events,
        description=body.description,
        secret_salt=new_salt(),
        active=body.active,
    )
    sub.secret_prefix = derive_secret(jobs_service(rt).webhooks.master_key, sub.id, sub.secret_salt)[:12]
    async with rt.sessions() as session, session.begin():
        session.add(sub)
    return _with_secret(rt, sub)


@router.get("", summary="The organization's webhooks (never their secrets)")
async def get_webhooks(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await _require_admin(request)
    async with rt.sessions() as session:
        rows = await session.execute(
            select(WebhookSubscription)
            .where(WebhookSubscription.org_id == principal.org_id)
            .order_by(WebhookSubscription.id)
        )
        return {"object": "list", "data": [subscription_view(s) for s in rows.scalars()]}


@router.get("/{webhook_id}", summary="One webhook")
async def get_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    return subscription_view(await _subscription(rt, await _require_admin(request), webhook_id))


@router.patch(
    "/{webhook_id}",
    summary="Change a webhook's URL, events, description or state",
    openapi_extra=openapi_body(WebhookUpdate),
)
async def update_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await _require_admin(request)
    sub = await _subscription(rt, principal, webhook_id)
    body: WebhookUpdate = json_body(WebhookUpdate, await read_json_body(request, 64 * 1024))
    changes = body.model_dump(exclude_none=True)
    await _check_target(rt, changes.get("url", sub.url), changes.get("events", sub.events))
    async with rt.sessions() as session, session.begin():
        fresh = await session.get(WebhookSubscription, sub.id)
        assert fresh is not None
        for name, value in changes.items():
            setattr(fresh, name, value)
        fresh.updated_at = utcnow()
    return subscription_view(fresh)


@router.delete("/{webhook_id}", summary="Delete a webhook and its delivery log")
async def delete_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    async with rt.sessions() as session, session.begin():
        fresh = await session.get(WebhookSubscription, sub.id)
        if fresh is not None:
            await session.delete(fresh)
    return {"id": sub.id, "object": "webhook", "deleted": True}


@router.post("/{webhook_id}/rotate-secret", summary="Replace the signing secret; shown only in this answer")
async def rotate_secret(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    async with rt.sessions() as session, session.begin():
        fresh = await session.get(WebhookSubscription, sub.id)
        assert fresh is not None
        fresh.secret_salt = new_salt()
        fresh.secret_prefix = derive_secret(jobs_service(rt).webhooks.master_key, fresh.id, fresh.secret_salt)[:12]
        fresh.updated_at = utcnow()
    return _with_secret(rt, fresh)


@router.post("/{webhook_id}/ping", status_code=202, summary="Send a webhook.ping event now")
async def ping_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    delivery = ping_delivery(sub, window=rt.settings.webhook_retry_window_seconds)
    async with rt.sessions() as session, session.begin():
        session.add(delivery)
    jobs_service(rt).webhooks.pulse.fire()
    return delivery_view(delivery)


@router.get("/{webhook_id}/deliveries", summary="The webhook's deliveries, newest first")
async def get_deliveries(
    webhook_id: str,
    request: Request,
    status: Annotated[str | None, Query(pattern="^(pending|succeeded|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    async with rt.sessions() as session:
        rows = await queries.list_deliveries(session, sub.id, status=status, before=before, limit=limit)
    data = [delivery_view(d) for d in rows]
    return {"object": "list", "data": data, "next_before": data[-1]["id"] if len(data) == limit else None}


async def _delivery(rt: Runtime, principal: Principal, delivery_id: str) -> WebhookDelivery:
    async with rt.sessions() as session:
        d = await session.get(WebhookDelivery, delivery_id[:64])
    if d is None or d.org_id != principal.org_id:
        raise NotFound(f"No webhook delivery {delivery_id[:64]}.", code="delivery_not_found")
    return d


@router.get("/deliveries/{delivery_id}", summary="One delivery: body and every attempt")
async def get_delivery(delivery_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    d = await _delivery(rt, await _require_admin(request), delivery_id)
    async with rt.sessions() as session:
        attempts = await queries.delivery_attempts(session, d.id)
    return delivery_view(d, attempts)


@router.post("/deliveries/{delivery_id}/redeliver", summary="Send a delivery again now (whatever its state)")
async def redeliver(delivery_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    d = await _delivery(rt, await _require_admin(request), delivery_id)
    fresh = await jobs_service(rt).webhooks.attempt(d.id, manual=True)
    if fresh is None:
        raise GatewayError(
            "An attempt of this delivery is in progress; try again in a moment.", status=409, code="delivery_busy"
        )
    async with rt.sessions() as session:
        attempts = await queries.delivery_attempts(session, fresh.id)
    return delivery_view(fresh, attempts)
