"""Enqueue latency and throughput of trivial jobs, per backend.

For each backend this starts a real `aiport serve` (and, for Celery, `aiport worker`
processes) in subprocesses, then measures with `noop` jobs (no model call, so only the
job machinery is timed):

* enqueue latency: N sequential `POST /api/jobs` -> 202 (DB insert + hand-over to the
  backend: a local wake-up, or a publish confirmed by the broker);
* round trip: R jobs one at a time on an otherwise idle system, created_at -> finished_at
  in the database (pick-up by a worker, claim, run, final transaction);
* throughput: M jobs submitted by C concurrent clients; accepted jobs/s, and completed
  jobs/s from the first submit until the last job finished.

Backends: `inprocess` (SQLite, the embedded default), `inprocess-pg`, `celery-rabbitmq`,
`celery-redis` (Celery ones on PostgreSQL). Needs the services of docs/benchmarks.md.

    python bench/jobs_bench.py --backends inprocess,celery-rabbitmq,celery-redis --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent / "aiport"
PG_ADMIN = os.environ.get("AIPORT_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BROKERS = {
    "celery-rabbitmq": os.environ.get("AIPORT_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "celery-redis": os.environ.get("AIPORT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
}
BACKENDS = ("inprocess", "inprocess-pg", "celery-rabbitmq", "celery-redis")
CATALOG = "providers: {}\nmodels: []\n"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A subprocess in its own process group, its output kept for error messages."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, check: Any, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} failed:\n" + "".join(self.lines[-40:]))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Stack:
    backend: str
    env: dict[str, str]
    url: str
    key: str
    procs: list[Proc] = field(default_factory=list)
    cleanup: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception as exc:  # cleanup is best effort; say what was left behind
                print(f"cleanup failed: {exc}", file=sys.stderr)


def start_stack(backend: str, tmp: Path, workers: int, worker_procs: int) -> Stack:
    (tmp / "models.yaml").write_text(CATALOG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPORT_")}
    env.update(
        {
            "AIPORT_DATA_DIR": str(tmp),
            "AIPORT_CONFIG": str(tmp / "models.yaml"),
            "AIPORT_LOG_LEVEL": "warning",
            "AIPORT_JOB_WORKERS": str(workers),
        }
    )
    stack = Stack(backend=backend, env=env, url="", key="")
    if backend != "inprocess":
        name = "aiport_bench_" + secrets.token_hex(4)
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        stack.cleanup.append(lambda: asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
        env["AIPORT_DATABASE_URL"] = (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
        )
    if backend.startswith("celery"):
        env["AIPORT_BROKER_URL"] = BROKERS[backend]
        env["AIPORT_JOB_QUEUE"] = queue = "aiport.bench." + secrets.token_hex(4)
        stack.cleanup.append(lambda: _delete_queue(BROKERS[backend], queue))
    subprocess.run([str(BIN), "seed-demo", "--key-file", str(tmp / "key")], env=env, check=True, capture_output=True)
    stack.key = (tmp / "key").read_text().strip()
    port = _free_port()
    stack.url = f"http://127.0.0.1:{port}"
    server = Proc([str(BIN), "serve", "--no-demo", "--no-warm", "--host", "127.0.0.1", "--port", str(port)], env)
    stack.procs.append(server)

    def up() -> bool:
        try:
            return httpx.get(stack.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    server.wait_for(up, "aiport serve")
    if backend.startswith("celery"):
        for _ in range(worker_procs):
            w = Proc([str(BIN), "worker", "--concurrency", str(workers), "--loglevel", "warning"], env)
            stack.procs.append(w)
        stack.procs[-1].wait_for(lambda: _workers_ready(env) >= worker_procs, "aiport worker")
    return stack


def _workers_ready(env: dict[str, str]) -> int:
    """How many workers answer a ping (they answer once they consume)."""
    from celery import Celery

    app = Celery(broker=env["AIPORT_BROKER_URL"], set_as_current=False)
    try:
        return len(app.control.ping(timeout=1.0))
    finally:
        app.close()


def _delete_queue(url: str, queue: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        conn.default_channel.queue_delete(queue)


async def _finished(stack: Stack, ids: list[str], timeout: float, poll: float = 0.05) -> list[tuple[float, float]]:
    """Wait until every job ended; (created_at, finished_at) as epoch seconds."""
    from sqlalchemy import func, select

    from aiport.config import Settings
    from aiport.store.db import make_engine, make_sessionmaker
    from aiport.store.jobs import Job

    settings = Settings(data_dir=Path(stack.env["AIPORT_DATA_DIR"]), database_url=stack.env.get("AIPORT_DATABASE_URL"))
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    deadline = time.monotonic() + timeout
    try:
        while True:
            async with sessions() as s:
                open_jobs = await s.scalar(
                    select(func.count()).select_from(Job).where(Job.id.in_(ids), Job.finished_at.is_(None))
                )
                if not open_jobs:
                    rows = (
                        await s.execute(select(Job.status, Job.created_at, Job.finished_at).where(Job.id.in_(ids)))
                    ).all()
                    bad = [r.status for r in rows if r.status != "succeeded"]
                    if bad:
                        raise RuntimeError(f"{len(bad)} jobs did not succeed: {bad[:5]}")
                    return [(_epoch(r.created_at), _epoch(r.finished_at)) for r in rows]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{open_jobs} of {len(ids)} jobs still open after {timeout}s")
            await asyncio.sleep(poll)
    finally:
        await engine.dispose()


def _epoch(dt: Any) -> float:
    from datetime import UTC

    return float(dt.replace(tzinfo=dt.tzinfo or UTC).timestamp())


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_pct(ms, 50), 2),
        "p95_ms": round(_pct(ms, 95), 2),
        "p99_ms": round(_pct(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


async def measure(stack: Stack, n_latency: int, n_roundtrip: int, n_throughput: int, clients: int) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {stack.key}"}
    body = {"kind": "noop", "input": {"note": "bench"}}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as c:
        warm = []
        for _ in range(20):  # warm up connections, caches and the workers; wait until they ran
            r = await c.post("/api/jobs", json=body)
            r.raise_for_status()
            warm.append(r.json()["id"])
        await _finished(stack, warm, timeout=120)
        # 1. enqueue latency, one at a time
        lat: list[float] = []
        ids: list[str] = []
        for _ in range(n_latency):
            t0 = time.perf_counter()
            r = await c.post("/api/jobs", json=body)
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        await _finished(stack, ids, timeout=300)
        # 2. round trip of one job on an idle system: submit, wait until it ended, repeat
        e2e: list[float] = []
        for _ in range(n_roundtrip):
            r = await c.post("/api/jobs", json=body)
            ((created, finished),) = await _finished(stack, [r.json()["id"]], timeout=60, poll=0.005)
            e2e.append((finished - created) * 1000)
        # 3. throughput: clients submitting concurrently
        queue = list(range(n_throughput))
        tp_ids: list[str] = []

        async def client() -> None:
            while queue:
                queue.pop()
                r = await c.post("/api/jobs", json=body)
                assert r.status_code == 202, r.text
                tp_ids.append(r.json()["id"])

        t0 = time.time()
        await asyncio.gather(*(client() for _ in range(clients)))
        submitted = time.time() - t0
        done = await _finished(stack, tp_ids, timeout=600)
        drained = max(f for _, f in done) - t0
    return {
        "backend": stack.backend,
        "enqueue_latency": _summary(lat),
        "round_trip_latency": _summary(e2e),
        "throughput": {
            "jobs": n_throughput,
            "clients": clients,
            "accepted_per_s": round(n_throughput / submitted, 1),
            "completed_per_s": round(n_throughput / drained, 1),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--backends", default="inprocess,celery-rabbitmq,celery-redis", help=f"any of {', '.join(BACKENDS)}"
    )
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument("--roundtrip-jobs", type=int, default=30, help="jobs run one at a time for end-to-end latency")
    ap.add_argument("--throughput-jobs", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=16, help="concurrent submitters in the throughput phase")
    ap.add_argument("--workers", type=int, default=8, help="jobs at once: in-process workers / Celery concurrency")
    ap.add_argument("--worker-procs", type=int, default=1, help="`aiport worker` processes for Celery backends")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = []
    for backend in args.backends.split(","):
        if backend not in BACKENDS:
            ap.error(f"unknown backend {backend!r}")
        tmp = Path(tempfile.mkdtemp(prefix=f"aiport-jobs-bench-{backend}-"))
        stack = start_stack(backend, tmp, args.workers, args.worker_procs)
        load_before = os.getloadavg()[0]
        try:
            result = asyncio.run(
                measure(stack, args.latency_jobs, args.roundtrip_jobs, args.throughput_jobs, args.clients)
            )
        finally:
            stack.close()
            shutil.rmtree(tmp, ignore_errors=True)
        result["load_avg_1m"] = {
            "before": round(load_before, 2),
            "after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    print(
        "\n| backend | enqueue p50 / p95 / p99 (ms) | round trip p50 / p95 (ms) | accepted jobs/s | completed jobs/s |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        q, e, t = r["enqueue_latency"], r["round_trip_latency"], r["throughput"]
        print(
            f"| {r['backend']} | {q['p50_ms']} / {q['p95_ms']} / {q['p99_ms']} | {e['p50_ms']} / {e['p95_ms']} "
            f"| {t['accepted_per_s']} | {t['completed_per_s']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
