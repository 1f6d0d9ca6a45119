"""Fixtures for jobs: aiport with fast job settings on SQLite and PostgreSQL, a slow fake
upstream, a webhook receiver, real brokers, and `aiport worker` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from aiport.accounts.keys import create_key
from aiport.config import Settings
from aiport.store.models import User
from aiport.web.app import create_app
from tests.conftest import Gateway
from tests.jobs.fakes import JobsUpstream, WebhookReceiver
from tests.support.postgres import _in_ci, create_database, drop_database
from tests.support.servers import ServerThread

RABBITMQ_URL = os.environ.get("AIPORT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_BROKER_URL = os.environ.get("AIPORT_TEST_REDIS_BROKER_URL", "redis://127.0.0.1:6379/14")

# Fast clocks for tests: short leases and backoffs, quick polling. Also for worker subprocesses.
JOB_SETTINGS: dict[str, Any] = {
    "webhook_allow_private": True,
    "jobs_poll_seconds": 0.1,
    "job_lease_seconds": 2.0,
    "job_retry_base_seconds": 0.2,
    "webhook_retry_base_seconds": 0.2,
    "webhook_timeout_seconds": 3.0,
    "broker_visibility_timeout": 3.0,
}

MODELS = {"echo": "fake-echo", "sleepy": "fake-sleep", "broken": "fake-500", "rejecting": "fake-400"}


def write_jobs_catalog(path: Path, upstream_url: str) -> Path:
    catalog = {
        "providers": {
            "fake": {
                "kind": "openai_compat",
                "base_url": upstream_url + "/v1",
                "api_key": "sk-test",
                "timeout_seconds": 10,
            }
        },
        "models": [
            {"name": name, "provider": "fake", "upstream_model": upstream, "max_output_tokens": 1000}
            for name, upstream in MODELS.items()
        ],
    }
    path.write_text(yaml.safe_dump(catalog))
    return path


@pytest.fixture(scope="session")
def jobs_upstream() -> Iterator[JobsUpstream]:
    fake = JobsUpstream()
    server = ServerThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    rec = WebhookReceiver()
    server = ServerThread(rec.app).start()
    rec.url = server.url
    yield rec
    server.stop()


def jobs_settings(tmp: Path, upstream_url: str, database_url: str | None, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp,
        database_url=database_url,
        AIPORT_CONFIG=write_jobs_catalog(tmp / "models.yaml", upstream_url),
        audit_flush_interval=0.05,
        revocation_poll_seconds=0.2,
        **{**JOB_SETTINGS, **extra},
    )


def start_jobs_gateway(settings: Settings, backend: str) -> Gateway:
    from aiport.accounts.demo import seed_demo

    server = ServerThread(create_app(settings)).start()
    rt = server.config.app.state.runtime  # type: ignore[union-attr]

    async def seed() -> str:
        async with rt.sessions() as session, session.begin():
            result = await seed_demo(session, new_key=True)
            assert result.api_key
            return result.api_key

    return Gateway(server=server, key=server.run(seed()), backend=backend)


def member_key(gw: Gateway, email: str = "joon@demo.aiport.local") -> str:
    async def make() -> str:
        async with gw.runtime.sessions() as s, s.begin():
            user = (await s.execute(select(User).where(User.email == email))).scalar_one()
            return (await create_key(s, user, name="member key")).secret

    return gw.server.run(make())


@pytest.fixture(scope="session")
def jobs_gateway(tmp_path_factory: pytest.TempPathFactory, jobs_upstream: JobsUpstream) -> Iterator[Gateway]:
    """aiport on SQLite with the in-process backend."""
    tmp = tmp_path_factory.mktemp("jobs")
    gw = start_jobs_gateway(jobs_settings(tmp, jobs_upstream.url, None), "sqlite")  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()


@pytest.fixture(scope="session")
def pg_jobs_gateway(tmp_path_factory: pytest.TempPathFactory, jobs_upstream: JobsUpstream) -> Iterator[Gateway]:
    """aiport on PostgreSQL with the in-process backend."""
    url, name = create_database()
    tmp = tmp_path_factory.mktemp("jobs-pg")
    gw = start_jobs_gateway(jobs_settings(tmp, jobs_upstream.url, url), "postgres")  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()
    drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def any_jobs_gateway(request: pytest.FixtureRequest) -> Gateway:
    return request.getfixturevalue("jobs_gateway" if request.param == "sqlite" else "pg_jobs_gateway")  # type: ignore[no-any-return]


# ---- waiting ---------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout, what=f"job {job_id} to end")  # type: ignore[no-any-return]


# ---- brokers and workers ---------------------------------------------------------------------


def broker_or_skip(url: str) -> str:
    """The broker URL when reachable; skip locally, fail with CI=true (CI must run these)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        reason = f"broker not reachable at {url}: {exc}"
        if _in_ci():
            pytest.fail(reason + " (CI=true: broker tests must run)")
        pytest.skip(reason)
    return url


def delete_queue(url: str, queue: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        try:
            conn.default_channel.queue_delete(queue)
        except Exception:
            pass


def queue_length(url: str, queue: str) -> int:
    """Messages waiting in `queue` (not delivered to any worker)."""
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)


def purge_queue(url: str, queue: str) -> int:
    """Drop every waiting message of `queue`, as a broker that loses them would."""
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        return int(conn.default_channel.queue_purge(queue) or 0)


class Worker:
    """An `aiport worker` subprocess; its output is collected for failure messages."""

    def __init__(self, env: dict[str, str], name: str, pool: str = "threads") -> None:
        exe = Path(sys.executable).parent / "aiport"
        self.name = name
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [str(exe), "worker", "--concurrency", "2", "--loglevel", "info", "--pool", pool],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        deadline = time.monotonic() + timeout
        while not any(" ready." in line for line in self.output):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"worker {self.name} did not start:\n" + "".join(self.output[-60:]))
            time.sleep(0.1)
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self) -> str:
        return "".join(self.output[-80:])


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPORT_")}
    env.update(
        {
            "AIPORT_DATA_DIR": str(settings.data_dir),
            "AIPORT_DATABASE_URL": settings.resolved_database_url,
            "AIPORT_CONFIG": str(settings.catalog_path),
            "AIPORT_BROKER_URL": settings.broker_url or "",
            "AIPORT_JOB_QUEUE": settings.job_queue,
            "AIPORT_AUDIT_FLUSH_INTERVAL": "0.05",
            **{
                f"AIPORT_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in JOB_SETTINGS.items()
            },
        }
    )
    return env
