"""Requests and tokens per minute per key, user, team and model."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Gateway
from tests.gateway.conftest import Member


def limit(gateway: Gateway, **body: Any) -> httpx.Response:
    with gateway.client() as c:
        return c.put("/api/admin/rate-limits", json=body)


def call(gateway: Gateway, key: str, max_tokens: int = 10) -> httpx.Response:
    with gateway.client(key) as c:
        return c.post(
            "/v1/chat/completions",
            json={"model": "echo", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]},
        )


def test_requests_per_minute_per_key(gateway: Gateway, member: Member) -> None:
    assert limit(gateway, scope="key", subject=member.key_id, rpm=5).status_code == 201
    responses = [call(gateway, member.key) for _ in range(8)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    assert responses[0].headers["x-ratelimit-limit-requests"] == "5"
    assert responses[4].headers["x-ratelimit-remaining-requests"] == "0"
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "5 requests per minute" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")


def test_tokens_per_minute_per_team(gateway: Gateway, member: Member) -> None:
    assert limit(gateway, scope="team", subject=member.team_id, tpm=100).status_code == 201
    codes = [call(gateway, member.key, max_tokens=30).status_code for _ in range(5)]
    assert codes[:2] == [200, 200] and codes[-1] == 429


def test_model_limit_applies_to_everyone_using_it(gateway: Gateway, member: Member) -> None:
    from tests.gateway.conftest import make_member

    other = make_member(gateway)
    assert limit(gateway, scope="model", subject="flaky", rpm=3).status_code == 201

    def flaky(key: str, text: str) -> int:
        with gateway.client(key) as c:
            return c.post(
                "/v1/chat/completions", json={"model": "flaky", "messages": [{"role": "user", "content": text}]}
            ).status_code

    codes = [flaky(member.key, f"m{i}") for i in range(2)] + [flaky(other.key, f"o{i}") for i in range(2)]
    assert codes == [200, 200, 200, 429]
    with gateway.client() as c:
        rid = next(r["id"] for r in c.get("/api/admin/rate-limits").json()["data"] if r["subject"] == "flaky")
        assert c.delete(f"/api/admin/rate-limits/{rid}").status_code == 204


def test_rate_limit_validation(gateway: Gateway, member: Member) -> None:
    assert limit(gateway, scope="key", subject=member.key_id).status_code == 422
    assert limit(gateway, scope="model", subject="no-such-model", rpm=1).status_code == 404
    assert limit(gateway, scope="user", subject="usr_nobody", rpm=1).status_code == 404
    assert limit(gateway, scope="key", subject=member.key_id, rpm=0).status_code == 422


def test_no_limits_no_headers(gateway: Gateway, member: Member) -> None:
    r = call(gateway, member.key)
    assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
    assert r.headers["x-aiport-model"] == "echo"
