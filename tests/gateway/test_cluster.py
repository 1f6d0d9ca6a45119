"""Two real `aiport serve` processes sharing one PostgreSQL database and one Redis: quotas,
rate limits, idempotency and the cache hold across processes, not per process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apps.harness import simple_app
from tests.conftest import write_catalog
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import create_database, drop_database
from tests.support.redis import redis_url
from tests.support.servers import free_port

AIPORT = str(Path(sys.executable).parent / "aiport")

pytestmark = pytest.mark.postgres


@dataclass
class Cluster:
    urls: list[str]
    env: dict[str, str]
    admin_key: str

    def cli(self, *args: str) -> str:
        out = subprocess.run([AIPORT, *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip()

    def key_for(self, email: str) -> str:
        return self.cli("keys", "create", "--email", email, "--name", "cluster test")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("gateway did not start:\n" + log.read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    database_url, db_name = create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPORT_")}
    env.update(
        AIPORT_DATA_DIR=str(tmp),
        AIPORT_DATABASE_URL=database_url,
        AIPORT_REDIS_URL=redis_url("cluster"),
        AIPORT_CONFIG=str(write_catalog(tmp / "models.yaml", fake_upstream.url)),  # type: ignore[attr-defined]
        AIPORT_RULES_REFRESH_SECONDS="0.2",
        AIPORT_AUDIT_FLUSH_INTERVAL="0.05",
        AIPORT_LOG_LEVEL="warning",
    )
    seeded = subprocess.run(
        [AIPORT, "seed-demo", "--key-file", str(tmp / "admin.key")], env=env, capture_output=True, text=True
    )
    assert seeded.returncode == 0, seeded.stderr
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(2):
            port = free_port()
            log = tmp / f"serve-{i}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [AIPORT, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-demo", "--no-warm"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            _wait_ready(urls[-1], proc, log)
        yield Cluster(urls=urls, env=env, admin_key=(tmp / "admin.key").read_text().strip())
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        drop_database(db_name)


def _burst(
    cluster: Cluster, key: str, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    """Send every body at once, alternating between the two processes."""

    async def run() -> list[httpx.Response]:
        auth = {"authorization": f"Bearer {key}", **(headers or {})}
        async with httpx.AsyncClient(headers=auth, timeout=60) as client:
            return await asyncio.gather(
                *(client.post(cluster.urls[i % 2] + "/v1/chat/completions", json=body) for i, body in enumerate(bodies))
            )

    return asyncio.run(run())


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], **extra}


def test_a_quota_holds_across_processes_to_within_one_reservation(cluster: Cluster) -> None:
    key = cluster.key_for("mina@demo.aiport.local")
    limit, max_tokens = 400, 20
    cluster.cli("quotas", "set", "user", "mina@demo.aiport.local", "--limit", str(limit))
    time.sleep(0.5)  # both processes pick up the new rule
    responses = _burst(cluster, key, [_chat(f"cluster quota request {i}", max_tokens=max_tokens) for i in range(80)])
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    # both processes refused: the counter is shared, not per process
    refused_by = {str(r.url).split("/v1")[0] for r in responses if r.status_code == 429}
    assert refused_by == set(cluster.urls)
    used = sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == 200)
    one_reservation = max(
        int(r.headers.get("x-ratelimit-limit-quota-tokens", limit)) for r in responses
    )  # the header exists on every response
    assert one_reservation == limit
    reservation = 16 + max_tokens  # prompt estimate (message + framing) + max_tokens
    assert used <= limit + reservation, used
    # settlement gives back what in-flight reservations held but did not use: sequential calls
    # are admitted again until the quota is really spent
    for i in range(limit):
        (r,) = _burst(cluster, key, [_chat(f"cluster quota tail {i}", max_tokens=max_tokens)])
        if r.status_code == 429:
            break
        assert r.status_code == 200, r.text
        used += r.json()["usage"]["total_tokens"]
    assert limit - reservation <= used <= limit + reservation, used
    # one process alone would have admitted ~limit/per-request tokens on each side: twice the quota
    refusal = next(r for r in responses if r.status_code == 429).json()["error"]["message"]
    assert "quota" in refusal and "reset" in refusal


def test_a_rate_limit_is_global_across_processes(cluster: Cluster) -> None:
    key = cluster.key_for("joon@demo.aiport.local")
    cluster.cli("limits", "set", "user", "joon@demo.aiport.local", "--rpm", "10")
    time.sleep(0.5)
    statuses = [r.status_code for r in _burst(cluster, key, [_chat(f"rpm {i}", max_tokens=5) for i in range(30)])]
    assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses


def test_idempotency_key_is_shared_across_processes(cluster: Cluster, fake_upstream: FakeOpenAI) -> None:
    key = cluster.key_for("sara@demo.aiport.local")
    body = _chat("cluster idempotent payment please", max_tokens=8)
    responses = _burst(cluster, key, [body] * 20, headers={"idempotency-key": "cluster-idem-1"})
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.json()["choices"][0]["message"]["content"] for r in responses}) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert fake_upstream.calls_with("cluster idempotent payment please") == 1


def test_a_cached_answer_from_one_process_is_a_hit_on_the_other(cluster: Cluster, fake_upstream: FakeOpenAI) -> None:
    key = cluster.key_for("alex@demo.aiport.local")
    body = _chat("cluster cache question", cache_ttl=60)
    headers = {"authorization": f"Bearer {key}", "cache-control": "max-age=60"}
    first = httpx.post(cluster.urls[0] + "/v1/chat/completions", json=_chat("cluster cache question"), headers=headers)
    second = httpx.post(cluster.urls[1] + "/v1/chat/completions", json=_chat("cluster cache question"), headers=headers)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.headers["x-aiport-cache"] == "miss" and second.headers["x-aiport-cache"] == "hit"
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    assert fake_upstream.calls_with("cluster cache question") == 1
    del body


def test_a_stop_sent_to_one_process_ends_a_run_streamed_by_the_other(cluster: Cluster) -> None:
    """The chat UI's Stop lands on whichever process the load balancer picks."""
    auth = {"authorization": f"Bearer {cluster.admin_key}"}
    definition = simple_app("cluster-slow", model="slowstream")
    created = httpx.post(cluster.urls[0] + "/api/apps", json={"definition": definition, "publish": True}, headers=auth)
    assert created.status_code == 201, created.text
    events: list[dict[str, Any] | str] = []
    with httpx.Client(headers=auth, timeout=30) as client:
        run = {"inputs": {"topic": "x"}, "stream": True}
        with client.stream("POST", cluster.urls[0] + "/api/apps/cluster-slow/runs", json=run) as response:
            lines = (line[6:] for line in response.iter_lines() if line.startswith("data: "))
            header = json.loads(next(lines))
            conversation = header["conversation_id"]
            events.append(json.loads(next(lines)))  # the first words arrived
            stopped = client.post(f"{cluster.urls[1]}/api/conversations/{conversation}/stop")
            assert stopped.status_code == 200 and stopped.json()["stopped"] is True, stopped.text
            events.extend(data if data == "[DONE]" else json.loads(data) for data in lines)
        end = next(e for e in events if isinstance(e, dict) and e.get("object") == "app.run.end")
        assert end["status"] == "stopped" and events[-1] == "[DONE]"
        words = [e for e in events if isinstance(e, dict) and e.get("object") == "chat.completion.chunk"]
        assert len(words) < 45  # 50 words 100 ms apart: stopped well before the end
        # the run is over everywhere: a second stop, on either process, finds nothing
        deadline = time.monotonic() + 3
        while client.post(f"{cluster.urls[1]}/api/conversations/{conversation}/stop").json()["stopped"]:
            assert time.monotonic() < deadline, "the finished run stayed registered"
            time.sleep(0.05)
        assert client.post(f"{cluster.urls[0]}/api/conversations/{conversation}/stop").json()["stopped"] is False
        answer = client.get(f"{cluster.urls[1]}/api/conversations/{conversation}").json()["messages"][-1]
        assert answer["status"] == "stopped" and answer["content"].startswith("w0")
