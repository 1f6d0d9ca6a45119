"""The jobs part of a running aiport process: store, executor, backend, webhook dispatcher.

Built with the Runtime (web server or Celery worker alike) and closed with it. The backend
is chosen by settings: Celery when AIPORT_BROKER_URL is set, in-process otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from aiport.config import Settings
from aiport.domain.errors import GatewayError
from aiport.domain.principal import Principal
from aiport.gateway.pipeline import Pipeline
from aiport.jobs.backends import CeleryBackend, InProcessBackend, JobBackend
from aiport.jobs.dispatcher import WebhookDispatcher
from aiport.jobs.executor import JobExecutor
from aiport.jobs.publications import PublicationLog
from aiport.jobs.pulse import Pulse
from aiport.jobs.registry import KINDS, KindRegistry
from aiport.jobs.store import JobStore
from aiport.jobs.webhook_secrets import master_key
from aiport.store.jobs import Job

log = logging.getLogger("aiport.jobs")


class BrokerUnavailable(GatewayError):
    status = 503
    type = "api_error"
    code = "broker_unavailable"


class JobService:
    def __init__(self, settings: Settings, sessions: Any, pipeline: Pipeline, kinds: KindRegistry = KINDS) -> None:
        self.settings = settings
        self.kinds = kinds
        self.changed = Pulse()  # fired on local job changes: SSE streams look at once
        self.store = JobStore(
            sessions, lease_seconds=settings.job_lease_seconds, webhook_window=settings.webhook_retry_window_seconds
        )
        self.executor = JobExecutor(
            self.store, pipeline, kinds, retry_base=settings.job_retry_base_seconds, on_change=self._on_change
        )
        self.backend: JobBackend
        if settings.broker_url:
            from aiport.jobs.celery_app import create_celery

            self.backend = CeleryBackend(create_celery(settings), settings.job_queue)
        else:
            owner = f"inprocess:{socket.gethostname()}:{os.getpid()}:{id(self):x}"
            self.backend = InProcessBackend(
                self.executor, owner=owner, concurrency=settings.job_workers, poll_seconds=settings.jobs_poll_seconds
            )
        self.webhooks = WebhookDispatcher(
            sessions,
            master_key=master_key(settings),
            allow_private=settings.webhook_allow_private,
            timeout=settings.webhook_timeout_seconds,
            retry_base=settings.webhook_retry_base_seconds,
            retry_window=settings.webhook_retry_window_seconds,
            poll_seconds=settings.jobs_poll_seconds,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.publications = PublicationLog(self.store)

    def start(self) -> None:
        """Start the background loops (needs a running event loop)."""
        if isinstance(self.backend, InProcessBackend):
            self.backend.start()
        else:
            self._tasks.append(asyncio.create_task(self._publish_orphans(), name="aiport-jobs-orphans"))
        self._tasks.append(asyncio.create_task(self.webhooks.run(), name="aiport-webhooks"))

    async def _publish_orphans(self) -> None:
        """Hand the broker the jobs it does not know about, checked every half lease:
        - committed but never published (the process crashed in between), one lease after
          their creation;
        - published but lost by the broker (a Redis without persistence restarted): still
          queued one lease after their publication while the broker's queue holds no
          message at all. A message that was only delayed (a worker prefetched it) then
          runs twice as a delivery, but once as a job: the second finds it claimed."""
        lease = self.settings.job_lease_seconds
        while True:
            await asyncio.sleep(max(lease / 2, 0.5))
            try:
                await self._republish_lost(lease)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("jobs: looking for jobs the broker lost failed")
            try:
                for job_id in await self.store.unpublished(older_than=lease, limit=100):
                    if not await self.store.take_for_publish(job_id):
                        continue  # another process took it
                    try:
                        await self.backend.submit(job_id)
                    except Exception as exc:
                        await self.store.take_for_publish(job_id, undo=True)
                        log.warning("job %s: still cannot hand it to the broker: %s", job_id, exc)
                    else:
                        log.warning("job %s was committed but never published (a crash?); published it now", job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("jobs: looking for unpublished jobs failed")

    async def _republish_lost(self, lease: float) -> None:
        assert isinstance(self.backend, CeleryBackend)
        stranded = await self.store.stranded(older_than=lease, limit=100)
        if not stranded or await self.backend.waiting_messages() != 0:
            return  # nothing waits, or the queue still holds messages (or can't say): they may be these
        for job_id, published_at in stranded:
            if not await self.store.take_for_republish(job_id, published_at):
                continue  # another process did it, or a worker took the job meanwhile
            await self.backend.submit(job_id)
            log.warning("job %s was still queued %.0f s after its publication and the broker's queue is empty: "
                        "the broker lost its message; published it again", job_id, lease)  # fmt: skip

    async def close(self) -> None:
        await self.publications.close()
        await self.backend.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.webhooks.aclose()

    def _on_change(self) -> None:
        self.changed.fire()
        self.webhooks.pulse.fire()

    async def submit(
        self,
        principal: Principal,
        *,
        kind: str,
        input: dict[str, Any],
        idempotency_key: str | None = None,
        request_id: str | None = None,
        app_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Store the job and hand it to the backend; (job, created)."""
        job, created = await self.store.create(
            principal,
            kind=kind,
            input=input,
            backend=self.backend.name,
            max_attempts=self.settings.job_max_attempts,
            idempotency_key=idempotency_key,
            request_id=request_id,
            app_id=app_id,
        )
        if not created:
            return job, False
        try:
            await self.backend.submit(job.id)
        except Exception as exc:
            log.error("job %s: the broker refused it: %s", job.id, exc)
            await self.store.fail_unclaimed(job.id, f"The job queue is unavailable: {exc}", "broker_unavailable")
            self._on_change()
            raise BrokerUnavailable(
                "The job queue (broker) is unavailable, so the job was not started. Try again shortly.",
            ) from exc
        if isinstance(self.backend, CeleryBackend):
            self.publications.add(job.id)
        self.changed.fire()
        return job, True

    async def cancel(self, job_id: str) -> Job | None:
        job = await self.store.cancel(job_id)
        if job is not None:
            self.backend.cancelled(job_id)
            self._on_change()
        return job
