"""Audit writer: records are queued in memory and inserted in batches off the hot path.

Nothing is lost: a failed insert is retried with backoff; if the buffer outgrows its bound
(database down for long), records spill to a JSON-lines file that is re-ingested at start;
graceful shutdown flushes everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from aiport.store.models import AuditLog

log = logging.getLogger("aiport.audit")

AuditRow = dict[str, Any]


class AuditWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_buffer: int = 100_000,
        spill_path: Path | None = None,
    ) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._spill_path = spill_path
        self._buffer: deque[AuditRow] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0
        self.failures = 0

    # ---- hot path -------------------------------------------------------------------
    def submit(self, row: AuditRow) -> None:
        """Queue one record; never blocks, never raises."""
        if len(self._buffer) >= self._max_buffer:
            self._spill([row])
            return
        self._buffer.append(row)
        self._idle.clear()
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    # ---- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        await self._reingest_spill()
        self._task = asyncio.create_task(self._run(), name="aiport-audit-writer")

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record submitted so far is in the database."""
        if not self._buffer and self._idle.is_set():
            return
        self._wakeup.set()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Flush what is queued and stop; spill whatever the database would not take."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self._buffer:
            self._spill(list(self._buffer))
            self._buffer.clear()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # ---- internals --------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._buffer:
                self._idle.set()
                if self._closing:
                    return
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
                except TimeoutError:
                    pass
                self._wakeup.clear()
                continue
            batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
            try:
                await self._insert(batch)
                self.written += len(batch)
                backoff = 0.1
            except Exception:  # the database is down or rejected the batch: keep the rows
                self.failures += 1
                log.exception("audit batch of %d failed; retrying in %.1fs", len(batch), backoff)
                self._buffer.extendleft(reversed(batch))
                if self._closing and backoff > 2:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _insert(self, batch: list[AuditRow]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(AuditLog), batch)

    def _spill(self, rows: list[AuditRow]) -> None:
        if self._spill_path is None:
            log.error("audit buffer full and no spill file: %d records dropped", len(rows))
            return
        self._spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self._spill_path.open("ab") as f:
            for row in rows:
                f.write(orjson.dumps(row, default=_json_default) + b"\n")
        log.warning("audit: spilled %d records to %s", len(rows), self._spill_path)

    async def _reingest_spill(self) -> None:
        if self._spill_path is None or not self._spill_path.exists():
            return
        taken = self._spill_path.with_suffix(f".{int(time.time())}.ingesting")
        self._spill_path.rename(taken)
        rows = [orjson.loads(line) for line in taken.read_bytes().splitlines() if line.strip()]
        for row in rows:
            if isinstance(row.get("created_at"), str):
                row["created_at"] = datetime.fromisoformat(row["created_at"])
        for i in range(0, len(rows), self._batch_size):
            await self._insert(rows[i : i + self._batch_size])
        taken.unlink()
        log.info("audit: re-ingested %d spilled records", len(rows))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
