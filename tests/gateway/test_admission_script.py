"""The one-round-trip admission script on the real Redis: it must count exactly as the
`limits` library does (same keys, same sliding windows), stop at the first refused check,
and reserve no quota for a cached answer or a rate-limited call."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from limits import RateLimitItemPerMinute
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from aiport.gateway.admission_script import AdmissionScript
from aiport.gateway.ledger import Charge, RedisLedger, window_for
from aiport.gateway.lua import LuaScript
from aiport.gateway.ratelimit import RateCheck, RateLimiter
from aiport.gateway.resp import RespLane
from aiport.gateway.rules import QuotaRule, RateRule
from tests.support.redis import redis_url


@pytest.fixture(params=["lane", "redis-py"])
async def parts(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RateLimiter, RedisLedger, AdmissionScript, object]]:
    """The scripts on the gateway's lean connection (as deployed) and on redis-py."""
    import redis.asyncio as aioredis

    url = redis_url("shared")
    client = aioredis.Redis.from_url(url)
    scripts = RespLane(url) if request.param == "lane" else client
    limiter = RateLimiter(url)
    yield limiter, RedisLedger(client, scripts), AdmissionScript(scripts, limiter), client
    if scripts is not client:
        await scripts.aclose()
    await client.aclose()


def _check(subject: str, kind: str, limit: int, cost: int) -> RateCheck:
    return RateCheck(RateRule(f"rl_{subject}", "key", subject, limit, None), kind, limit, cost)


def _charge(limit: float, amount: float) -> Charge:
    rule = QuotaRule(f"q_{secrets.token_hex(4)}", "user", "u1", "tokens", "day", None, limit)
    return Charge(rule, window_for(rule), amount)


async def _no_seed(*_: object) -> float:
    return 0.0


async def test_counts_exactly_as_limits_does(parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object]) -> None:
    limiter, _, script, _ = parts
    subject = secrets.token_hex(4)
    check = _check(subject, "tokens", 100, 30)
    for expected_remaining in (70, 40, 10):
        reply = await script.run(limiter.redis_layout([check]), None, ([], []))
        verdict = limiter.verdict([check], reply.windows, reply.rate_refused)
        assert verdict.refused is None
        assert verdict.headers["x-ratelimit-remaining-tokens"] == str(expected_remaining)
    # limits itself, on its own Redis client, sees the same window and agrees on what is left
    item = RateLimitItemPerMinute(100)
    strategy = SlidingWindowCounterRateLimiter(limiter._storage)
    stats = await strategy.get_window_stats(item, "key", subject, "tokens")
    assert stats.remaining == 10
    assert not await strategy.hit(item, "key", subject, "tokens", cost=11)
    assert await strategy.hit(item, "key", subject, "tokens", cost=10)
    # and what limits consumed is seen by the script: the window is full
    reply = await script.run(limiter.redis_layout([check]), None, ([], []))
    refused = limiter.verdict([check], reply.windows, reply.rate_refused)
    assert refused.refused is check and refused.retry_after >= 1
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_a_refused_check_consumes_nothing_after_it_and_reserves_no_quota(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object],
) -> None:
    limiter, ledger, script, _ = parts
    tag = secrets.token_hex(4)
    first, tight, last = (
        _check(tag + "a", "requests", 10, 1),
        _check(tag + "b", "requests", 1, 1),
        _check(tag + "c", "requests", 10, 1),
    )
    charge = _charge(1000, 100)
    quota = await ledger.prepare([charge], _no_seed)
    await script.run(limiter.redis_layout([first, tight, last]), None, quota)  # all pass, 100 reserved
    reply = await script.run(limiter.redis_layout([first, tight, last]), None, quota)
    verdict = limiter.verdict([first, tight, last], reply.windows, reply.rate_refused)
    assert verdict.refused is tight and reply.quota is None
    assert len(reply.windows) == 2  # the third check was never touched
    strategy = SlidingWindowCounterRateLimiter(limiter._storage)
    assert (await strategy.get_window_stats(RateLimitItemPerMinute(10), "key", tag + "a", "requests")).remaining == 8
    assert (await strategy.get_window_stats(RateLimitItemPerMinute(10), "key", tag + "c", "requests")).remaining == 9
    outcome = await ledger.reserve([_charge_again(charge, 0)], _no_seed)  # read the counter back
    assert outcome.used == [100.0]


def _charge_again(charge: Charge, amount: float) -> Charge:
    return Charge(charge.rule, charge.window, amount)


async def test_a_cached_answer_passes_the_rate_limits_but_reserves_nothing(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object],
) -> None:
    limiter, ledger, script, client = parts
    check = _check(secrets.token_hex(4), "requests", 10, 1)
    charge = _charge(1000, 100)
    quota = await ledger.prepare([charge], _no_seed)
    cache_key = f"aiport:cache:test:{secrets.token_hex(8)}"
    miss = await script.run(limiter.redis_layout([check]), cache_key, quota)
    assert miss.cached is None and RedisLedger.outcome([charge], miss.quota or []).used == [100.0]
    await client.set(cache_key, b"stored answer")  # type: ignore[attr-defined]
    hit = await script.run(limiter.redis_layout([check]), cache_key, quota)
    assert hit.cached == b"stored answer" and hit.quota is None
    assert limiter.verdict([check], hit.windows, hit.rate_refused).headers["x-ratelimit-remaining-requests"] == "8"
    assert (await ledger.reserve([_charge_again(charge, 0)], _no_seed)).used == [100.0]


