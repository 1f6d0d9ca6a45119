"""Idempotency keys (a retry never pays twice) and the response cache."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx

from tests.conftest import Gateway
from tests.gateway.conftest import Member


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], **extra}


def sse_text(raw: str) -> str:
    out = []
    for line in raw.splitlines():
        if line.startswith("data: {"):
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


def test_retry_with_same_key_replays_without_a_second_call(gateway: Gateway, member: Member, fake_upstream) -> None:
    text = f"idem {secrets.token_hex(4)}"
    key = {"idempotency-key": f"k-{text}"}
    with gateway.client(member.key) as c:
        first = c.post("/v1/chat/completions", json=body(text), headers=key)
        second = c.post("/v1/chat/completions", json=body(text), headers=key)
    assert first.status_code == second.status_code == 200
    assert first.json()["choices"] == second.json()["choices"]
    assert second.headers["x-aiport-idempotent-replay"] == "true"
    assert fake_upstream.calls_with(text) == 1
    records = [r for r in gateway.logs(user_id=member.user_id)]
    replay = next(r for r in records if r["request_id"] == second.headers["x-request-id"])
    original = next(r for r in records if r["request_id"] == first.headers["x-request-id"])
    assert replay["cache_hit"] and replay["cost_usd"] == 0 and replay["total_tokens"] == 0
    full = gateway.log(replay["id"])
    assert full["route_reason"] == f"idempotent replay of {first.headers['x-request-id']}"
    assert full["saved_cost_usd"] == original["cost_usd"] > 0


def test_same_key_different_body_is_422(gateway: Gateway, member: Member) -> None:
    key = {"idempotency-key": f"k-{secrets.token_hex(4)}"}
    with gateway.client(member.key) as c:
        assert c.post("/v1/chat/completions", json=body("one"), headers=key).status_code == 200
        r = c.post("/v1/chat/completions", json=body("two"), headers=key)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused" and "different body" in r.json()["error"]["message"]


def test_keys_are_scoped_per_user(gateway: Gateway, member: Member, fake_upstream) -> None:
    from tests.gateway.conftest import make_member

    other = make_member(gateway)
    text = f"scoped {secrets.token_hex(4)}"
    key = {"idempotency-key": "shared-name"}
    for m in (member, other):
        with gateway.client(m.key) as c:
            assert c.post("/v1/chat/completions", json=body(text), headers=key).status_code == 200
    assert fake_upstream.calls_with(text) == 2


async def _duplicates(gateway: Gateway, key: str, payload: dict[str, Any], n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=gateway.url,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=n),
    ) as c:
        idem = {"idempotency-key": f"burst-{secrets.token_hex(4)}"}
        return await asyncio.gather(*(c.post("/v1/chat/completions", json=payload, headers=idem) for _ in range(n)))


def test_fifty_concurrent_duplicates_make_one_provider_call(gateway: Gateway, member: Member, fake_upstream) -> None:
    text = f"fifty {secrets.token_hex(4)} a b c d"
    responses = asyncio.run(_duplicates(gateway, member.key, body(text), 50))
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {f"echo: {text}"}
    assert fake_upstream.calls_with(text) == 1


def test_fifty_concurrent_streamed_duplicates(gateway: Gateway, member: Member, fake_upstream) -> None:
    text = f"stream fifty {secrets.token_hex(4)} a b c"
    responses = asyncio.run(_duplicates(gateway, member.key, body(text, stream=True), 50))
    assert [r.status_code for r in responses] == [200] * 50
    assert {sse_text(r.text) for r in responses} == {f"echo: {text}"}
    assert all(r.text.endswith("data: [DONE]\n\n") for r in responses)
    assert fake_upstream.calls_with(text) == 1


def test_failed_leader_lets_the_retry_run(gateway: Gateway, member: Member) -> None:
    key = {"idempotency-key": f"k-{secrets.token_hex(4)}"}
    payload = {"model": "broken", "messages": [{"role": "user", "content": "x"}]}
    with gateway.client(member.key) as c:
        assert c.post("/v1/chat/completions", json=payload, headers=key).status_code == 502
        assert c.post("/v1/chat/completions", json=payload, headers=key).status_code == 502  # ran again, not waited


def test_cache_opt_in_per_request(gateway: Gateway, member: Member, fake_upstream) -> None:
    text = f"cache {secrets.token_hex(4)}"
    with gateway.client(member.key) as c:
        miss = c.post("/v1/chat/completions", json=body(text), headers={"cache-control": "max-age=600"})
        hit = c.post("/v1/chat/completions", json=body(text), headers={"cache-control": "max-age=600"})
        stream = c.post("/v1/chat/completions", json=body(text, stream=True), headers={"cache-control": "max-age=600"})
        uncached = c.post("/v1/chat/completions", json=body(text))  # no opt-in: goes upstream
    assert miss.headers["x-aiport-cache"] == "miss" and hit.headers["x-aiport-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == miss.json()["choices"][0]["message"]["content"]
    assert "x-aiport-cache" in stream.headers and sse_text(stream.text) == f"echo: {text}"
    assert "x-aiport-cache" not in uncached.headers
    assert fake_upstream.calls_with(text) == 2  # the miss and the un-opted call
    record = next(r for r in gateway.logs(user_id=member.user_id) if r["request_id"] == hit.headers["x-request-id"])
    assert record["cache_hit"] and record["cost_usd"] == 0
    assert gateway.log(record["id"])["saved_cost_usd"] > 0


def test_cache_control_no_cache_and_no_store(gateway: Gateway, member: Member, fake_upstream) -> None:
    text = f"nocache {secrets.token_hex(4)}"
    with gateway.client(member.key) as c:
        c.post("/v1/chat/completions", json=body(text), headers={"cache-control": "max-age=600"})
        fresh = c.post("/v1/chat/completions", json=body(text), headers={"cache-control": "max-age=600, no-cache"})
        assert fresh.headers["x-aiport-cache"] == "bypass"
        other = f"nostore {secrets.token_hex(4)}"
        c.post("/v1/chat/completions", json=body(other), headers={"cache-control": "max-age=600, no-store"})
        again = c.post("/v1/chat/completions", json=body(other), headers={"cache-control": "max-age=600"})
        assert again.headers["x-aiport-cache"] == "miss"
        bad = c.post("/v1/chat/completions", json=body(other), headers={"cache-control": "max-age=soon"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "Cache-Control"
    assert fake_upstream.calls_with(text) == 2


def test_model_level_cache_and_isolation_between_orgs_by_key(gateway: Gateway, member: Member, fake_upstream) -> None:
    text = f"model cache {secrets.token_hex(4)}"
    payload = {"model": "cached-echo", "messages": [{"role": "user", "content": text}]}
    with gateway.client(member.key) as c:
        first = c.post("/v1/chat/completions", json=payload)
        second = c.post("/v1/chat/completions", json={**payload, "user": "someone", "metadata": {"a": "b"}})
        different = c.post("/v1/chat/completions", json={**payload, "temperature": 0.3})
    assert first.headers["x-aiport-cache"] == "miss" and second.headers["x-aiport-cache"] == "hit"
    assert different.headers["x-aiport-cache"] == "miss"
    assert fake_upstream.calls_with(text) == 2
