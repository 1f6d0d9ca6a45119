"""Where jobs run: in this process (the embedded default) or on Celery workers.

Both backends only decide *when and where* `JobExecutor.run` is called; the job's state
is always in the database. The in-process backend polls it (and is woken at once by local
submits), so jobs queued or running when the server stopped are picked up again after a
restart. The Celery backend publishes the job id; `aiport worker` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from aiport.jobs.executor import JobExecutor
from aiport.jobs.pulse import Pulse

log = logging.getLogger("aiport.jobs")


class JobBackend(Protocol):
    name: str

    async def submit(self, job_id: str) -> None:
        """Make sure the job will run; raise when it cannot be handed over."""
        ...

    def cancelled(self, job_id: str) -> None:
        """The job was cancelled in the database; stop it here if it runs here."""
        ...

    async def close(self) -> None: ...


class InProcessBackend:
    """asyncio workers in the server process, taking due jobs from the database."""

    name = "inprocess"

    def __init__(self, executor: JobExecutor, *, owner: str, concurrency: int, poll_seconds: float) -> None:
        self.executor = executor
        self.owner = owner
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.pulse = Pulse()
        self.running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._dispatch(), name="aiport-jobs-inprocess")

    async def submit(self, job_id: str) -> None:
        self.pulse.fire()

    def cancelled(self, job_id: str) -> None:
        task = self.running.get(job_id)
        if task is not None:
            task.cancel()

    async def _dispatch(self) -> None:
        while True:
            free = self.concurrency - len(self.running)
            if free > 0:
                try:
                    due = await self.executor.store.due(self.name, limit=free)
                except Exception:
                    log.exception("in-process jobs: could not read the queue")
                    due = []
                for job_id in due:
                    if job_id not in self.running:
                        self._spawn(job_id)
                if len(due) == free:
                    await asyncio.sleep(0)
                    continue
            await self.pulse.wait(self.poll_seconds)

    def _spawn(self, job_id: str) -> None:
        task = asyncio.create_task(self._run(job_id), name=f"aiport-job-{job_id}")
        self.running[job_id] = task

    async def _run(self, job_id: str) -> None:
        try:
            await self.executor.run(job_id, self.owner)
        except asyncio.CancelledError:
            pass
        except Exception:  # the database went away mid-job: the lease expires and it runs again
            log.exception("job %s: run failed", job_id)
        finally:
            self.running.pop(job_id, None)
            self.pulse.fire()  # a slot is free

    async def close(self) -> None:
        """Stop taking work, stop running jobs, and give them back to the queue at once
        (so a restart resumes them without waiting for their leases to expire)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        running = list(self.running.items())
        for _, task in running:
            task.cancel()
        await asyncio.gather(*(t for _, t in running), return_exceptions=True)
        for job_id, _ in running:
            try:
                await self.executor.store.requeue(job_id, self.owner, delay=0, reason="the server stopped; resuming")
            except Exception:
                log.exception("job %s: could not requeue at shutdown; it resumes when its lease expires", job_id)


class CeleryBackend:
    """Publishes job ids to the broker; `aiport worker` processes run them."""

    name = "celery"

    def __init__(self, app: Any, queue: str) -> None:
        self.app = app
        self.queue = queue

    async def submit(self, job_id: str) -> None:
        await asyncio.to_thread(self.publish, job_id)

    def publish(self, job_id: str, countdown: float | None = None) -> None:
        self.app.send_task("aiport.run_job", args=[job_id], queue=self.queue, countdown=countdown)

    def cancelled(self, job_id: str) -> None:
        """Workers notice at their next heartbeat: the job is no longer theirs to run."""

    async def waiting_messages(self) -> int | None:
        """How many messages wait in the queue (not yet delivered to a worker), or None when
        the broker can't say right now."""
        return await asyncio.to_thread(self._waiting_messages)

    def _waiting_messages(self) -> int | None:
        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
                declared = conn.default_channel.queue_declare(queue=self.queue, passive=True)
                return int(declared.message_count)
        except Exception as exc:  # a queue nobody declared yet is empty; a broker that is down can't say
            if "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
                return 0
            log.debug("jobs: could not read the queue length of %s: %s", self.queue, exc)
            return None

    async def close(self) -> None:
        await asyncio.to_thread(self.app.close)
