"""Requests and tokens per minute, global across processes, on the `limits` library.

Sliding-window counters (exact enough, O(1) memory even for token costs) over an
in-process store or Redis. Tokens per minute are counted on admission as prompt
estimate + max output tokens, as OpenAI does.

With Redis, the admission script (gateway/admission_script.py) runs the `limits`
library's own sliding-window Lua for every check in the same round trip as the quota
reservation and the cache lookup; `redis_layout` and `verdict` are the two halves of
that, on the same keys `limits` itself reads and writes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from aiport.domain.errors import GatewayError
from aiport.gateway.rules import RateRule

log = logging.getLogger("aiport.ratelimit")


class RateLimitUnavailable(GatewayError):
    """The shared counter store is down and rate limits are set to fail closed."""

    status = 503
    type = "api_error"
    code = "rate_limit_unavailable"


@dataclass(frozen=True, slots=True)
class RateCheck:
    rule: RateRule
    kind: str  # requests | tokens
    limit: int
    cost: int


@dataclass(slots=True)
class RateVerdict:
    refused: RateCheck | None
    retry_after: int
    headers: dict[str, str]


def storage_uri(redis_url: str | None) -> str:
    if not redis_url:
        return "async+memory://"
    return "async+" + redis_url if redis_url.startswith(("redis://", "rediss://")) else redis_url


class RateLimiter:
    def __init__(self, redis_url: str | None, *, fail_open: bool = True) -> None:
        options: dict[str, float | str | bool] = {}
        if redis_url:  # redis-py (already a dependency) rather than limits' default coredis client
            options = {"implementation": "redispy", "socket_connect_timeout": 2, "socket_timeout": 2}
        self._storage: Any = storage_from_string(storage_uri(redis_url), key_prefix="aiport-rl", **options)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self.fail_open = fail_open
        self._items: dict[int, RateLimitItemPerMinute] = {}
        self._keys: dict[tuple[int, str, str, str], tuple[str, str]] = {}

    def _item(self, limit: int) -> RateLimitItemPerMinute:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = RateLimitItemPerMinute(limit)
        return item

    async def hit(self, checks: list[RateCheck]) -> RateVerdict:
        """Consume every check in order; stop at the first that is over its limit.

        A refused call may have consumed earlier checks: that errs on the safe side (it
        never admits more than a limit). Overlapping the checks' round trips with
        asyncio.gather was measured: more CPU per request, no lower latency."""
        headers: dict[str, str] = {}
        try:
            for check in checks:
                _, ok, remaining, reset = await self._consume(check)
                self._tighten(headers, check, remaining, reset)
                if not ok:
                    return RateVerdict(refused=check, retry_after=reset, headers=headers)
        except Exception as exc:
            self.unavailable(exc)
            headers["x-aiport-degraded"] = "rate-limits"
        return RateVerdict(refused=None, retry_after=0, headers=headers)

    def unavailable(self, exc: Exception) -> None:
        """The counter store failed: refuse (fail closed) or log and let the call through."""
        if not self.fail_open:
            raise RateLimitUnavailable(
                "Rate limits cannot be checked right now (the shared counter store is unreachable); try again shortly.",
                headers={"retry-after": "5"},
            ) from exc
        log.warning("rate limiter unavailable (%s); failing open", exc)

    # ---- one round trip with the other admission counters (Redis) ------------------------
    def lua_functions(self) -> str:
        """`limits`' own sliding-window scripts as Lua functions the admission script calls:
        `rl_window` reads a window; `rl_acquire_window` consumes one check and returns its
        window after the hit (false when over the limit, nothing consumed).

        The acquire script reads the whole window before it counts the hit, so its last
        `return true` is made to return that window instead, which saves four Redis calls
        per check against reading it again (a fallback reads it again if `limits` changes
        the script's shape). The keys and the counting stay `limits`' own."""
        bridge = self._storage.bridge
        acquire = _as_text(bridge.lua_acquire_sliding_window.script)
        window = _as_text(bridge.lua_sliding_window.script)
        functions = (
            f"local function rl_acquire(KEYS, ARGV)\n{acquire}\nend\n"
            f"local function rl_window(KEYS, ARGV)\n{window}\nend\n"
        )
        head, found, tail = acquire.rpartition("return true")
        if found and not tail.strip() and all(name in head for name in _ACQUIRE_READS):
            return functions + f"local function rl_acquire_window(KEYS, ARGV)\n{head}{_WINDOW_AFTER_HIT}{tail}\nend\n"
        return functions + _ACQUIRE_THEN_READ

    def redis_layout(self, checks: list[RateCheck]) -> tuple[list[str], list[Any]]:
        """KEYS (previous, current window per check) and ARGV (limit, expiry, cost per check),
        named exactly as `limits`' Redis storage names them."""
        keys: list[str] = []
        args: list[Any] = []
        for check in checks:
            keys += self._window_keys(check)
            args += [check.limit, 60, check.cost]
        return keys, args

    def verdict(self, checks: list[RateCheck], windows: list[list[Any]], refused: int) -> RateVerdict:
        """Headers and refusal from the windows the script read after each check's hit.

        `refused` is the 1-based index of the check that was over its limit (0: none); the
        checks after it were not consumed. Remaining and reset follow `limits`'
        SlidingWindowCounterRateLimiter.get_window_stats (tests/gateway/test_ratelimit_interop.py
        holds the two to the same numbers)."""
        headers: dict[str, str] = {}
        now = time.time()
        for index, (check, row) in enumerate(zip(checks, windows, strict=False), start=1):
            remaining, reset_at = _window_stats(check.limit, 60, row, now)
            reset = max(0, int(reset_at - now) + 1)
            self._tighten(headers, check, remaining, reset)
            if index == refused:
                return RateVerdict(refused=check, retry_after=reset, headers=headers)
        return RateVerdict(refused=None, retry_after=0, headers=headers)

    def _window_keys(self, check: RateCheck) -> tuple[str, str]:
        ids = (check.limit, check.rule.scope, check.rule.subject, check.kind)
        hit = self._keys.get(ids)
        if hit is None:
            key = self._item(check.limit).key_for(*ids[1:])
            storage, bridge = self._storage, self._storage.bridge
            hit = (
                bridge.prefixed_key(storage._previous_window_key(key)),
                bridge.prefixed_key(storage._current_window_key(key)),
            )
            if len(self._keys) > 50_000:
                self._keys.clear()
            self._keys[ids] = hit
        return hit

    async def _consume(self, check: RateCheck) -> tuple[RateCheck, bool, int, int]:
        item = self._item(check.limit)
        ids = (check.rule.scope, check.rule.subject, check.kind)
        ok = await self._limiter.hit(item, *ids, cost=check.cost)
        stats = await self._limiter.get_window_stats(item, *ids)
        return check, ok, stats.remaining, max(0, int(stats.reset_time - time.time()) + 1)

    @staticmethod
    def _tighten(headers: dict[str, str], check: RateCheck, remaining: int, reset: int) -> None:
        """Report the most restrictive limit of each kind, OpenAI-style."""
        name = check.kind
        current = headers.get(f"x-ratelimit-remaining-{name}")
        if current is None or remaining < int(current):
            headers[f"x-ratelimit-limit-{name}"] = str(check.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(remaining, 0))
            headers[f"x-ratelimit-reset-{name}"] = f"{reset}s"


# the locals of limits' acquire script the window after a hit is made of
_ACQUIRE_READS = ("previous_count", "previous_ttl", "current_count", "current_ttl", "amount", "expiry")
# after the hit: the current count grew by the amount; a counter the hit created lives 2 x expiry
_WINDOW_AFTER_HIT = (
    "if current_ttl <= 0 and current_count == 0 then current_ttl = expiry * 2 end\n"
    "return {previous_count, previous_ttl, current_count + amount, current_ttl}"
)
_ACQUIRE_THEN_READ = """local function rl_acquire_window(KEYS, ARGV)
  if not rl_acquire(KEYS, ARGV) then return false end
  return rl_window(KEYS, {ARGV[2]})
end
"""


def _as_text(script: str | bytes) -> str:
    return script.decode() if isinstance(script, bytes) else script


def _window_stats(limit: int, expiry: int, row: list[Any], now: float) -> tuple[int, float]:
    """(remaining, reset time) of one sliding window read by `limits`' sliding_window.lua:
    [previous count, previous ttl ms, current count, current ttl ms]."""
    previous_count, current_count = int(row[0] or 0), int(row[2] or 0)
    previous_expires_in = max(0.0, float(row[1] or 0)) / 1000
    current_expires_in = max(0.0, float(row[3] or 0)) / 1000
    weighted = previous_count * previous_expires_in / expiry + current_count
    remaining = max(0, limit - math.floor(weighted))
    if not (previous_count or current_count):
        return remaining, now
    previous_reset_in = previous_expires_in % (expiry / previous_count) if previous_count else math.inf
    current_reset_in = current_expires_in % expiry if current_count else math.inf
    return remaining, now + min(previous_reset_in, current_reset_in)
