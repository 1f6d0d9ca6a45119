"""Admission in one Redis round trip: rate limits, the cache lookup and the quota reservation.

Each of these used to be its own round trip (up to ten for five rate checks alone), and
with redis-py every round trip costs the gateway ~0.15 ms of CPU, most of what the
control stages cost. The script is assembled from the pieces' own Lua: `limits`' sliding
window scripts (gateway/ratelimit.py) and the quota ledger's reserve script
(gateway/ledger.py), so each keeps one definition. Inside the script, in order:

1. every rate check is consumed in turn, stopping at the first one over its limit
   (the checks after it are not consumed), and its window is read back for the headers;
2. the response cache: a cached answer needs no reservation, because it costs nothing;
3. the quotas are reserved, all or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiport.gateway.ledger import RedisLedger
from aiport.gateway.lua import LuaScript
from aiport.gateway.ratelimit import RateLimiter

_MAIN = """
local nrate = tonumber(ARGV[1])
local nquota_keys = tonumber(ARGV[2])
local has_cache = tonumber(ARGV[3])
local windows = {}
local k, a = 1, 4
for i = 1, nrate do
  local pair = {KEYS[k], KEYS[k + 1]}
  local w = rl_acquire_window(pair, {ARGV[a], ARGV[a + 1], ARGV[a + 2]})
  local ok = w ~= false
  if not ok then w = rl_window(pair, {ARGV[a + 1]}) end
  windows[i] = {w[1] or 0, w[2] or 0, w[3] or 0, w[4] or 0}
  if not ok then return {windows, i, false, false} end
  k = k + 2
  a = a + 3
end
if has_cache == 1 then
  local cached = redis.call('GET', KEYS[k])
  if cached then return {windows, 0, cached, false} end
  k = k + 1
end
if nquota_keys == 0 then return {windows, 0, false, false} end
local qkeys = {}
for i = 1, nquota_keys do qkeys[i] = KEYS[k + i - 1] end
local qargs = {}
for i = a, #ARGV do qargs[#qargs + 1] = ARGV[i] end
return {windows, 0, false, quota_reserve(qkeys, qargs)}
"""


@dataclass(frozen=True, slots=True)
class AdmissionReply:
    windows: list[list[Any]]  # per consumed rate check: limits' sliding-window row
    rate_refused: int  # 1-based index of the rate check over its limit, 0 if none
    cached: bytes | None  # the cache entry, when one was found (then nothing was reserved)
    quota: list[Any] | None  # the reserve script's answer, when quotas were reserved


class AdmissionScript:
    def __init__(self, redis: Any, limiter: RateLimiter) -> None:
        self._redis = redis
        self._script = LuaScript(limiter.lua_functions() + RedisLedger.lua_function() + _MAIN)

    async def run(
        self,
        rate: tuple[list[str], list[Any]],
        cache_key: str | None,
        quota: tuple[list[str], list[Any]],
    ) -> AdmissionReply:
        rate_keys, rate_args = rate
        quota_keys, quota_args = quota
        keys = [*rate_keys, *([cache_key] if cache_key else []), *quota_keys]
        args = [len(rate_keys) // 2, len(quota_keys), 1 if cache_key else 0, *rate_args, *quota_args]
        windows, refused, cached, reserved = await self._script(self._redis, keys, args)
        return AdmissionReply(windows or [], int(refused), cached, reserved)
