"""Quota ledgers: atomic reserve-then-settle counters, in process or in Redis.

A reservation checks every quota a call touches and increments them all, or none, in one
atomic step (a Lua script in Redis; a section without awaits in process). Concurrent
calls can therefore never overrun a quota by more than what one call uses beyond its
reservation. Counters start from the durable totals in the database (the audit log) when
a window is first seen, so a restart or a new Redis loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiport.gateway.lua import LuaScript
from aiport.gateway.rules import QuotaRule


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime  # when the quota resets (rolling: when the current slice ends)
    key: str
    prev_key: str | None = None  # rolling windows: the previous slice, weighted
    prev_start: datetime | None = None
    prev_weight: float = 0.0


_calendar_windows: dict[tuple[str, str], Window] = {}


def window_for(rule: QuotaRule, now: datetime | None = None) -> Window:
    now = now or datetime.now(UTC)
    if rule.period != "rolling":  # a calendar window is the same until it ends: computed once
        hit = _calendar_windows.get((rule.id, rule.period))
        if hit is not None and hit.start <= now < hit.end:
            return hit
        window = _window(rule, now)
        if len(_calendar_windows) > 10_000:
            _calendar_windows.clear()
        _calendar_windows[(rule.id, rule.period)] = window
        return window
    return _window(rule, now)


def _window(rule: QuotaRule, now: datetime) -> Window:
    base = f"aiport:q:{rule.id}:"
    if rule.period == "rolling":
        span = max(int(rule.rolling_seconds or 86400), 1)
        epoch = now.timestamp()
        index = int(epoch // span)
        start = datetime.fromtimestamp(index * span, UTC)
        weight = 1.0 - (epoch - index * span) / span
        return Window(
            start,
            start + timedelta(seconds=span),
            f"{base}r{index}",
            f"{base}r{index - 1}",
            start - timedelta(seconds=span),
            weight,
        )
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if rule.period == "day":
        start, end = day, day + timedelta(days=1)
    elif rule.period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:  # month
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return Window(start, end, f"{base}{int(start.timestamp())}")


@dataclass(frozen=True, slots=True)
class Charge:
    """One quota touched by one call: how much the call reserves against it."""

    rule: QuotaRule
    window: Window
    amount: float

    @property
    def ttl(self) -> int:
        span = (self.window.end - self.window.start).total_seconds()
        return int(span * 2) + 60


@dataclass(frozen=True, slots=True)
class Outcome:
    refused: Charge | None
    used: list[float]  # per charge: usage after this reservation (or, if refused, before it)


Seed = Callable[[QuotaRule, datetime, datetime], Awaitable[float]]


class QuotaLedger(Protocol):
    async def reserve(self, charges: list[Charge], seed: Seed) -> Outcome: ...

    async def settle(self, charges: list[Charge], actual: list[float]) -> None: ...


class MemoryLedger:
    """For one process (the embedded default)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, float]] = {}  # key -> (value, expires at monotonic)

    def _get(self, key: str | None) -> float:
        if key is None:
            return 0.0
        hit = self._values.get(key)
        if hit is None or hit[1] < time.monotonic():
            return 0.0
        return hit[0]

    async def _ensure(self, key: str, rule: QuotaRule, start: datetime, end: datetime, ttl: int, seed: Seed) -> None:
        hit = self._values.get(key)
        if hit is not None and hit[1] >= time.monotonic():
            return
        value = await seed(rule, start, end)
        if key not in self._values or self._values[key][1] < time.monotonic():
            self._values[key] = (value, time.monotonic() + ttl)

    async def reserve(self, charges: list[Charge], seed: Seed) -> Outcome:
        for c in charges:
            w = c.window
            await self._ensure(w.key, c.rule, w.start, w.end, c.ttl, seed)
            if w.prev_key and w.prev_start:
                await self._ensure(w.prev_key, c.rule, w.prev_start, w.start, c.ttl, seed)
        # no await from here on: check-and-increment is atomic in the event loop
        used = [self._get(c.window.key) + self._get(c.window.prev_key) * c.window.prev_weight for c in charges]
        for c, u in zip(charges, used, strict=True):
            if u + c.amount > c.rule.limit:
                return Outcome(refused=c, used=used)
        for c in charges:
            value, expires = self._values[c.window.key]
            self._values[c.window.key] = (value + c.amount, expires)
        return Outcome(refused=None, used=[u + c.amount for c, u in zip(charges, used, strict=True)])

    async def settle(self, charges: list[Charge], actual: list[float]) -> None:
        for c, real in zip(charges, actual, strict=True):
            hit = self._values.get(c.window.key)
            if hit is not None:
                self._values[c.window.key] = (hit[0] + real - c.amount, hit[1])


