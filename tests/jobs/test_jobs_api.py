"""Jobs over real HTTP with the in-process backend, on SQLite and PostgreSQL: submit, watch,
list, cancel, who may see what, and every model call through the one pipeline."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.jobs.conftest import member_key, wait_for, wait_job


def _chat(text: str, model: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_chat_batch_runs_in_background_and_keeps_order(any_jobs_gateway: Gateway) -> None:
    gw = any_jobs_gateway
    with gw.client() as c:
        r = c.post("/api/jobs", json={"kind": "chat_batch", "input": {"requests": [_chat(f"q{i}") for i in range(5)]}})
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["status"] == "queued" and created["id"].startswith("job_")
        assert r.headers["location"] == created["url"] == f"/api/jobs/{created['id']}"
        job = wait_job(c, created["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == job["progress"]["total"] == 5
    assert job["started_at"] and job["finished_at"] and job["error"] is None
    result = job["result"]
    assert result["succeeded"] == 5 and result["failed"] == 0
    contents = [r["response"]["choices"][0]["message"]["content"] for r in result["responses"]]
    assert contents == [f"echo: q{i}" for i in range(5)]
    assert result["responses"][0]["response"]["object"] == "chat.completion"
    assert result["usage"]["total_tokens"] > 0
    # every call went through the pipeline: audited with entry point "job" and the job's id
    job_calls = [gw.log(log["id"]) for log in gw.logs() if log["entry_point"] == "job"]
    logs = [log for log in job_calls if (log["client_request_id"] or "").startswith(f"job:{job['id']}:")]
    assert len(logs) == 5
    assert {log["entry_point"] for log in logs} == {"job"}
    assert {log["model_used"] for log in logs} == {"echo"}


def test_item_errors_are_reported_per_request(jobs_gateway: Gateway) -> None:
    with jobs_gateway.client() as c:
        body = {"kind": "chat_batch", "input": {"requests": [_chat("fine"), _chat("boom", model="rejecting")]}}
        job = wait_job(c, c.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded"
    ok, bad = job["result"]["responses"]
    assert ok["status"] == "ok" and bad["status"] == "error"
    assert "bad temperature" in bad["error"]["message"]
    assert job["result"]["failed"] == 1


def test_all_requests_failing_fails_the_job(jobs_gateway: Gateway) -> None:
    with jobs_gateway.client() as c:
        body = {"kind": "chat_batch", "input": {"requests": [_chat("a", model="rejecting")]}}
        job = wait_job(c, c.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "all_requests_failed"
    assert "bad temperature" in job["error"]["message"]


def test_summarize_by_map_reduce(any_jobs_gateway: Gateway) -> None:
    paragraphs = [f"Paragraph {i} says the launch moved to week {i}." for i in range(12)]
    text = "\n\n".join(paragraphs)
    with any_jobs_gateway.client() as c:
        body = {"kind": "summarize", "input": {"text": text, "model": "echo", "chunk_chars": 200}}
        job = wait_job(c, c.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["chunks"] > 1 and result["reduce_levels"] >= 1
    assert result["calls"] == job["progress"]["done"] == job["progress"]["total"]
    for i in range(12):  # the echo model repeats its input, so every part reaches the summary
        assert f"week {i}." in result["summary"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": {}}, "kind", "kind"),
        ({"kind": "teleport", "input": {}}, "kind", "teleport"),
        ({"kind": "chat_batch"}, "input", "input"),
        ({"kind": "chat_batch", "input": {"requests": []}}, "input.requests", "at least 1"),
        ({"kind": "chat_batch", "input": {"requests": [_chat("x")], "speed": 3}}, "input.speed", "not permitted"),
        (
            {"kind": "chat_batch", "input": {"requests": [_chat("x"), {"model": "echo"}]}},
            "input.requests[1].messages",
            "messages",
        ),
        (
            {"kind": "chat_batch", "input": {"requests": [_chat("x", stream=True)]}},
            "input.requests[0].stream",
            "stream",
        ),
        ({"kind": "chat_batch", "input": {"requests": [_chat("x", model="nope")]}}, "input.requests[0].model", "nope"),
        (
            {"kind": "chat_batch", "input": {"requests": [_chat("x", temperature=9)]}},
            "input.requests[0].temperature",
            "temperature",
        ),
        ({"kind": "summarize", "input": {"text": "hi"}}, "input.model", "model"),
        ({"kind": "summarize", "input": {"text": "   ", "model": "echo"}}, "input.text", "empty"),
        (
            {"kind": "summarize", "input": {"text": "x" * 200_001, "model": "echo", "chunk_chars": 200}},
            "input.chunk_chars",
            "limit",
        ),
        ({"kind": "summarize", "input": {"text": "hi", "model": "ghost"}}, "input.model", "ghost"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    jobs_gateway: Gateway, body: dict[str, Any], param: str, words: str
) -> None:
    with jobs_gateway.client() as c:
        r = c.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]


def test_body_must_be_a_json_object(jobs_gateway: Gateway) -> None:
    with jobs_gateway.client() as c:
        assert c.post("/api/jobs", json=[1, 2]).status_code == 422
        assert c.post("/api/jobs", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
        assert httpx.post(f"{jobs_gateway.url}/api/jobs", json={}).status_code == 401


def test_users_see_only_their_jobs_and_admins_see_all(jobs_gateway: Gateway) -> None:
    member = member_key(jobs_gateway)
    other = member_key(jobs_gateway, "sara@demo.aiport.local")
    with jobs_gateway.client(member) as mine, jobs_gateway.client(other) as theirs, jobs_gateway.client() as admin:
        job = mine.post("/api/jobs", json={"kind": "chat_batch", "input": {"requests": [_chat("mine")]}}).json()
        wait_job(mine, job["id"])
        assert next(j["id"] for j in mine.get("/api/jobs").json()["data"]) == job["id"]
        assert job["id"] not in [j["id"] for j in theirs.get("/api/jobs").json()["data"]]
        for path in (f"/api/jobs/{job['id']}", f"/api/jobs/{job['id']}/events"):
            r = theirs.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
        missing = theirs.get("/api/jobs/job_doesnotexist")
        assert missing.status_code == 404 and missing.json() == {**missing.json()}  # same shape as a hidden one
        assert theirs.post(f"/api/jobs/{job['id']}/cancel").status_code == 404
        assert theirs.get("/api/jobs", params={"all": "true"}).status_code == 403
        everyone = admin.get("/api/jobs", params={"all": "true", "limit": 200}).json()["data"]
        assert job["id"] in [j["id"] for j in everyone]
        assert admin.get(f"/api/jobs/{job['id']}").status_code == 200
        assert "input" not in everyone[0] and "result" not in everyone[0]


def test_list_filters_and_pages(jobs_gateway: Gateway) -> None:
    key = member_key(jobs_gateway, "alex@demo.aiport.local")
    with jobs_gateway.client(key) as c:
        ids = [
            c.post("/api/jobs", json={"kind": "chat_batch", "input": {"requests": [_chat(str(i))]}}).json()["id"]
            for i in range(3)
        ]
        for job_id in ids:
            wait_job(c, job_id)
        page = c.get("/api/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in page["data"]] == ids[::-1][:2]
        rest = c.get("/api/jobs", params={"limit": 2, "before": page["next_before"]}).json()
        assert [j["id"] for j in rest["data"]] == ids[:1]
        assert c.get("/api/jobs", params={"status": "succeeded", "kind": "summarize"}).json()["data"] == []
        weird = c.get("/api/jobs", params={"status": "weird"})
        assert weird.status_code in (400, 422) and weird.json()["error"]["param"] == "status"


def test_cancel_a_running_job(jobs_gateway: Gateway, jobs_upstream: Any) -> None:
    requests = [_chat(f"cancel-me {i}", model="sleepy") for i in range(20)]
    with jobs_gateway.client() as c:
        job_id = c.post(
            "/api/jobs", json={"kind": "chat_batch", "input": {"requests": requests, "concurrency": 1}}
        ).json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{job_id}").json()["progress"]["done"] >= 1, what="first answer")
        r = c.post(f"/api/jobs/{job_id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        again = c.post(f"/api/jobs/{job_id}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_cancellable"
        calls = sum(n for text, n in jobs_upstream.calls.items() if text.startswith("cancel-me"))
        import time

        time.sleep(1.0)
        job = c.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["result"] is None
    assert sum(n for text, n in jobs_upstream.calls.items() if text.startswith("cancel-me")) <= calls + 1
    assert calls < 20


def test_idempotency_key_returns_the_same_job(jobs_gateway: Gateway) -> None:
    body = {"kind": "chat_batch", "input": {"requests": [_chat("once")]}}
    with jobs_gateway.client() as c:
        first = c.post("/api/jobs", json=body, headers={"idempotency-key": "batch-42"}).json()
        second = c.post("/api/jobs", json=body, headers={"idempotency-key": "batch-42"}).json()
        assert first["id"] == second["id"]
        other = c.post(
            "/api/jobs", json={**body, "input": {"requests": [_chat("twice")]}}, headers={"idempotency-key": "batch-42"}
        )
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_kinds_are_listed_with_their_schemas(jobs_gateway: Gateway) -> None:
    with jobs_gateway.client() as c:
        kinds = {k["name"]: k for k in c.get("/api/jobs/kinds").json()["data"]}
    assert set(kinds) >= {"chat_batch", "summarize"}
    assert "requests" in kinds["chat_batch"]["input_schema"]["properties"]


def test_transient_failures_are_retried_with_backoff_then_fail(jobs_gateway: Gateway) -> None:
    """A provider's 5xx is worth another try: the job goes back to the queue with a growing
    delay, up to AIPORT_JOB_MAX_ATTEMPTS, then fails with the last error."""
    with jobs_gateway.client() as c:
        body = {"kind": "summarize", "input": {"text": "retry me", "model": "broken"}}
        job = wait_job(c, c.post("/api/jobs", json=body).json()["id"], timeout=60)
        with c.stream("GET", f"/api/jobs/{job['id']}/events") as r:
            text = "".join(r.iter_text())
    assert job["status"] == "failed" and job["attempt"] == 5, job
    assert job["error"]["code"] != "internal_error"
    retries = [
        json.loads(line.removeprefix("data: "))
        for line in text.splitlines()
        if line.startswith("data: ") and '"retry_in"' in line
    ]
    delays = [r["retry_in"] for r in retries]
    assert len(delays) == 4, delays
    assert all(later > earlier for earlier, later in pairwise(delays)), delays


def test_jobs_are_held_to_the_owners_quota(jobs_gateway: Gateway) -> None:
    """A job's calls go through the quota stage as its owner: over quota, the job fails at
    once with the quota's message (waiting for a window to reset would not help)."""
    from tests.gateway.conftest import make_member

    member = make_member(jobs_gateway)
    with jobs_gateway.client() as admin:
        quota = {"scope": "user", "subject_id": member.user_id, "limit": 1}
        assert admin.put("/api/admin/quotas", json=quota).status_code in (200, 201)
    with jobs_gateway.client(member.key) as c:
        body = {"kind": "summarize", "input": {"text": "too expensive", "model": "echo", "max_tokens": 50}}
        job = wait_job(c, c.post("/api/jobs", json=body).json()["id"])
    assert job["status"] == "failed" and job["attempt"] == 1, job
    assert job["error"]["code"] == "quota_exceeded" and "Quota exceeded" in job["error"]["message"]


def test_rate_limited_calls_wait_and_quota_refusals_do_not() -> None:
    from aiport.domain.errors import RateLimited, UpstreamError
    from aiport.jobs.context import rate_limit_wait

    wait = rate_limit_wait(RateLimited("slow down", code="rate_limit_exceeded", headers={"retry-after": "2"}))
    assert wait is not None and 2.0 <= wait <= 2.4
    assert rate_limit_wait(RateLimited("no tokens left", code="quota_exceeded", headers={"retry-after": "9"})) is None
    assert rate_limit_wait(UpstreamError("boom")) is None
    capped = rate_limit_wait(RateLimited("later", code="rate_limit_exceeded", headers={"retry-after": "86400"}))
    assert capped is not None and capped <= 72
