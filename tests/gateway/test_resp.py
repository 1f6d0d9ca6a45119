"""The lean Redis connection the hot scripts run on (gateway/resp.py): replies reach the
right caller under concurrency and cancellation, errors keep redis-py's types, a lost or
silent connection fails its callers and is replaced, and the URL's database is used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aiport.gateway.lua import LuaScript
from aiport.gateway.resp import RespLane, pack
from tests.support.redis import DEAD_REDIS_URL, redis_url

ECHO = LuaScript("return ARGV[1]")
SLOW = LuaScript(
    "local t = redis.call('TIME'); local u = t[1] * 1e6 + t[2] + tonumber(ARGV[1]); "
    "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= u; return ARGV[2]"
)


@pytest.fixture
async def lane() -> AsyncIterator[RespLane]:
    lane = RespLane(redis_url("shared"))
    yield lane
    await lane.aclose()


def test_commands_are_packed_as_redis_py_sends_them() -> None:
    assert pack(("EVALSHA", "ab", 2, "k", b"\x00v", 1.5, -3)) == (
        b"*7\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$1\r\nk\r\n$2\r\n\x00v\r\n$3\r\n1.5\r\n$2\r\n-3\r\n"
    )
    with pytest.raises(TypeError, match="boolean"):
        pack(("SET", "k", True))


async def test_concurrent_calls_each_get_their_own_reply(lane: RespLane) -> None:
    replies = await asyncio.gather(*(ECHO(lane, [], [f"call-{i}"]) for i in range(300)))
    assert replies == [f"call-{i}".encode() for i in range(300)]


async def test_a_cancelled_call_does_not_shift_the_replies_of_the_next(lane: RespLane) -> None:
    await SLOW(lane, [], [0, "warm"])  # loaded
    slow = asyncio.ensure_future(SLOW(lane, [], [50_000, "slow"]))  # Redis busy for 50 ms
    await asyncio.sleep(0.01)
    slow.cancel()
    assert await ECHO(lane, [], ["next"]) == b"next"
    assert slow.cancelled()


async def test_errors_keep_redis_py_types_and_the_connection_stays_usable(lane: RespLane) -> None:
    with pytest.raises(NoScriptError):
        await lane.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError, match="boom"):
        await lane.evalsha(await lane.script_load("return redis.error_reply('boom')"), 0)
    assert await ECHO(lane, [], ["still fine"]) == b"still fine"


async def test_it_uses_the_database_of_the_url() -> None:
    url = redis_url("shared")
    lane, client = RespLane(url), aioredis.Redis.from_url(url)
    try:
        await LuaScript("return redis.call('SET', KEYS[1], ARGV[1])")(lane, ["resp:db"], ["here"])
        assert await client.get("resp:db") == b"here"  # redis-py on the same URL reads it
    finally:
        await lane.aclose()
        await client.aclose()


async def test_a_killed_connection_fails_its_callers_and_the_next_call_reconnects(lane: RespLane) -> None:
    client = aioredis.Redis.from_url(redis_url("shared"))
    try:
        own_id = await lane.execute("CLIENT", "ID")
        waiting = asyncio.ensure_future(lane.execute("BLPOP", "resp:empty", 5))  # blocked on the server
        await asyncio.sleep(0.05)
        await client.execute_command("CLIENT", "KILL", "ID", own_id)
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await ECHO(lane, [], ["again"]) == b"again"
        assert await lane.execute("CLIENT", "ID") != own_id
    finally:
        await client.aclose()


async def test_redis_down_is_a_connection_error() -> None:
    lane = RespLane(DEAD_REDIS_URL, connect_timeout=1)
    with pytest.raises(RedisConnectionError, match="Cannot connect"):
        await ECHO(lane, [], ["x"])
    await lane.aclose()


async def test_a_silent_server_times_out_and_is_dropped() -> None:
    """A server that accepts and never answers: callers fail after the timeout, not forever."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read(-1)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lane = RespLane(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(lane.execute("PING") for _ in range(3)), return_exceptions=True)
        waited = asyncio.get_running_loop().time() - started
        assert all(isinstance(r, RedisTimeoutError) for r in results), results
        assert 0.25 <= waited < 2
        with pytest.raises(RedisTimeoutError):
            await lane.execute("PING")  # a new connection, which times out in its turn
        assert len(connections) == 2
    finally:
        await lane.aclose()
        server.close()
        for writer in connections:
            writer.close()


def test_a_lane_moves_to_a_new_event_loop() -> None:
    """Tests and workers run several event loops in turn; a connection belongs to one."""
    lane = RespLane(redis_url("shared"))
    assert asyncio.run(ECHO(lane, [], ["first loop"])) == b"first loop"
    assert asyncio.run(ECHO(lane, [], ["second loop"])) == b"second loop"
    asyncio.run(lane.aclose())


def test_only_plain_and_tls_urls_take_the_lane() -> None:
    assert RespLane.supports("redis://h:6379/1")
    assert RespLane.supports("rediss://h:6380/1")
    assert not RespLane.supports("unix:///run/redis.sock?db=2")
    assert not RespLane.supports("redis+sentinel://h:26379/mymaster")