async def test_quota_refusal_reserves_nothing(parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object]) -> None:
    _, ledger, script, _ = parts
    small, big = _charge(1000, 10), _charge(150, 100)
    quota = await ledger.prepare([small, big], _no_seed)
    first = RedisLedger.outcome([small, big], (await script.run(([], []), None, quota)).quota or [])
    assert first.refused is None and first.used == [10.0, 100.0]
    second = RedisLedger.outcome([small, big], (await script.run(([], []), None, quota)).quota or [])
    assert second.refused is big
    assert (await ledger.reserve([_charge_again(small, 0), _charge_again(big, 0)], _no_seed)).used == [10.0, 100.0]


async def test_settling_returns_unused_headroom_and_stores_the_answer_in_the_same_trip(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object],
) -> None:
    _, ledger, script, client = parts
    charge = _charge(1000, 300)
    quota = await ledger.prepare([charge], _no_seed)
    await script.run(([], []), None, quota)
    cache_key = f"aiport:cache:test:{secrets.token_hex(8)}"
    await ledger.settle([charge], [120.0], also_set=(cache_key, b"the answer", 30))
    assert (await ledger.reserve([_charge_again(charge, 0)], _no_seed)).used == [120.0]
    assert await client.get(cache_key) == b"the answer"  # type: ignore[attr-defined]
    assert 0 < await client.ttl(cache_key) <= 30  # type: ignore[attr-defined]
    # a window that ended (its key expired) is not re-created without a TTL by a late settle
    gone = _charge(1000, 50)
    await ledger.settle([gone], [10.0])
    assert await client.exists(gone.window.key) == 0  # type: ignore[attr-defined]


async def test_a_flushed_script_cache_is_reloaded(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object],
) -> None:
    limiter, _, script, client = parts
    check = _check(secrets.token_hex(4), "requests", 10, 1)
    await script.run(limiter.redis_layout([check]), None, ([], []))
    await client.script_flush()  # type: ignore[attr-defined]  # what a Redis restart does to loaded scripts
    reply = await script.run(limiter.redis_layout([check]), None, ([], []))
    assert limiter.verdict([check], reply.windows, reply.rate_refused).headers["x-ratelimit-remaining-requests"] == "8"


async def test_a_new_window_is_seeded_once_however_many_calls_arrive_together(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object],
) -> None:
    """The durable total is one database query per window and process, not one per call
    that arrives before the first seed is done (a burst at startup would query 200 times)."""
    _, ledger, _, _ = parts
    seeds: list[str] = []

    async def slow_seed(rule: QuotaRule, *_: object) -> float:
        seeds.append(rule.id)
        await asyncio.sleep(0.05)
        return 42.0

    charge = _charge(1000, 10)
    await asyncio.gather(*(ledger.prepare([charge], slow_seed) for _ in range(50)))
    assert seeds == [charge.rule.id]
    assert (await ledger.reserve([_charge_again(charge, 0)], slow_seed)).used == [42.0]

    failing = _charge(1000, 10)

    async def broken_seed(*_: object) -> float:
        await asyncio.sleep(0.02)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(ledger.prepare([failing], broken_seed) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)  # every waiter hears of the failure
    await ledger.prepare([failing], slow_seed)  # and the next call seeds afresh
    assert seeds[-1] == failing.rule.id


@pytest.mark.parametrize(
    "setup",
    [
        {},  # a first hit: the counter is created
        {"current": ("4", 100_000)},  # a counter of this window
        {"previous": ("5", 30_000), "current": ("3", 90_000)},  # a previous window, weighted
        {"current": ("7", 30_000)},  # the current window ended: limits shifts it to the previous
    ],
)
async def test_the_window_after_a_hit_is_what_limits_reads_back(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object], setup: dict[str, tuple[str, int]]
) -> None:
    """The acquire script returns the window it read (saving a second read per check);
    it must be exactly what `limits`' own window script reads right after the hit."""
    limiter, _, _, client = parts
    assert "rl_acquire(KEYS, ARGV) then" not in limiter.lua_functions()  # the patched script, not the fallback
    probe = LuaScript(
        limiter.lua_functions()
        + "local w = rl_acquire_window(KEYS, ARGV)\nlocal r = rl_window(KEYS, {ARGV[2]})\nreturn {w, r}\n"
    )
    previous, current = limiter.redis_layout([_check(secrets.token_hex(4), "requests", 1000, 2)])[0]
    for name, key in (("previous", previous), ("current", current)):
        if name in setup:
            value, ttl_ms = setup[name]
            await client.set(key, value, px=ttl_ms)  # type: ignore[attr-defined]
    after_hit, read_back = await probe(client, [previous, current], [1000, 60, 2])

    def normal(row: list[Any]) -> list[int]:
        return [max(int(v or 0), 0) for v in row]

    assert normal(after_hit)[0::2] == normal(read_back)[0::2]  # the counts
    for ttl_after_hit, ttl_read in zip(normal(after_hit)[1::2], normal(read_back)[1::2], strict=True):
        assert abs(ttl_after_hit - ttl_read) <= 5  # the TTLs, a few ms apart


async def test_an_unfamiliar_acquire_script_falls_back_to_reading_the_window(
    parts: tuple[RateLimiter, RedisLedger, AdmissionScript, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter, _, _, _ = parts
    monkeypatch.setattr("aiport.gateway.ratelimit._ACQUIRE_READS", ("a_local_limits_does_not_have",))
    assert "rl_acquire(KEYS, ARGV) then" in limiter.lua_functions()
    script = AdmissionScript(parts[2]._redis, limiter)  # type: ignore[attr-defined]
    check = _check(secrets.token_hex(4), "requests", 3, 1)
    remaining = []
    for _ in range(4):
        reply = await script.run(limiter.redis_layout([check]), None, ([], []))
        verdict = limiter.verdict([check], reply.windows, reply.rate_refused)
        remaining.append((verdict.refused is None, verdict.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [(True, "2"), (True, "1"), (True, "0"), (False, "0")]
