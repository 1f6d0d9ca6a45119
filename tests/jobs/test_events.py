"""Server-sent events over real HTTP: a job's status and progress until it ends (resumable
with Last-Event-ID), and in-app notifications pushed to the user who started the job."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from tests.conftest import Gateway
from tests.jobs.conftest import member_key, wait_for, wait_job


def _batch(texts: list[str], model: str = "echo", concurrency: int = 4) -> dict[str, Any]:
    requests = [{"model": model, "messages": [{"role": "user", "content": t}]} for t in texts]
    return {"kind": "chat_batch", "input": {"requests": requests, "concurrency": concurrency}}


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            if key in ("id", "event", "data"):
                fields[key] = json.loads(value) if key == "data" else value
        if "event" in fields:
            events.append(fields)
    return events


def test_job_events_stream_progress_until_the_end(any_jobs_gateway: Gateway) -> None:
    with any_jobs_gateway.client() as c:
        job_id = c.post("/api/jobs", json=_batch([f"e{i}" for i in range(4)], model="sleepy", concurrency=2)).json()[
            "id"
        ]
        with c.stream("GET", f"/api/jobs/{job_id}/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = parse_sse("".join(r.iter_text()))  # the stream ends by itself when the job does
        statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
        assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
        assert events[-1]["event"] == "status"
        progress = [e["data"] for e in events if e["event"] == "progress"]
        assert progress and progress[-1]["done"] == progress[-1]["total"] == 4
        assert all(e["data"]["job_id"] == job_id for e in events)
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(ids)
        # Last-Event-ID resumes after the given event, replaying only what came later
        middle = events[len(events) // 2]
        with c.stream("GET", f"/api/jobs/{job_id}/events", headers={"last-event-id": middle["id"]}) as r:
            rest = parse_sse("".join(r.iter_text()))
        assert [e["id"] for e in rest] == [e["id"] for e in events if int(e["id"]) > int(middle["id"])]


def test_notification_is_pushed_to_the_jobs_owner_over_sse(jobs_gateway: Gateway) -> None:
    owner = member_key(jobs_gateway, "mina@demo.aiport.local")
    bystander = member_key(jobs_gateway, "sara@demo.aiport.local")
    seen: dict[str, list[dict[str, Any]]] = {"owner": [], "bystander": []}
    connected = {"owner": threading.Event(), "bystander": threading.Event()}
    job_ids: list[str] = []

    def listen(who: str, key: str) -> None:
        try:
            follow(who, key)
        except httpx.HTTPError:
            if not done.is_set():  # the server closes idle streams when it stops, after the test
                raise

    def follow(who: str, key: str) -> None:
        with (
            httpx.Client(base_url=jobs_gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c,
            c.stream("GET", "/api/notifications/stream") as r,
        ):
            buf = ""
            for chunk in r.iter_text():
                connected[who].set()
                buf += chunk
                while "\n\n" in buf:
                    block, buf = buf.split("\n\n", 1)
                    seen[who].extend(parse_sse(block + "\n\n"))
                if job_ids and any(e["data"]["data"]["job_id"] == job_ids[0] for e in seen[who]):
                    return
                if who == "bystander" and done.is_set():
                    return

    done = threading.Event()
    threads = [
        threading.Thread(target=listen, args=a, daemon=True) for a in (("owner", owner), ("bystander", bystander))
    ]
    for t in threads:
        t.start()
    assert connected["owner"].wait(10) and connected["bystander"].wait(10)
    with jobs_gateway.client(owner) as c:
        job_ids.append(c.post("/api/jobs", json=_batch(["notify me"])).json()["id"])
        wait_job(c, job_ids[0])
        wait_for(lambda: any(e["data"]["data"]["job_id"] == job_ids[0] for e in seen["owner"]), what="the push")
        listed = [n for n in c.get("/api/notifications").json()["data"] if n["data"]["job_id"] == job_ids[0]]
    done.set()
    pushed = [e for e in seen["owner"] if e["data"]["data"]["job_id"] == job_ids[0]]
    assert len(pushed) == 1 and pushed[0]["event"] == "notification"
    note = pushed[0]["data"]
    assert note["type"] == "job.succeeded" and note["data"]["url"] == f"/api/jobs/{job_ids[0]}"
    assert "chat_batch" in note["title"]
    assert [n["id"] for n in listed] == [note["id"]]
    assert not any(e["data"]["data"].get("job_id") == job_ids[0] for e in seen["bystander"])
    # reading it
    with jobs_gateway.client(owner) as c:
        assert c.post(f"/api/notifications/{note['id']}/read").json()["read_at"]
        assert note["id"] not in [n["id"] for n in c.get("/api/notifications", params={"unread": True}).json()["data"]]
    with jobs_gateway.client(bystander) as c:
        assert c.post(f"/api/notifications/{note['id']}/read").status_code == 404


def test_cancelled_job_ends_its_stream_without_a_notification(jobs_gateway: Gateway) -> None:
    key = member_key(jobs_gateway, "joon@demo.aiport.local")
    with jobs_gateway.client(key) as c:
        job_id = c.post(
            "/api/jobs", json=_batch([f"slow {i}" for i in range(10)], model="sleepy", concurrency=1)
        ).json()["id"]
        assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 200
        with c.stream("GET", f"/api/jobs/{job_id}/events") as r:
            events = parse_sse("".join(r.iter_text()))
        assert events[-1]["data"]["status"] == "cancelled"
        job = wait_job(c, job_id)
        assert job["status"] == "cancelled"
        assert not [n for n in c.get("/api/notifications").json()["data"] if n["data"]["job_id"] == job_id]
