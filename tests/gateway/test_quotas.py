"""Token and cost quotas: reserve before the call, settle after, refuse with a useful 429."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Gateway
from tests.gateway.conftest import Member


def put(gateway: Gateway, path: str, body: dict[str, Any]) -> httpx.Response:
    with gateway.client() as c:
        return c.put(path, json=body)


def chat(gateway: Gateway, key: str, text: str = "hello there", **extra: Any) -> httpx.Response:
    with gateway.client(key) as c:
        return c.post(
            "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": text}], **extra}
        )


def test_user_token_quota_refuses_with_which_quota_left_and_reset(gateway: Gateway, member: Member) -> None:
    r = put(
        gateway,
        "/api/admin/quotas",
        {"scope": "user", "subject_id": member.user_id, "metric": "tokens", "period": "day", "limit": 80},
    )
    assert r.status_code == 201, r.text
    quota_id = r.json()["id"]
    ok = chat(gateway, member.key, max_tokens=50)
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit-quota-tokens"] == "80"
    remaining = int(ok.headers["x-ratelimit-remaining-quota-tokens"])
    assert remaining < 80
    refused = None
    for _ in range(20):
        resp = chat(gateway, member.key, max_tokens=50)
        if resp.status_code == 429:
            refused = resp
            break
    assert refused is not None, "the quota never refused"
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded" and error["type"] == "rate_limit_error"
    assert "user token quota" in error["message"] and "left" in error["message"] and "resets at" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["x-ratelimit-reset-quota-tokens"].endswith("Z")
    # a smaller request still fits: the reservation is prompt + max_tokens
    assert chat(gateway, member.key, max_tokens=1).status_code in (200, 429)
    # usage shown to admins equals what the audit log recorded (settled to real usage)
    with gateway.client() as c:
        gateway.flush()
        quotas = c.get("/api/admin/quotas").json()["data"]
    mine = next(q for q in quotas if q["id"] == quota_id)
    recorded = sum(x["total_tokens"] for x in gateway.logs(user_id=member.user_id) if x["status"] == "ok")
    assert mine["used"] == recorded > 0


def test_refused_requests_do_not_count(gateway: Gateway, member: Member) -> None:
    put(gateway, "/api/admin/quotas", {"scope": "user", "subject_id": member.user_id, "limit": 40})
    big = chat(gateway, member.key, max_tokens=100)  # 100 output tokens can never fit in 40
    assert big.status_code == 429
    assert chat(gateway, member.key, max_tokens=10).status_code == 200


def test_cost_quota(gateway: Gateway, member: Member) -> None:
    # echo costs $1/M in, $2/M out: a limit of $0.0001 allows a few small calls only
    r = put(
        gateway,
        "/api/admin/quotas",
        {"scope": "team", "subject_id": member.team_id, "metric": "cost", "period": "month", "limit": 0.0001},
    )
    assert r.status_code == 201
    statuses = [chat(gateway, member.key, max_tokens=20).status_code for _ in range(12)]
    assert statuses[0] == 200 and 429 in statuses
    refused = chat(gateway, member.key, max_tokens=20)
    assert "$" in refused.json()["error"]["message"] and "team cost quota" in refused.json()["error"]["message"]


def test_concurrent_requests_overrun_by_at_most_one_reservation(gateway: Gateway, member: Member) -> None:
    limit, max_tokens = 300, 20
    put(gateway, "/api/admin/quotas", {"scope": "user", "subject_id": member.user_id, "limit": limit})

    async def burst() -> list[int]:
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"authorization": f"Bearer {member.key}"}, timeout=30
        ) as c:

            async def one(i: int) -> int:
                r = await c.post(
                    "/v1/chat/completions",
                    json={
                        "model": "echo",
                        "max_tokens": max_tokens,
                        "messages": [{"role": "user", "content": f"concurrent request number {i}"}],
                    },
                )
                return r.status_code

            return await asyncio.gather(*(one(i) for i in range(60)))

    statuses = asyncio.run(burst())
    assert set(statuses) == {200, 429}
    used = sum(x["total_tokens"] for x in gateway.logs(user_id=member.user_id) if x["status"] == "ok")
    reservation = 3 + 4 + 6 + max_tokens  # prompt estimate + max_tokens: the most one request holds
    assert used <= limit + reservation


def test_quota_validation(gateway: Gateway, member: Member) -> None:
    bad = [
        ({"scope": "user", "limit": 10}, "subject_id"),
        ({"scope": "user", "subject_id": member.user_id, "limit": -1}, "limit"),
        ({"scope": "user", "subject_id": member.user_id, "limit": 5, "period": "rolling"}, "rolling_seconds"),
        ({"scope": "planet", "subject_id": "x", "limit": 5}, "scope"),
    ]
    for body, field in bad:
        r = put(gateway, "/api/admin/quotas", body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["error"]["message"] or r.json()["error"]["param"] == field
    r = put(gateway, "/api/admin/quotas", {"scope": "user", "subject_id": "usr_nobody", "limit": 5})
    assert r.status_code == 404
    with gateway.client(member.key) as c:
        assert c.put("/api/admin/quotas", json={"scope": "org", "limit": 1}).status_code == 403


def test_rolling_window_quota(gateway: Gateway, member: Member) -> None:
    r = put(
        gateway,
        "/api/admin/quotas",
        {"scope": "user", "subject_id": member.user_id, "period": "rolling", "rolling_seconds": 3600, "limit": 60},
    )
    assert r.status_code == 201
    assert chat(gateway, member.key, max_tokens=10).status_code == 200
    codes = [chat(gateway, member.key, max_tokens=10).status_code for _ in range(15)]
    assert 429 in codes


def test_setting_a_quota_again_replaces_it(gateway: Gateway, member: Member) -> None:
    first = put(gateway, "/api/admin/quotas", {"scope": "user", "subject_id": member.user_id, "limit": 10})
    again = put(gateway, "/api/admin/quotas", {"scope": "user", "subject_id": member.user_id, "limit": 100000})
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert chat(gateway, member.key, max_tokens=10).status_code == 200
    with gateway.client() as c:
        assert c.delete(f"/api/admin/quotas/{first.json()['id']}").status_code == 204
        assert c.delete(f"/api/admin/quotas/{first.json()['id']}").status_code == 404
