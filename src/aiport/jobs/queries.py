"""Read side for the API: listing jobs, replaying events, notifications, the delivery log,
and the SSE streams built on them (polling the database, woken early by local changes)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.jobs.pulse import Pulse
from aiport.jobs.views import notification_view
from aiport.store.jobs import (
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    Notification,
    WebhookAttempt,
    WebhookDelivery,
)
from aiport.store.models import utcnow

KEEPALIVE_SECONDS = 15.0
LOOKBACK = timedelta(seconds=5)  # notifications committed late by another process are still caught


async def list_jobs(
    session: AsyncSession,
    *,
    org_id: str,
    user_id: str | None,
    status: str | None,
    kind: str | None,
    before: str | None,
    limit: int,
) -> list[Job]:
    q = select(Job).where(Job.org_id == org_id)
    if user_id is not None:
        q = q.where(Job.user_id == user_id)
    if status is not None:
        q = q.where(Job.status == status)
    if kind is not None:
        q = q.where(Job.kind == kind)
    if before is not None:
        q = q.where(Job.id < before)
    return list((await session.execute(q.order_by(Job.id.desc()).limit(limit))).scalars())


def sse(event: str, data: dict[str, Any], event_id: str | int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return (head + f"event: {event}\n").encode() + b"data: " + orjson.dumps(data) + b"\n\n"


async def job_event_stream(
    sessions: async_sessionmaker[AsyncSession], pulse: Pulse, job_id: str, after: int, poll: float
) -> AsyncIterator[bytes]:
    """Replay the job's events after `after`, then follow them until the job has ended."""
    yield b"retry: 2000\n\n"
    last_sent = time.monotonic()
    ended = False
    while True:
        async with sessions() as session:
            rows = list(
                (
                    await session.execute(
                        select(JobEvent)
                        .where(JobEvent.job_id == job_id, JobEvent.id > after)
                        .order_by(JobEvent.id)
                        .limit(500)
                    )
                ).scalars()
            )
            status = None if rows else (await session.get(Job, job_id))
        for ev in rows:
            after = ev.id
            yield sse(ev.type, {"job_id": job_id, **ev.data}, ev.id)
            last_sent = time.monotonic()
            if ev.type == "status" and ev.data.get("status") in TERMINAL_STATUSES:
                return
        if rows:
            continue
        if status is not None and status.status in TERMINAL_STATUSES:
            if not ended:  # it ended after our look at the events: look once more (same commit)
                ended = True
                continue
            return  # ended, and its final event was already sent before `after`
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            last_sent = time.monotonic()
        await pulse.wait(poll)


async def notification_stream(
    sessions: async_sessionmaker[AsyncSession], pulse: Pulse, user_id: str, since: datetime, poll: float
) -> AsyncIterator[bytes]:
    """New notifications for one user, as they are written (by this or any other process)."""
    yield b"retry: 2000\n\n"
    sent: dict[str, datetime] = {}
    last_sent = time.monotonic()
    while True:
        now = utcnow()
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(Notification)
                    .where(Notification.user_id == user_id, Notification.created_at >= since - LOOKBACK)
                    .order_by(Notification.created_at, Notification.id)
                    .limit(200)
                )
            ).scalars()
            fresh = [n for n in rows if n.id not in sent]
        for n in fresh:
            sent[n.id] = now
            yield sse("notification", notification_view(n), n.id)
            last_sent = time.monotonic()
        since = max(since, now - LOOKBACK)
        for key in [k for k, at in sent.items() if at < now - 4 * LOOKBACK]:
            del sent[key]
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            last_sent = time.monotonic()
        await pulse.wait(poll)


async def notification_created_at(session: AsyncSession, user_id: str, notification_id: str) -> datetime | None:
    n = await session.get(Notification, notification_id)
    return n.created_at if n is not None and n.user_id == user_id else None


async def list_notifications(
    session: AsyncSession, user_id: str, *, unread: bool, before: str | None, limit: int
) -> list[Notification]:
    q = select(Notification).where(Notification.user_id == user_id)
    if unread:
        q = q.where(Notification.read_at.is_(None))
    if before is not None:
        q = q.where(Notification.id < before)
    return list((await session.execute(q.order_by(Notification.id.desc()).limit(limit))).scalars())


async def mark_read(session: AsyncSession, user_id: str, notification_id: str) -> Notification | None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    n = await session.get(Notification, notification_id, populate_existing=True)
    return n if n is not None and n.user_id == user_id else None


async def list_deliveries(
    session: AsyncSession, subscription_id: str, *, status: str | None, before: str | None, limit: int
) -> list[WebhookDelivery]:
    q = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        q = q.where(WebhookDelivery.status == status)
    if before is not None:
        q = q.where(WebhookDelivery.id < before)
    return list((await session.execute(q.order_by(WebhookDelivery.id.desc()).limit(limit))).scalars())


async def delivery_attempts(session: AsyncSession, delivery_id: str) -> list[WebhookAttempt]:
    q = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
    return list((await session.execute(q)).scalars())
