"""Which Celery jobs were handed to the broker, recorded in batches.

The record lets the orphan sweep find a job whose process died between committing it and
publishing it (jobs/service.py). One UPDATE per short interval for all the jobs published
meanwhile, instead of one transaction per accepted job: that transaction was 12 % of the
accept path's busy samples (docs/benchmarks.md). A record lost with a crash costs nothing
but a second message one lease later, which the lease claim ignores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiport.jobs.store import JobStore

log = logging.getLogger("aiport.jobs")


class PublicationLog:
    def __init__(self, store: JobStore, interval: float = 0.05) -> None:
        self._store = store
        self._interval = interval
        self._pending: list[str] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, job_id: str) -> None:
        self._pending.append(job_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon(), name="aiport-jobs-published")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._interval)
        await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._store.mark_published(batch)
        except Exception:  # harmless: the orphan sweep publishes them once more, and a copy is ignored
            log.warning("could not record the publication of %d job(s)", len(batch), exc_info=True)

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
