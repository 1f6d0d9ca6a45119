"""Webhook subscriptions and events: what to send where.

An event becomes one delivery row per matching subscription, in the transaction that
caused it (a job's final transition), so it is queued exactly once. The dispatcher
(jobs/dispatcher.py) sends deliveries and retries them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.domain.ids import new_id
from aiport.jobs.views import job_view
from aiport.store.jobs import Job, WebhookDelivery, WebhookSubscription
from aiport.store.models import iso_utc, utcnow

JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
EVENTS = (*JOB_EVENTS, "webhook.ping")
MAX_INLINE_RESULT = 64 * 1024  # larger results are fetched from the job's URL


def event_body(event_id: str, event_type: str, org_id: str, data: dict[str, Any]) -> str:
    envelope = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created_at": iso_utc(utcnow()),
        "org_id": org_id,
        "data": data,
    }
    return orjson.dumps(envelope).decode()


def job_payload(job: Job) -> dict[str, Any]:
    view = job_view(job, full=False)
    if job.result is not None:
        size = len(orjson.dumps(job.result))
        if size <= MAX_INLINE_RESULT:
            view["result"] = job.result
        else:
            view["result_truncated"] = True
    return {"job": view}


def new_delivery(
    sub: WebhookSubscription, event_id: str, event_type: str, body: str, *, window: float
) -> WebhookDelivery:
    """A pending delivery, retried for `window` seconds (AIPORT_WEBHOOK_RETRY_WINDOW_SECONDS)."""
    now = utcnow()
    return WebhookDelivery(
        subscription_id=sub.id,
        org_id=sub.org_id,
        event_id=event_id,
        event_type=event_type,
        body=body,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        give_up_at=now + timedelta(seconds=window),
    )


async def emit(
    session: AsyncSession,
    *,
    org_id: str,
    app_id: str | None,
    event_type: str,
    data: dict[str, Any],
    window: float,
) -> int:
    """Queue `event_type` for every active subscription of the org (and app) that wants it."""
    subs = (
        await session.execute(
            select(WebhookSubscription).where(
                WebhookSubscription.org_id == org_id,
                WebhookSubscription.active.is_(True),
                or_(WebhookSubscription.app_id.is_(None), WebhookSubscription.app_id == app_id),
            )
        )
    ).scalars()
    wanted = [s for s in subs if event_type in s.events or "*" in s.events]
    if not wanted:
        return 0
    event_id = new_id("evt_")
    body = event_body(event_id, event_type, org_id, data)
    for sub in wanted:
        session.add(new_delivery(sub, event_id, event_type, body, window=window))
    return len(wanted)


async def job_finished(session: AsyncSession, job: Job, *, window: float) -> None:
    event_type = f"job.{job.status}"
    if event_type in JOB_EVENTS:
        data = job_payload(job)
        await emit(session, org_id=job.org_id, app_id=job.app_id, event_type=event_type, data=data, window=window)


def ping_delivery(sub: WebhookSubscription, *, window: float) -> WebhookDelivery:
    """A test event for one subscription, to check the receiver and its signature check."""
    event_id = new_id("evt_")
    body = event_body(event_id, "webhook.ping", sub.org_id, {"webhook_id": sub.id, "message": "ping from aiport"})
    return new_delivery(sub, event_id, "webhook.ping", body, window=window)
