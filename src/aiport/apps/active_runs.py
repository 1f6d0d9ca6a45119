"""Streaming app runs by conversation, so `POST /api/conversations/{id}/stop` can end one,
in whichever process is streaming it.

Without Redis one process serves, and a run is found in it. With Redis (several gateway
processes behind a load balancer), each run is also registered as `aiport:run:<id>` and a
stop for a run streamed elsewhere is published on `aiport:runs:stop`, which every process
listens to; the process that holds the run sets its stop event. The registration expires
after `RUN_TTL_SECONDS`, so a process that dies mid-run leaves nothing behind for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from aiport.apps.runs import PreparedRun

log = logging.getLogger("aiport.runs")

CHANNEL = "aiport:runs:stop"
RUN_TTL_SECONDS = 3600
_KEY = "aiport:run:"
_FORGET = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ActiveRuns:
    def __init__(self, redis: Any | None = None) -> None:
        self._runs: dict[str, PreparedRun] = {}
        self._redis = redis
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Listen for stops published by other processes (with Redis only)."""
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="aiport-run-stops")

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._background:
            await asyncio.wait(self._background, timeout=2)

    async def add(self, prepared: PreparedRun) -> None:
        self._runs[prepared.conversation.id] = prepared
        if self._redis is not None:
            try:
                await self._redis.set(_KEY + prepared.conversation.id, prepared.assistant_id, ex=RUN_TTL_SECONDS)
            except RedisError:  # the run goes on; only a stop sent to another process would miss it
                log.warning("could not register run %s in Redis", prepared.conversation.id, exc_info=True)

    def discard(self, prepared: PreparedRun) -> None:
        conversation_id = prepared.conversation.id
        if self._runs.get(conversation_id) is prepared:
            del self._runs[conversation_id]
            if self._redis is not None:  # only this run's registration, not a newer one's
                task = asyncio.get_running_loop().create_task(self._forget(conversation_id, prepared.assistant_id))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def stop(self, conversation_id: str) -> bool:
        """Ask the run of this conversation to stop; False if none is streaming."""
        if self._stop_here(conversation_id):
            return True
        if self._redis is None:
            return False
        try:
            if not await self._redis.exists(_KEY + conversation_id):
                return False
            return bool(await self._redis.publish(CHANNEL, conversation_id))
        except RedisError:
            log.warning("could not publish a stop for run %s", conversation_id, exc_info=True)
            return False

    def _stop_here(self, conversation_id: str) -> bool:
        prepared = self._runs.get(conversation_id)
        if prepared is None:
            return False
        prepared.stop.set()
        return True

    async def _forget(self, conversation_id: str, run_id: str) -> None:
        try:
            await self._redis.eval(_FORGET, 1, _KEY + conversation_id, run_id)  # type: ignore[union-attr]
        except RedisError:  # it expires on its own
            log.warning("could not unregister run %s in Redis", conversation_id, exc_info=True)

    async def listening(self) -> None:
        """Until this process receives published stops (for tests and startup checks)."""
        await self._listening.wait()

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._listening.set()
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self._stop_here(data.decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                self._listening.clear()
                log.warning("lost the run-stop channel; listening again in 1 s", exc_info=True)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
