"""Stopping a streaming run from any process (apps/active_runs.py): two registries on one
real Redis stand for two gateway processes; a Redis that is down only loses the
cross-process part."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from aiport.apps.active_runs import ActiveRuns
from tests.support.redis import DEAD_REDIS_URL, redis_url


@dataclass
class _Conversation:
    id: str


@dataclass
class _Run:
    """The two things a registry reads of a PreparedRun."""

    conversation: _Conversation
    assistant_id: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def run(conversation_id: str, run_id: str) -> Any:
    return cast(Any, _Run(_Conversation(conversation_id), run_id))


@pytest.fixture
async def processes() -> AsyncIterator[tuple[ActiveRuns, ActiveRuns, aioredis.Redis]]:
    client = aioredis.Redis.from_url(redis_url("shared"))
    a, b = ActiveRuns(client), ActiveRuns(client)
    a.start()
    b.start()
    await asyncio.wait_for(asyncio.gather(a.listening(), b.listening()), 5)
    yield a, b, client
    await a.aclose()
    await b.aclose()
    await client.aclose()


async def _until(condition: Any) -> None:
    for _ in range(300):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 3 s")


async def test_a_stop_reaches_the_process_that_streams_the_run(processes: Any) -> None:
    a, b, client = processes
    streaming = run("conv_1", "msg_1")
    await a.add(streaming)
    assert await b.stop("conv_1") is True
    await asyncio.wait_for(streaming.stop.wait(), 3)
    assert await b.stop("conv_unknown") is False  # nothing registered: nothing published

    a.discard(streaming)
    await _until(lambda: _gone(client, "conv_1"))
    assert await b.stop("conv_1") is False


async def test_an_older_runs_end_does_not_unregister_a_newer_run(processes: Any) -> None:
    a, b, client = processes
    old, new = run("conv_2", "msg_old"), run("conv_2", "msg_new")
    await a.add(old)
    await b.add(new)  # regenerate, served by the other process
    a.discard(old)  # the old run ends on a after the new one registered on b
    await asyncio.sleep(0.1)
    assert await client.get("aiport:run:conv_2") == b"msg_new"
    assert await a.stop("conv_2") is True
    await asyncio.wait_for(new.stop.wait(), 3)
    assert not old.stop.is_set()


async def _gone(client: aioredis.Redis, conversation_id: str) -> bool:
    return not await client.exists("aiport:run:" + conversation_id)


async def test_with_redis_down_runs_still_start_and_stop_in_their_own_process() -> None:
    client = aioredis.Redis.from_url(DEAD_REDIS_URL, socket_connect_timeout=0.5)
    runs = ActiveRuns(client)
    runs.start()
    try:
        streaming = run("conv_3", "msg_3")
        await runs.add(streaming)  # logged, not raised
        assert await runs.stop("conv_3") is True and streaming.stop.is_set()
        runs.discard(streaming)
        assert await runs.stop("conv_3") is False  # not here, and Redis can't say
    finally:
        await runs.aclose()
        await client.aclose()
