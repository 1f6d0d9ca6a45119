"""Every state change of a job, as one guarded SQL statement.

A worker owns a running job through its lease (`lease_owner`, `lease_expires_at`). Writes
by a worker are guarded by "I still own it and it is still running", so a worker that was
cancelled, stalled past its lease, or killed and redelivered elsewhere can never write a
second result. The final transition writes the result, the event, the notification and
the webhook deliveries in one transaction: all of them once, or none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.domain.errors import Unprocessable
from aiport.domain.principal import Principal
from aiport.jobs import notify, webhooks
from aiport.jobs.views import job_event_data
from aiport.store.jobs import Job, JobEvent
from aiport.store.models import utcnow


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they are UTC by construction."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of trying to take a job: `job` when it is ours now; otherwise `retry_in`
    (someone else holds a live lease) or neither (finished, cancelled or gone)."""

    job: Job | None = None
    retry_in: float | None = None


class JobStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, lease_seconds: float, webhook_window: float
    ) -> None:
        self.sessions = sessions
        self.lease_seconds = lease_seconds
        self.webhook_window = webhook_window
        bind = sessions.kw.get("bind")
        # SQLite has one writer: concurrent write transactions of this process would wait
        # for each other in SQLite's busy handler (sleeps of up to 100 ms); take turns here.
        self._one_writer = asyncio.Lock() if bind is not None and bind.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed at the end (one at a time on SQLite)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._one_writer is not None:
                await stack.enter_async_context(self._one_writer)
            session = await stack.enter_async_context(self.sessions())
            await stack.enter_async_context(session.begin())
            yield session

    # ---- submit ------------------------------------------------------------------------
    async def create(
        self,
        principal: Principal,
        *,
        kind: str,
        input: dict[str, Any],
        backend: str,
        max_attempts: int,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        app_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Insert a queued job; returns (job, created). A repeated Idempotency-Key returns
        the first job instead of a second one."""
        job = Job(
            org_id=principal.org_id,
            user_id=principal.user_id,
            team_id=principal.team_id,
            api_key_id=principal.api_key_id,
            role=principal.role,
            allowed_models=sorted(principal.allowed_models) if principal.allowed_models is not None else None,
            app_id=app_id,
            kind=kind,
            input=input,
            status="queued",
            backend=backend,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )
        try:
            async with self._write() as session:
                session.add(job)
                await session.flush()
                session.add(JobEvent(job_id=job.id, type="status", data=job_event_data(job)))
            return job, True
        except IntegrityError:
            if idempotency_key is None:
                raise
        async with self.sessions() as session:
            first = (
                await session.execute(
                    select(Job).where(Job.user_id == principal.user_id, Job.idempotency_key == idempotency_key)
                )
            ).scalar_one()
        if first.kind != kind or first.input != input:
            raise Unprocessable(
                f"The Idempotency-Key '{idempotency_key}' was already used for job {first.id} with a different "
                "body. Use a new key for a different job.",
                code="idempotency_key_reused",
            )
        return first, False

    # ---- Celery hand-over ----------------------------------------------------------------
    async def mark_published(self, job_ids: list[str]) -> None:
        async with self._write() as session:
            await session.execute(
                update(Job).where(Job.id.in_(job_ids), Job.published_at.is_(None)).values(published_at=utcnow())
            )

    async def unpublished(self, *, older_than: float, limit: int) -> list[str]:
        """Celery jobs committed but never handed to the broker: the process that created
        them died between its commit and its publish."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        q = (
            select(Job.id)
            .where(
                Job.backend == "celery",
                Job.status == "queued",
                Job.published_at.is_(None),
                Job.created_at < cutoff,
            )
            .order_by(Job.id)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.execute(q)).scalars())

    async def stranded(self, *, older_than: float, limit: int) -> list[tuple[str, datetime]]:
        """Celery jobs handed to the broker, and due, more than `older_than` seconds ago and
        still waiting: (id, when they were published). Their message may have been lost. (A
        retry waiting out its backoff is not due yet: its delayed message sits in a worker.)"""
        cutoff = utcnow() - timedelta(seconds=older_than)
        q = (
            select(Job.id, Job.published_at)
            .where(
                Job.backend == "celery",
                Job.status == "queued",
                Job.published_at < cutoff,
                Job.run_after < cutoff,
            )
            .order_by(Job.published_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            rows = (await session.execute(q)).all()
        return [(job_id, published) for job_id, published in rows if published is not None]

    async def take_for_republish(self, job_id: str, published_at: datetime) -> bool:
        """Mark a stranded job as published again now (one process wins: the one that still
        sees the publication time it read)."""
        async with self._write() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued", Job.published_at == published_at)
                .values(published_at=utcnow())
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def take_for_publish(self, job_id: str, *, undo: bool = False) -> bool:
        """Mark an unpublished job as being published (one process wins), or `undo` that."""
        async with self._write() as session:
            cond = Job.published_at.is_not(None) if undo else Job.published_at.is_(None)
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued", cond)
                .values(published_at=None if undo else utcnow())
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def get(self, job_id: str) -> Job | None:
        async with self.sessions() as session:
            return await session.get(Job, job_id)

    # ---- workers -----------------------------------------------------------------------
    def _claimable(self, now: datetime) -> Any:
        return or_(
            Job.status == "queued",
            and_(Job.status == "running", or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now)),
        )

    async def due(self, backend: str, limit: int) -> list[str]:
        """Ids of jobs an in-process worker may take now (queued and due, or with a dead lease)."""
        now = utcnow()
        cond = and_(
            Job.backend == backend,
            or_(
                and_(Job.status == "queued", Job.run_after <= now),
                and_(Job.status == "running", Job.lease_expires_at < now),
            ),
        )
        async with self.sessions() as session:
            rows = await session.execute(select(Job.id).where(cond).order_by(Job.id).limit(limit))
            return list(rows.scalars())

    async def claim(self, job_id: str, owner: str) -> Claim:
        now = utcnow()
        async with self._write() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, self._claimable(now))
                .values(
                    status="running",
                    attempt=Job.attempt + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=self.lease_seconds),
                    started_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            job = await session.get(Job, job_id, populate_existing=True)
            if job is None:
                return Claim()
            if result.rowcount == 1:  # type: ignore[attr-defined]
                session.add(JobEvent(job_id=job_id, type="status", data=job_event_data(job)))
                return Claim(job=job)
            if job.status == "running" and job.lease_expires_at is not None:
                remaining = (as_utc(job.lease_expires_at) - now).total_seconds()
                return Claim(retry_in=max(remaining, 0.0) + 0.5)
            return Claim()

    async def heartbeat(self, job_id: str, owner: str) -> bool:
        """Extend the lease; False when the job is no longer ours to run."""
        now = utcnow()
        async with self._write() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")
                .values(lease_expires_at=now + timedelta(seconds=self.lease_seconds))
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def progress(
        self,
        job_id: str,
        owner: str,
        *,
        done: int,
        total: int | None,
        message: str | None,
        checkpoint: dict[str, Any] | None,
    ) -> bool:
        now = utcnow()
        values: dict[str, Any] = {
            "progress_done": done,
            "progress_total": total,
            "progress_message": message[:400] if message else None,
            "updated_at": now,
            "lease_expires_at": now + timedelta(seconds=self.lease_seconds),
        }
        if checkpoint is not None:
            values["checkpoint"] = checkpoint
        async with self._write() as session:
            result = await session.execute(
                update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running").values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            data = {"done": done, "total": total, "message": values["progress_message"]}
            session.add(JobEvent(job_id=job_id, type="progress", data=data))
            return True

    async def finish(
        self,
        job_id: str,
        owner: str,
        *,
        status: str,
        result: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
    ) -> Job | None:
        """Move a running job we own to succeeded/failed, with everything that follows from
        it, in one transaction. None: it was not ours any more (nothing written)."""
        now = utcnow()
        values: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now, "lease_expires_at": None}
        if result is not None:
            values["result"] = result
        if error is not None:
            values["error_message"], values["error_code"] = error
        async with self._write() as session:
            changed = await session.execute(
                update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running").values(**values)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            job = await session.get(Job, job_id, populate_existing=True)
            assert job is not None
            await self._final_effects(session, job)
            return job

    async def requeue(self, job_id: str, owner: str, *, delay: float, reason: str) -> bool:
        """Give a running job back to the queue (retry after a transient error, or shutdown)."""
        now = utcnow()
        async with self._write() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")
                .values(
                    status="queued",
                    lease_owner=None,
                    lease_expires_at=None,
                    run_after=now + timedelta(seconds=delay),
                    progress_message=reason[:400],
                    updated_at=now,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            data = {"status": "queued", "reason": reason, "retry_in": round(delay, 3)}
            session.add(JobEvent(job_id=job_id, type="status", data=data))
            return True

    async def fail_unclaimed(self, job_id: str, message: str, code: str) -> Job | None:
        """Fail a queued job that never ran (the broker refused it)."""
        now = utcnow()
        async with self._write() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(status="failed", error_message=message, error_code=code, finished_at=now, updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            job = await session.get(Job, job_id, populate_existing=True)
            assert job is not None
            await self._final_effects(session, job)
            return job

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job; None when it had already ended."""
        now = utcnow()
        async with self._write() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(("queued", "running")))
                .values(status="cancelled", finished_at=now, updated_at=now, lease_expires_at=None)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            job = await session.get(Job, job_id, populate_existing=True)
            assert job is not None
            await self._final_effects(session, job)
            return job

    async def _final_effects(self, session: AsyncSession, job: Job) -> None:
        session.add(JobEvent(job_id=job.id, type="status", data=job_event_data(job)))
        await notify.job_finished(session, job)
        await webhooks.job_finished(session, job, window=self.webhook_window)
