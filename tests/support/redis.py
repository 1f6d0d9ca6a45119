"""The real Redis server for shared-state tests.

Each caller gets its own logical database, emptied first, so runs never see each other's counters.
Locally the tests skip (with the reason) when Redis is not reachable; with CI=true they fail."""

from __future__ import annotations

import os

import pytest

from tests.support.postgres import _in_ci

REDIS_BASE = os.environ.get("AIPORT_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# logical databases reserved for gateway tests (jobs tests use others)
GATEWAY_DBS = {"shared": 11, "cluster": 12}


def redis_url(purpose: str) -> str:
    """A reachable, empty Redis database for `purpose`, or skip/fail."""
    import redis

    url = f"{REDIS_BASE}/{GATEWAY_DBS[purpose]}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except Exception as exc:
        reason = f"Redis not reachable at {REDIS_BASE}: {exc}"
        if _in_ci():
            pytest.fail(reason + " (CI=true: Redis tests must run)")
        pytest.skip(reason)
    return url


# Nothing listens here: a Redis that is down.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
