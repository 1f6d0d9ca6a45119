"""The response cache: exact match on the normalized request, per organization.

Opt-in (per request with `Cache-Control: max-age=N`, per model with `cache_ttl_seconds`,
per app later through ChatRequest.cache_ttl). The key is derived by `exact_key`; a
semantic cache would implement `ResponseCache` with an embedding lookup instead, the
pipeline does not change.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from aiport.domain.chat import ChatRequest, Completion, Usage

_IGNORED_PARAMS = ("user", "metadata")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    completion: Completion
    cost_usd: float
    model: str
    stored_at: float

    def to_bytes(self) -> bytes:
        c = self.completion
        return orjson.dumps(
            {
                "text": c.text,
                "finish_reason": c.finish_reason,
                "tool_calls": c.tool_calls,
                "usage": [c.usage.prompt_tokens, c.usage.completion_tokens],
                "cost": self.cost_usd,
                "model": self.model,
                "at": self.stored_at,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedAnswer:
        d = orjson.loads(raw)
        completion = Completion(
            text=d["text"], finish_reason=d["finish_reason"], usage=Usage(*d["usage"]), tool_calls=d["tool_calls"]
        )
        return cls(completion=completion, cost_usd=d["cost"], model=d["model"], stored_at=d["at"])


def exact_key(org_id: str, model: str, request: ChatRequest) -> str:
    """Same org, same resolved model, same messages and parameters -> same key."""
    params = {k: v for k, v in request.params.items() if k not in _IGNORED_PARAMS}
    material = orjson.dumps([model, request.messages, params], option=orjson.OPT_SORT_KEYS)
    return f"aiport:cache:{org_id}:{hashlib.sha256(material).hexdigest()}"


class ResponseCache(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, ttl: int) -> None: ...


class MemoryCache:
    """LRU with per-entry TTL, for one process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[CachedAnswer, float]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> CachedAnswer | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return hit[0]

    async def put(self, key: str, answer: CachedAnswer, ttl: int) -> None:
        self._entries[key] = (answer, time.monotonic() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class RedisCache:
    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def get(self, key: str) -> CachedAnswer | None:
        raw = await self._redis.get(key)
        return CachedAnswer.from_bytes(raw) if raw else None

    async def put(self, key: str, answer: CachedAnswer, ttl: int) -> None:
        await self._redis.set(key, answer.to_bytes(), ex=ttl)
