"""Celery on RabbitMQ or Redis: the scale-out job backend (`aiport worker`).

A message only carries a job id; the job's state lives in PostgreSQL and the task body is
the same `JobExecutor.run` the in-process backend calls. Delivery is at-least-once
(acks late, requeued when a worker dies, redelivered by Redis after the visibility
timeout); the job's lease and guarded writes make it exactly-once where it matters: one
result, one notification, one set of webhook events.

Each worker process keeps one asyncio loop in a thread with a full Runtime (the same
pipeline, quotas and audit writer as the server), built on first use; tasks from the
pool's threads run on it. The audit writer is flushed after every task and closed when
the worker stops, so no record waits in memory longer than a task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

from aiport.config import Settings

if TYPE_CHECKING:
    from aiport.web.runtime import Runtime

log = logging.getLogger("aiport.jobs.worker")
T = TypeVar("T")

TASK_NAME = "aiport.run_job"


def create_celery(settings: Settings, *, worker: bool = False, warm: bool = True) -> Celery:
    """The Celery app for publishing (the server) or, with `worker`, for running jobs.
    `warm` builds the worker's runtime at start (not with prefork: never fork a process
    that already runs an event loop thread; each child builds its own on first use)."""
    if not settings.broker_url:
        raise ValueError("AIPORT_BROKER_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672// or redis://...)")
    app = Celery("aiport", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.job_queue,
        task_acks_late=True,  # a job's message is acked when the job has ended, not when it starts
        task_reject_on_worker_lost=True,  # a pool process killed mid-job: requeue, don't drop
        worker_prefetch_multiplier=1,  # a worker holds only the jobs it runs
        task_ignore_result=True,  # results live in the jobs table
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        broker_transport_options={
            # Redis: an unacked message returns to the queue after this long (a killed worker's job)
            "visibility_timeout": settings.broker_visibility_timeout,
            "unacked_restore_interval": max(1, int(settings.broker_visibility_timeout // 4) or 1),
            "unacked_restore_throttle": 1,
            "confirm_publish": True,  # RabbitMQ: a publish returns once the broker has it
        },
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    if worker:
        _install_tasks(app, WorkerRuntime(settings), warm=warm)
    return app


class WorkerRuntime:
    """One event loop thread and one Runtime per worker process (rebuilt after a fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.owner = f"celery:{socket.gethostname()}:{os.getpid()}"
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Runtime], Awaitable[T]]) -> T:
        """Run `fn(runtime)` on the worker's loop and wait for it (from a pool thread)."""
        loop = self._ensure()
        future: Future[T] = asyncio.run_coroutine_threadsafe(self._with_runtime(fn), loop)
        return future.result()

    async def _with_runtime(self, fn: Callable[[Runtime], Awaitable[T]]) -> T:
        if self._runtime is None:
            from aiport.web.runtime import Runtime

            self._runtime = await Runtime.start(self.settings, migrate=False)
        return await fn(self._runtime)

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self.owner = f"celery:{socket.gethostname()}:{os.getpid()}"
                self._runtime = None
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="aiport-worker-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def shutdown(self) -> None:
        """Stop gracefully: running jobs go back to the queue, the audit writer flushes."""
        with self._lock:
            loop, runtime = self._loop, self._runtime
            self._loop = self._runtime = None
        if loop is None or self._pid != os.getpid():
            return
        if runtime is not None:
            try:
                asyncio.run_coroutine_threadsafe(runtime.close(), loop).result(60)
            except Exception:
                log.exception("worker shutdown: closing the runtime failed")
        loop.call_soon_threadsafe(loop.stop)


async def _nothing(_rt: Runtime) -> None:
    return None


def _install_tasks(app: Celery, worker: WorkerRuntime, *, warm: bool) -> None:
    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
    def run_job(self: Any, job_id: str) -> None:
        async def go(rt: Runtime) -> Any:
            assert rt.jobs is not None
            try:
                return await rt.jobs.executor.run(job_id, worker.owner)
            finally:
                await rt.audit.flush()

        outcome = worker.call(go)
        if outcome.state == "retry":
            raise self.retry(countdown=outcome.retry_in, max_retries=None)

    @worker_ready.connect(weak=False)
    def _on_worker_ready(**_: Any) -> None:
        """Build the runtime now (threads/solo pools), not on the first job: a bad database
        URL shows at start, and the first job does not wait for it."""
        if warm:
            worker.call(_nothing)

    @worker_shutdown.connect(weak=False)
    def _on_worker_shutdown(**_: Any) -> None:
        worker.shutdown()

    @worker_process_shutdown.connect(weak=False)
    def _on_process_shutdown(**_: Any) -> None:
        worker.shutdown()
