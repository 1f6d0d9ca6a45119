"""Jobs on Celery workers (`aiport worker` subprocesses) with the real brokers, RabbitMQ and
Redis, and job state in the real PostgreSQL: a batch runs; a worker killed with SIGKILL
mid-job is redelivered to another and the job ends exactly once (one result, one
notification, one webhook delivery)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from aiport.accounts.demo import DEMO_ADMIN_EMAIL
from aiport.domain.principal import Principal
from aiport.store.jobs import Job
from aiport.store.models import User
from tests.conftest import Gateway
from tests.jobs.conftest import (
    RABBITMQ_URL,
    REDIS_BROKER_URL,
    Worker,
    broker_or_skip,
    delete_queue,
    jobs_settings,
    purge_queue,
    queue_length,
    start_jobs_gateway,
    wait_for,
    wait_job,
    worker_env,
)
from tests.jobs.fakes import JobsUpstream, WebhookReceiver
from tests.support.postgres import create_database, drop_database

BROKERS = {"rabbitmq": RABBITMQ_URL, "redis": REDIS_BROKER_URL}


@dataclass
class CeleryStack:
    gateway: Gateway
    env: dict[str, str]
    broker: str
    workers: list[Worker]
    broker_url: str = ""
    queue: str = ""

    def worker(self, name: str, pool: str = "threads") -> Worker:
        w = Worker(self.env, name, pool).wait_ready()
        self.workers.append(w)
        return w


@pytest.fixture(params=sorted(BROKERS))
def celery_stack(request: pytest.FixtureRequest, tmp_path: Any, jobs_upstream: JobsUpstream) -> Iterator[CeleryStack]:
    """aiport (PostgreSQL, AIPORT_BROKER_URL set) publishing to its own queue on a real broker."""
    broker = broker_or_skip(BROKERS[request.param])
    queue = f"aiport.test.{secrets.token_hex(4)}"
    url, name = create_database()
    settings = jobs_settings(tmp_path, jobs_upstream.url, url, broker_url=broker, job_queue=queue)  # type: ignore[attr-defined]
    gw = start_jobs_gateway(settings, "postgres")
    stack = CeleryStack(
        gateway=gw, env=worker_env(settings), broker=request.param, workers=[], broker_url=broker, queue=queue
    )
    try:
        yield stack
    finally:
        for w in stack.workers:
            w.stop()
        gw.server.stop()
        delete_queue(broker, queue)
        drop_database(name)


def _chat(text: str, model: str = "echo") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def test_batch_runs_on_a_celery_worker(celery_stack: CeleryStack) -> None:
    gw = celery_stack.gateway
    assert gw.runtime.jobs.backend.name == "celery"
    worker = celery_stack.worker("w1")
    with gw.client() as c:
        r = c.post("/api/jobs", json={"kind": "chat_batch", "input": {"requests": [_chat(f"c{i}") for i in range(4)]}})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["id"], timeout=40)
    assert job["status"] == "succeeded", (job, worker.log())
    contents = [x["response"]["choices"][0]["message"]["content"] for x in job["result"]["responses"]]
    assert contents == [f"echo: c{i}" for i in range(4)]
    # the worker's calls went through the one pipeline and reached the (shared) audit log
    detailed = [gw.log(x["id"]) for x in gw.logs() if x["entry_point"] == "job"]
    logs = [x for x in detailed if (x["client_request_id"] or "").startswith(f"job:{job['id']}:")]
    assert len(logs) == 4 and {x["entry_point"] for x in logs} == {"job"}


@pytest.mark.parametrize("celery_stack", ["rabbitmq"], indirect=True)  # the pool does not depend on the broker
def test_prefork_pool_runs_jobs_too(celery_stack: CeleryStack) -> None:
    """Each prefork child builds its own runtime (event loop, engine) on its first job."""
    worker = celery_stack.worker("forked", pool="prefork")
    with celery_stack.gateway.client() as c:
        ids = [c.post("/api/jobs", json={"kind": "noop", "input": {"note": str(i)}}).json()["id"] for i in range(4)]
        jobs = [wait_job(c, job_id, timeout=60) for job_id in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 4, worker.log()
    assert [j["result"]["note"] for j in jobs] == ["0", "1", "2", "3"]


@pytest.mark.parametrize("celery_stack", ["redis"], indirect=True)
def test_cancel_reaches_a_job_running_on_a_worker(celery_stack: CeleryStack, jobs_upstream: JobsUpstream) -> None:
    """The server only marks the job cancelled; the worker sees it at its next progress
    write or heartbeat and stops asking the model."""
    tag = f"cancel-celery-{secrets.token_hex(3)}"
    worker = celery_stack.worker("cancellable")
    with celery_stack.gateway.client() as c:
        body = {"requests": [_chat(f"{tag} {i}", model="sleepy") for i in range(20)], "concurrency": 1}
        job_id = c.post("/api/jobs", json={"kind": "chat_batch", "input": body}).json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{job_id}").json()["progress"]["done"] >= 1, timeout=40, what="an answer")
        assert c.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        asked = sum(jobs_upstream.calls[f"{tag} {i}"] for i in range(20))
        time.sleep(2.0)
        job = c.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["result"] is None, worker.log()
    assert sum(jobs_upstream.calls[f"{tag} {i}"] for i in range(20)) <= asked + 1  # it stopped


def test_killed_worker_job_is_redelivered_and_finishes_exactly_once(
    celery_stack: CeleryStack, jobs_upstream: JobsUpstream, receiver: WebhookReceiver
) -> None:
    gw = celery_stack.gateway
    tag = f"kill-{celery_stack.broker}-{secrets.token_hex(3)}"
    hook_url = receiver.hook(tag)
    n = 8
    with gw.client() as c:
        hook = c.post("/api/webhooks", json={"url": hook_url, "events": ["job.succeeded", "job.failed"]})
        assert hook.status_code == 201, hook.text
        receiver.set_secret(tag, hook.json()["secret"])
        first = celery_stack.worker("doomed")
        body = {"requests": [_chat(f"{tag} {i}", model="sleepy") for i in range(n)], "concurrency": 1}
        job_id = c.post("/api/jobs", json={"kind": "chat_batch", "input": body}).json()["id"]
        wait_for(
            lambda: c.get(f"/api/jobs/{job_id}").json()["progress"]["done"] >= 2,
            timeout=40,
            what="two answers before the kill",
        )
        first.kill9()
        assert c.get(f"/api/jobs/{job_id}").json()["status"] == "running"  # orphaned: its lease is still live
        second = celery_stack.worker("rescuer")
        job = wait_job(c, job_id, timeout=60)
        assert job["status"] == "succeeded", (job, second.log())
        assert job["attempt"] == 2  # redelivered once, not run twice in parallel
        assert [x["response"]["choices"][0]["message"]["content"] for x in job["result"]["responses"]] == [
            f"echo: {tag} {i}" for i in range(n)
        ]
        # the checkpoint kept finished answers: at most the one in flight at the kill was asked twice
        asked = [jobs_upstream.calls[f"{tag} {i}"] for i in range(n)]
        assert all(k >= 1 for k in asked) and sum(asked) <= n + 1, asked
        # one notification for the user, one webhook delivery for the receiver
        wait_for(lambda: receiver.received(tag), timeout=20, what="the webhook delivery")
        notes = [x for x in c.get("/api/notifications").json()["data"] if x["data"]["job_id"] == job_id]
        assert [x["type"] for x in notes] == ["job.succeeded"]
        deliveries = wait_for(
            lambda: [
                d
                for d in c.get(f"/api/webhooks/{hook.json()['id']}/deliveries").json()["data"]
                if d["status"] != "pending"
            ],
            timeout=20,
            what="the delivery to be recorded",
        )
        assert [(d["event_type"], d["status"]) for d in deliveries] == [("job.succeeded", "succeeded")]
    time.sleep(1.0)  # anything duplicated would have arrived by now
    got = receiver.received(tag)
    assert len(got) == 1 and got[0].valid_signature and got[0].status == 200
    assert job_id.encode() in got[0].body


def test_transient_failures_are_retried_through_the_broker(celery_stack: CeleryStack) -> None:
    """A provider 5xx: the task is retried by Celery with the job's backoff, up to the
    attempt limit, then the job fails once (one notification)."""
    gw = celery_stack.gateway
    worker = celery_stack.worker("retrier")
    with gw.client() as c:
        body = {"kind": "summarize", "input": {"text": "retry me", "model": "broken"}}
        job = wait_job(c, c.post("/api/jobs", json=body).json()["id"], timeout=60)
        assert job["status"] == "failed" and job["attempt"] == 5, (job, worker.log())
        notes = [x for x in c.get("/api/notifications").json()["data"] if x["data"]["job_id"] == job["id"]]
        assert [x["type"] for x in notes] == ["job.failed"]


@pytest.mark.parametrize("celery_stack", ["rabbitmq"], indirect=True)
def test_a_job_committed_but_never_published_is_published_by_the_sweep(celery_stack: CeleryStack) -> None:
    """A server that dies between its commit and its publish leaves a queued job no broker
    knows about; a live process publishes it one lease later."""
    gw = celery_stack.gateway
    jobs = gw.runtime.jobs
    with gw.client() as c:
        published = c.post("/api/jobs", json={"kind": "noop", "input": {"note": "normal"}}).json()["id"]

    async def orphan() -> str:
        async with gw.runtime.sessions() as s:
            admin = (await s.execute(select(User).where(User.email == DEMO_ADMIN_EMAIL))).scalar_one()
        principal = Principal(org_id=admin.org_id, user_id=admin.id, role=admin.role)
        job, _ = await jobs.store.create(
            principal, kind="noop", input={"note": "orphan"}, backend="celery", max_attempts=3
        )
        return job.id  # committed, never published: as if the process died here

    orphan_id = gw.server.run(orphan())
    celery_stack.worker("sweeper-target")
    with gw.client() as c:
        assert wait_job(c, published, timeout=40)["status"] == "succeeded"
        job = wait_job(c, orphan_id, timeout=40)
    assert job["status"] == "succeeded" and job["result"]["note"] == "orphan" and job["attempt"] == 1


def test_publications_are_recorded_in_batches_so_the_sweep_leaves_published_jobs_alone(
    celery_stack: CeleryStack,
) -> None:
    gw = celery_stack.gateway
    with gw.client() as c:
        ids = [c.post("/api/jobs", json={"kind": "noop", "input": {"note": f"b{i}"}}).json()["id"] for i in range(12)]

    async def unrecorded() -> list[str]:
        async with gw.runtime.sessions() as s:
            rows = await s.execute(select(Job.id).where(Job.id.in_(ids), Job.published_at.is_(None)))
            return list(rows.scalars())

    wait_for(lambda: not gw.server.run(unrecorded()), timeout=5, what="publications recorded")
    time.sleep(2.5)  # past a lease (2 s here): recorded jobs are no orphans, so nothing is published twice
    assert queue_length(celery_stack.broker_url, celery_stack.queue) == 12


def test_a_job_whose_message_the_broker_lost_is_published_again(celery_stack: CeleryStack) -> None:
    """A Redis without persistence restarted, a queue purged by hand: the job row still says
    queued, no message will ever come; once a lease has passed with the queue empty, a live
    process publishes it again, and it runs once."""
    gw = celery_stack.gateway
    with gw.client() as c:
        job_id = c.post("/api/jobs", json={"kind": "noop", "input": {"note": "lost"}}).json()["id"]
    assert purge_queue(celery_stack.broker_url, celery_stack.queue) == 1  # its message is gone
    celery_stack.worker("after-the-loss")
    with gw.client() as c:
        job = wait_job(c, job_id, timeout=40)
    assert job["status"] == "succeeded" and job["result"]["note"] == "lost" and job["attempt"] == 1


def test_unreachable_broker_is_a_503_and_leaves_no_orphan(tmp_path: Any, jobs_upstream: JobsUpstream) -> None:
    """The job row is written first; when the broker refuses it, it is failed at once (with
    the reason) rather than left queued where no worker will ever see it."""
    settings = jobs_settings(tmp_path, jobs_upstream.url, None, broker_url="amqp://guest:guest@127.0.0.1:1//")  # type: ignore[attr-defined]
    gw = start_jobs_gateway(settings, "sqlite")
    try:
        with gw.client() as c:
            r = c.post("/api/jobs", json={"kind": "noop", "input": {}})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "broker_unavailable"
            (job,) = c.get("/api/jobs").json()["data"]
            assert job["status"] == "failed" and job["error"]["code"] == "broker_unavailable"
    finally:
        gw.server.stop()
