"""When Redis (the shared counter store) is down: quotas fail closed and rate limits fail open by
default, each configurable; the cache and idempotency degrade to plain calls instead of failing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, start_gateway
from tests.gateway.conftest import Member, make_member
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis import DEAD_REDIS_URL


def _gateway(tmp: Path, upstream: FakeOpenAI, **overrides: Any) -> Gateway:
    return start_gateway(tmp, upstream.url, None, "sqlite", redis_url=DEAD_REDIS_URL, **overrides)  # type: ignore[attr-defined]


def _rules(gateway: Gateway, member: Member) -> None:
    with gateway.client() as admin:
        quota = {"scope": "user", "subject_id": member.user_id, "limit": 100000}
        assert admin.put("/api/admin/quotas", json=quota).status_code in (200, 201)
        limit = {"scope": "key", "subject": member.key_id, "rpm": 1000}
        assert admin.put("/api/admin/rate-limits", json=limit).status_code in (200, 201)


def _chat(gateway: Gateway, member: Member, text: str, **headers: str) -> httpx.Response:
    with gateway.client(member.key) as c:
        return c.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": text}], "max_tokens": 5},
            headers=headers,
        )


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI) -> Iterator[Gateway]:
    gw = _gateway(tmp_path_factory.mktemp("redis-down-default"), fake_upstream)
    yield gw
    gw.server.stop()


def test_defaults_refuse_on_quotas_with_503_and_say_why(default_gateway: Gateway) -> None:
    member = make_member(default_gateway)
    _rules(default_gateway, member)
    r = _chat(default_gateway, member, "quota check while redis is down")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "quota_unavailable" and "quotas cannot be checked" in error["message"]
    assert r.headers["retry-after"] == "5"


def test_defaults_without_quotas_admit_past_rate_limits_and_mark_it(default_gateway: Gateway) -> None:
    member = make_member(default_gateway)
    with default_gateway.client() as admin:
        limit = {"scope": "key", "subject": member.key_id, "rpm": 1}
        assert admin.put("/api/admin/rate-limits", json=limit).status_code in (200, 201)
    for i in range(3):  # over the 1 rpm limit, but the limiter cannot count: fail open
        r = _chat(default_gateway, member, f"rate limit fail open {i}")
        assert r.status_code == 200, r.text
        assert r.headers["x-aiport-degraded"] == "rate-limits"


def test_cache_and_idempotency_degrade_to_plain_calls(default_gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    member = make_member(default_gateway)
    for _ in range(2):
        r = _chat(default_gateway, member, "cache while redis is down", **{"cache-control": "max-age=60"})
        assert r.status_code == 200, r.text
    assert fake_upstream.calls_with("cache while redis is down") == 2  # no cache, but no failure either
    assert r.headers["x-aiport-degraded"] == "cache"
    # an Idempotency-Key promises at-most-once, which cannot be kept without the store: refuse, send nothing
    r = _chat(default_gateway, member, "idempotent while redis is down", **{"idempotency-key": "rd-1"})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "idempotency_unavailable" and "Retry" in r.json()["error"]["message"]
    assert fake_upstream.calls_with("idempotent while redis is down") == 0


def test_flipped_settings_admit_without_quotas_and_refuse_on_rate_limits(
    tmp_path: Path, fake_upstream: FakeOpenAI
) -> None:
    gw = _gateway(tmp_path, fake_upstream, quota_fail_open=True, ratelimit_fail_open=False)
    try:
        member = make_member(gw)
        with gw.client() as admin:
            quota = {"scope": "user", "subject_id": member.user_id, "limit": 100000}
            assert admin.put("/api/admin/quotas", json=quota).status_code in (200, 201)
        r = _chat(gw, member, "quota fail open")
        assert r.status_code == 200, r.text
        assert r.headers["x-aiport-degraded"] == "quotas"
        with gw.client() as admin:
            limit = {"scope": "key", "subject": member.key_id, "rpm": 1000}
            assert admin.put("/api/admin/rate-limits", json=limit).status_code in (200, 201)
        time.sleep(0.5)  # rules refresh
        r = _chat(gw, member, "rate limit fail closed")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "rate_limit_unavailable"
    finally:
        gw.server.stop()