RESERVE_LUA = """
local n = tonumber(ARGV[1])
local used = {}
for i = 1, n do
  local base = 1 + (i - 1) * 4
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local weight = tonumber(ARGV[base + 3])
  local cur = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local prev = 0
  if weight > 0 then prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0') end
  used[i] = cur + prev * weight
  if used[i] + amount > limit then
    local out = {i}
    for j = 1, i do out[j + 1] = tostring(used[j]) end
    return out
  end
end
local out = {0}
for i = 1, n do
  local base = 1 + (i - 1) * 4
  local amount = ARGV[base + 2]
  redis.call('INCRBYFLOAT', KEYS[2 * i - 1], amount)
  redis.call('EXPIRE', KEYS[2 * i - 1], tonumber(ARGV[base + 4]))
  out[i + 1] = tostring(used[i] + tonumber(amount))
end
return out
"""

# A window that ended meanwhile is not touched (INCRBYFLOAT would re-create it with no TTL).
SETTLE_LUA = """
local n = tonumber(ARGV[1])
for i = 1, n do
  if tonumber(ARGV[i + 1]) ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[i + 1])
  end
end
if #KEYS > n then redis.call('SET', KEYS[n + 1], ARGV[n + 2], 'EX', tonumber(ARGV[n + 3])) end
return 1
"""


class RedisLedger:
    """Shared by every gateway process of a deployment."""

    def __init__(self, redis: Any, scripts: Any = None) -> None:
        self._redis = redis
        self._lane = scripts if scripts is not None else redis  # where the scripts run (gateway/resp.py)
        self._script = LuaScript(RESERVE_LUA)
        self._settle = LuaScript(SETTLE_LUA)
        self._seeded: set[str] = set()
        self._seeding: dict[str, asyncio.Future[None]] = {}  # windows being seeded

    async def _ensure(self, key: str, rule: QuotaRule, start: datetime, end: datetime, ttl: int, seed: Seed) -> None:
        """Start a window's counter from the durable total, once per process: calls that
        arrive while it is being seeded wait for that one seed instead of querying again."""
        if key in self._seeded:
            return
        task = self._seeding.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = self._seeding[key] = asyncio.ensure_future(self._seed_window(key, rule, start, end, ttl, seed))
            task.add_done_callback(lambda done: self._seeded_or_not(key, done))
        await asyncio.shield(task)  # a caller that goes away leaves the seed running for the others

    async def _seed_window(
        self, key: str, rule: QuotaRule, start: datetime, end: datetime, ttl: int, seed: Seed
    ) -> None:
        if not await self._redis.exists(key):
            value = await seed(rule, start, end)
            await self._redis.set(key, repr(float(value)), nx=True, ex=ttl)
        if len(self._seeded) > 50_000:
            self._seeded.clear()
        self._seeded.add(key)

    def _seeded_or_not(self, key: str, task: asyncio.Future[None]) -> None:
        """A finished seed leaves the table; a failed one is tried again by the next call."""
        if self._seeding.get(key) is task:
            del self._seeding[key]
        if not task.cancelled():
            task.exception()  # retrieved: the callers waiting on it re-raise it

    async def reserve(self, charges: list[Charge], seed: Seed) -> Outcome:
        keys, args = await self.prepare(charges, seed)
        return self.outcome(charges, await self._script(self._lane, keys, args))

    async def prepare(self, charges: list[Charge], seed: Seed) -> tuple[list[str], list[Any]]:
        """Seed windows seen for the first time, then the KEYS and ARGV of the reserve script
        (also run inside the admission script, gateway/admission_script.py)."""
        keys: list[str] = []
        args: list[Any] = [len(charges)]
        for c in charges:
            w = c.window
            await self._ensure(w.key, c.rule, w.start, w.end, c.ttl, seed)
            if w.prev_key and w.prev_start:
                await self._ensure(w.prev_key, c.rule, w.prev_start, w.start, c.ttl, seed)
            keys += [w.key, w.prev_key or w.key]
            args += [c.rule.limit, c.amount, w.prev_weight if w.prev_key else 0, c.ttl]
        return keys, args

    @staticmethod
    def outcome(charges: list[Charge], result: list[Any]) -> Outcome:
        index = int(result[0])
        used = [float(x) for x in result[1:]]
        if index:
            return Outcome(refused=charges[index - 1], used=used + [0.0] * (len(charges) - len(used)))
        return Outcome(refused=None, used=used)

    @staticmethod
    def lua_function() -> str:
        """The reserve script as a Lua function the admission script calls."""
        return f"local function quota_reserve(KEYS, ARGV)\n{RESERVE_LUA}\nend\n"

    async def settle(
        self, charges: list[Charge], actual: list[float], *, also_set: tuple[str, bytes, int] | None = None
    ) -> None:
        """Settle in one round trip; `also_set` (key, value, ttl) rides along (the answer for
        the response cache), saving the gateway a second one."""
        keys = [c.window.key for c in charges]
        args: list[Any] = [len(charges), *(real - c.amount for c, real in zip(charges, actual, strict=True))]
        if also_set is not None:
            keys.append(also_set[0])
            args += [also_set[1], also_set[2]]
        await self._settle(self._lane, keys, args)
