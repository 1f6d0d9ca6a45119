"""Runs one job to its end: the task code both backends share.

claim (take the lease) -> rebuild the owner's Principal -> run the kind while a heartbeat
keeps the lease -> finish (result, notification, webhooks in one transaction). Failures
the user must fix end the job; transient ones (the database, a provider's 5xx/429, an
unexpected bug) give it back to the queue with exponential backoff until `max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.domain.errors import GatewayError
from aiport.domain.principal import Principal
from aiport.gateway.pipeline import Pipeline
from aiport.jobs.context import JobContext
from aiport.jobs.errors import JobFailed, LeaseLost
from aiport.jobs.registry import KindRegistry
from aiport.jobs.store import JobStore
from aiport.store.apps import AppKey
from aiport.store.jobs import Job
from aiport.store.models import ApiKey, User

log = logging.getLogger("aiport.jobs")

MAX_RETRY_DELAY = 300.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """`done`: finished (or not ours to run); `retry`: run again in `retry_in` seconds."""

    state: str
    retry_in: float | None = None


DONE = Outcome("done")


class JobExecutor:
    def __init__(
        self,
        store: JobStore,
        pipeline: Pipeline,
        kinds: KindRegistry,
        *,
        retry_base: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.kinds = kinds
        self.retry_base = retry_base
        self.on_change = on_change

    async def run(self, job_id: str, owner: str) -> Outcome:
        claim = await self.store.claim(job_id, owner)
        if claim.job is None:
            return Outcome("retry", claim.retry_in) if claim.retry_in is not None else DONE
        job = claim.job
        self.on_change()
        try:
            if job.attempt > job.max_attempts:
                raise JobFailed(f"Gave up after {job.max_attempts} attempts.", "too_many_attempts")
            result = await self._run_kind(job, owner)
        except LeaseLost:
            return DONE
        except JobFailed as exc:
            await self._finish(job_id, owner, status="failed", error=(exc.message, exc.code))
            return DONE
        except GatewayError as exc:
            if (exc.status == 429 and exc.code != "quota_exceeded") or exc.status >= 500:
                return await self._retry_or_fail(job, owner, exc.message, exc.code or "upstream_error")
            await self._finish(job_id, owner, status="failed", error=(exc.message, exc.code or "invalid_request"))
            return DONE
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s (%s) attempt %d crashed", job_id, job.kind, job.attempt)
            return await self._retry_or_fail(job, owner, f"{type(exc).__name__}: {exc}", "internal_error")
        await self._finish(job_id, owner, status="succeeded", result=result)
        return DONE

    async def _finish(self, job_id: str, owner: str, **kw: Any) -> None:
        await self.store.finish(job_id, owner, **kw)
        self.on_change()

    async def _retry_or_fail(self, job: Job, owner: str, message: str, code: str) -> Outcome:
        if job.attempt >= job.max_attempts:
            await self._finish(job.id, owner, status="failed", error=(message, code))
            return DONE
        delay = min(self.retry_base * 2 ** (job.attempt - 1), MAX_RETRY_DELAY) * random.uniform(0.8, 1.2)
        if await self.store.requeue(job.id, owner, delay=delay, reason=f"attempt {job.attempt} failed: {message}"):
            self.on_change()
            return Outcome("retry", delay)
        return DONE

    async def _run_kind(self, job: Job, owner: str) -> dict[str, Any]:
        kind = self.kinds.get(job.kind)
        if kind is None:
            raise JobFailed(f"This server does not know the job kind {job.kind!r}.", "unknown_kind")
        principal = await owner_principal(self.store.sessions, job)
        ctx = JobContext(
            job_id=job.id,
            kind=job.kind,
            attempt=job.attempt,
            owner=owner,
            principal=principal,
            pipeline=self.pipeline,
            store=self.store,
            checkpoint=job.checkpoint,
            app_id=job.app_id,
        )
        work = asyncio.ensure_future(kind.run(ctx, job.input))
        lost = asyncio.Event()
        beat = asyncio.ensure_future(self._heartbeat(job.id, owner, work, lost))
        try:
            return await work
        except asyncio.CancelledError:
            if lost.is_set():
                raise LeaseLost(job.id) from None
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _heartbeat(self, job_id: str, owner: str, work: asyncio.Future[Any], lost: asyncio.Event) -> None:
        """Keep the lease while the kind runs; stop the kind when the job is not ours any more."""
        interval = max(self.store.lease_seconds / 3, 0.05)
        while not work.done():
            await asyncio.sleep(interval)
            try:
                ours = await self.store.heartbeat(job_id, owner)
            except Exception:
                log.warning("job %s: heartbeat failed; trying again", job_id, exc_info=True)
                continue
            if not ours:
                lost.set()
                work.cancel()
                return


async def owner_principal(sessions: async_sessionmaker[AsyncSession], job: Job) -> Principal:
    """The job runs as its owner, with the owner's current rights: a revoked key or a
    deactivated user stops their queued work."""
    async with sessions() as session:
        user = await session.get(User, job.user_id)
        key = await session.get(ApiKey, job.api_key_id) if job.api_key_id else None
        bound = await session.get(AppKey, job.api_key_id) if job.api_key_id else None
    if user is None or not user.is_active:
        raise JobFailed("The user who started this job is no longer active.", "owner_inactive")
    allowed = job.allowed_models
    if job.api_key_id:
        if key is None or key.revoked_at is not None:
            raise JobFailed("The API key that started this job was revoked.", "api_key_revoked")
        allowed = key.allowed_models
        if bound is not None and bound.app_id == job.app_id:
            allowed = None  # an app's own key runs that app with the app's model (as apps.runs does)
    return Principal(
        org_id=job.org_id,
        user_id=job.user_id,
        api_key_id=job.api_key_id,
        team_id=job.team_id,
        role=user.role,
        allowed_models=frozenset(allowed) if allowed is not None else None,
    )
