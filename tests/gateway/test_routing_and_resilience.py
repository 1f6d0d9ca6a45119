"""The smart router (`auto`), retries, fallbacks and the circuit breaker."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import openai

from tests.conftest import Gateway
from tests.gateway.conftest import Member


def chat(gateway: Gateway, key: str, model: str, text: str, **extra: Any) -> httpx.Response:
    with gateway.client(key) as c:
        return c.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}], **extra}
        )


def test_auto_sends_simple_to_cheap_and_complex_to_strong(gateway: Gateway, member: Member) -> None:
    simple = chat(gateway, member.key, "auto", "hi there")
    complex_ = chat(
        gateway,
        member.key,
        "auto",
        "Write a Python function that parses a CSV file step by step, then prove its complexity "
        "is O(n) and compare it with two alternative designs:\n```python\ndef parse(path): ...\n```",
    )
    assert simple.status_code == complex_.status_code == 200
    assert simple.headers["x-aiport-model"] == "echo" and simple.json()["model"] == "echo"
    assert complex_.headers["x-aiport-model"] == "strong-echo"
    assert float(complex_.headers["x-aiport-route-score"]) >= 0.5 > float(simple.headers["x-aiport-route-score"])
    assert "->" in complex_.headers["x-aiport-route-reason"]
    record = next(
        r for r in gateway.logs(user_id=member.user_id) if r["request_id"] == complex_.headers["x-request-id"]
    )
    full = gateway.log(record["id"])
    assert full["model_requested"] == "auto" and full["model_used"] == "strong-echo"
    assert full["route_reason"].startswith("auto: complexity") and full["route_score"] >= 0.5


def test_auto_rules_come_before_the_scorer(gateway: Gateway, member: Member) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    r = chat(gateway, member.key, "auto", "hi", tools=tools)
    assert r.headers["x-aiport-model"] == "strong-echo" and "tools" in r.headers["x-aiport-route-reason"]


def test_auto_is_listed_as_a_model(gateway: Gateway, member: Member) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=member.key, max_retries=0)
    assert "auto" in [m.id for m in client.models.list()]


def test_retry_on_503_succeeds_on_the_same_model(gateway: Gateway, member: Member) -> None:
    text = f"flaky {secrets.token_hex(4)}"
    r = chat(gateway, member.key, "flaky", text)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == f"echo: {text}"
    record = next(x for x in gateway.logs(user_id=member.user_id) if x["request_id"] == r.headers["x-request-id"])
    attempts = gateway.log(record["id"])["attempts"]
    assert [(a["model"], a["outcome"], a["status"]) for a in attempts] == [
        ("flaky", "error", 502),
        ("flaky", "ok", 200),
    ]
    assert "HTTP 503" in attempts[0]["error"] and attempts[0]["latency_ms"] > 0


def test_fallback_chain_on_5xx_429_timeout_and_early_stream_drop(gateway: Gateway, member: Member) -> None:
    for model in ("primary-broken", "primary-limited", "primary-slow"):
        r = chat(gateway, member.key, model, f"fb {model}")
        assert r.status_code == 200, (model, r.text)
        assert r.headers["x-aiport-model"] == "echo"
        record = next(x for x in gateway.logs(user_id=member.user_id) if x["request_id"] == r.headers["x-request-id"])
        full = gateway.log(record["id"])
        assert full["model_requested"] == model and full["model_used"] == "echo"
        assert "fell back to echo" in full["route_reason"]
        assert full["attempts"][-1] == {**full["attempts"][-1], "model": "echo", "outcome": "ok"}
        assert any(a["model"] == model and a["outcome"] == "error" for a in full["attempts"])
    # a 429 whose Retry-After (7 s) is beyond the cap is not waited for: straight to the fallback
    limited = next(
        x for x in gateway.logs(model="echo") if gateway.log(x["id"])["model_requested"] == "primary-limited"
    )
    assert [a["model"] for a in gateway.log(limited["id"])["attempts"]] == ["primary-limited", "echo"]
    # a stream that fails before its first token falls back invisibly
    r = chat(gateway, member.key, "primary-drop0", "stream me", stream=True)
    assert r.status_code == 200 and "echo: stream me" in "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in r.text.splitlines()
        if line.startswith("data: {") and '"choices":[{' in line
    )


def test_stream_failing_after_tokens_ends_with_error_and_records_partial(gateway: Gateway, member: Member) -> None:
    r = chat(gateway, member.key, "drop", "one two three four", stream=True)
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert "error" in json.loads(events[-1])
    record = next(x for x in gateway.logs(user_id=member.user_id) if x["request_id"] == r.headers["x-request-id"])
    assert record["status"] == "error" and record["output_preview"] == "echo: one"


def test_circuit_breaker_rests_a_failing_model(gateway: Gateway, member: Member) -> None:
    ids = [chat(gateway, member.key, "breaker-test", f"b{i}").headers["x-request-id"] for i in range(4)]
    records = {x["request_id"]: x for x in gateway.logs(user_id=member.user_id)}
    last = gateway.log(records[ids[-1]]["id"])["attempts"]
    assert last[0] == {"model": "breaker-test", "outcome": "skipped", "error": "circuit open"}
    assert last[-1]["model"] == "echo" and last[-1]["outcome"] == "ok"
    assert gateway.runtime.pipeline.breaker.state("breaker-test") in ("open", "half-open")


def test_with_a_healthy_fallback_every_request_succeeds_and_none_is_lost(gateway: Gateway, member: Member) -> None:
    tag = f"storm {secrets.token_hex(3)}"
    models = ["primary-broken", "primary-limited", "primary-flaky", "primary-drop0", "primary-slow"]

    async def storm() -> list[int]:
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"authorization": f"Bearer {member.key}"}, timeout=60
        ) as c:

            async def one(i: int) -> int:
                model = models[i % len(models)]
                r = await c.post(
                    "/v1/chat/completions",
                    json={
                        "model": model,
                        "stream": i % 3 == 0,
                        "messages": [{"role": "user", "content": f"{tag} {i}"}],
                    },
                )
                return r.status_code

            return await asyncio.gather(*(one(i) for i in range(80)))

    assert asyncio.run(storm()) == [200] * 80
    records = [
        x for x in gateway.logs(user_id=member.user_id) if (x["output_preview"] or "").startswith(f"echo: {tag}")
    ]
    assert len(records) == 80 and all(x["status"] == "ok" for x in records)
