"""The dedupe stage: `Idempotency-Key` makes a retried request return the first answer
without a second provider call, also when the duplicates arrive concurrently.

The first request with a key becomes the leader and runs; duplicates wait for its
answer (in process: an event; across processes: polling Redis) and replay it. The same
key with a different body is refused. A leader that fails releases the key so a retry
can run. Keys are scoped per organization and user.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from aiport.domain.chat import ChatRequest
from aiport.gateway.cache import CachedAnswer


def body_hash(request: ChatRequest) -> str:
    material = orjson.dumps(
        [request.model, request.messages, request.params, request.stream], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(material).hexdigest()


def scoped_key(org_id: str, user_id: str, key: str) -> str:
    return f"aiport:idem:{org_id}:{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Claim:
    """`leader`: run the request and call `finish`/`abandon`; `replay`: the first answer;
    `mismatch`: the key was used with another body."""

    state: str
    answer: CachedAnswer | None = None
    first_request_id: str | None = None


class IdempotencyStore(Protocol):
    async def claim(self, key: str, digest: str, request_id: str, wait_seconds: float) -> Claim: ...

    async def finish(self, key: str, digest: str, answer: CachedAnswer, request_id: str, ttl: int) -> None: ...

    async def abandon(self, key: str) -> None: ...


@dataclass(slots=True)
class _Entry:
    digest: str
    request_id: str
    expires: float
    answer: CachedAnswer | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryIdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    async def claim(self, key: str, digest: str, request_id: str, wait_seconds: float) -> Claim:
        deadline = time.monotonic() + wait_seconds
        while True:
            entry = self._entries.get(key)
            if entry is None or entry.expires < time.monotonic():
                self._entries[key] = _Entry(digest, request_id, time.monotonic() + wait_seconds)
                return Claim("leader")
            if entry.digest != digest:
                return Claim("mismatch", first_request_id=entry.request_id)
            if entry.answer is not None:
                return Claim("replay", entry.answer, entry.request_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Claim("leader")  # the leader vanished without a word: run again
            try:
                await asyncio.wait_for(entry.done.wait(), remaining)
            except TimeoutError:
                pass

    async def finish(self, key: str, digest: str, answer: CachedAnswer, request_id: str, ttl: int) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(digest, request_id, 0)
        entry.answer = answer
        entry.expires = time.monotonic() + ttl
        entry.done.set()
        if len(self._entries) > 100_000:
            now = time.monotonic()
            for k in [k for k, e in self._entries.items() if e.expires < now]:
                del self._entries[k]

    async def abandon(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.done.set()


class RedisIdempotencyStore:
    def __init__(self, redis: Any, poll_seconds: float = 0.01) -> None:
        self._redis = redis
        self._poll = poll_seconds

    async def claim(self, key: str, digest: str, request_id: str, wait_seconds: float) -> Claim:
        pending = orjson.dumps({"h": digest, "r": request_id})
        deadline = time.monotonic() + wait_seconds
        delay = self._poll
        while True:
            if await self._redis.set(key, pending, nx=True, ex=max(int(wait_seconds), 1)):
                return Claim("leader")
            raw = await self._redis.get(key)
            if raw is not None:
                value = orjson.loads(raw)
                if value["h"] != digest:
                    return Claim("mismatch", first_request_id=value["r"])
                if "a" in value:
                    return Claim("replay", CachedAnswer.from_bytes(value["a"].encode()), value["r"])
            if time.monotonic() > deadline:
                return Claim("leader")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    async def finish(self, key: str, digest: str, answer: CachedAnswer, request_id: str, ttl: int) -> None:
        value = orjson.dumps({"h": digest, "r": request_id, "a": answer.to_bytes().decode()})
        await self._redis.set(key, value, ex=ttl)

    async def abandon(self, key: str) -> None:
        await self._redis.delete(key)
