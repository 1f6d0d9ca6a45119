"""A read-through cache for the gateway's database lookups (API keys, org rules).

An entry is answered for `max_age` seconds at most. Past half that age, a call starts one
background load that renews the entry before it expires, so under traffic no call waits
on the database; once expired (after an idle spell) calls wait for one load together.
Before this, every entry expired for all callers at once and each call arriving during
the reload ran its own query: a burst of queries on the hot path every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger("aiport.cache")


class RenewingCache(Generic[K, V]):
    def __init__(
        self, load: Callable[[K], Awaitable[V | None]], max_age: float, *, what: str, max_entries: int = 100_000
    ) -> None:
        """`load` returns None for "no such thing" (never cached); `what` names it in logs."""
        self._load = load
        self._max_age = max_age
        self._what = what
        self._max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}  # key -> (value, loaded at)
        self._loading: dict[K, asyncio.Future[V | None]] = {}
        self._generation = 0  # bumped by invalidate: a load that started before is not kept

    async def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is not None:
            age = time.monotonic() - hit[1]
            if age < self._max_age:
                if age >= self._max_age / 2 and key not in self._loading:
                    self._start(key).add_done_callback(_retrieve)  # renewed behind the calls
                return hit[0]
        loading = self._loading.get(key)
        return await asyncio.shield(loading if loading is not None else self._start(key))

    def invalidate(self, key: K | None = None) -> None:
        """Forget one entry, or all: the next call reads the database."""
        self._generation += 1
        if key is None:
            self._entries.clear()
            self._loading.clear()
        else:
            self._entries.pop(key, None)
            self._loading.pop(key, None)

    def _start(self, key: K) -> asyncio.Future[V | None]:
        future = asyncio.ensure_future(self._load_and_keep(key, self._generation))
        self._loading[key] = future
        return future

    async def _load_and_keep(self, key: K, generation: int) -> V | None:
        started = time.monotonic()
        current = generation == self._generation
        try:
            value = await self._load(key)
        except Exception:
            last = self._entries.get(key)
            if last is None:
                raise
            # the database is unreachable: keep the last value read, and try again later
            log.exception("reading %s failed; keeping the last value read", self._what)
            if generation == self._generation:
                self._entries[key] = (last[0], time.monotonic())
            return last[0]
        finally:
            current = generation == self._generation
            if current:
                self._loading.pop(key, None)
        if current:
            if value is None:
                self._entries.pop(key, None)
            elif self._max_age > 0:
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = (value, started)  # as old as the query, not its answer
        return value


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A background renewal's failure is logged where it happens; mark it seen."""
    if not future.cancelled():
        future.exception()
