"""The embedded backend survives restarts: a real `aiport serve` subprocess (SQLite, in-process
workers) is stopped mid-job — killed with SIGKILL, or stopped gracefully with SIGTERM — and
started again; the job resumes from its checkpoint and finishes once."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs.conftest import JOB_SETTINGS, wait_for, wait_job, write_jobs_catalog
from tests.jobs.fakes import JobsUpstream
from tests.support.servers import free_port


class Serve:
    """`aiport serve` in its own process group, output collected for failure messages."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.output: list[str] = []
        exe = Path(sys.executable).parent / "aiport"
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--no-demo", "--no-warm", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                pytest.fail("aiport serve did not start:\n" + "".join(self.output[-60:]))
            time.sleep(0.1)

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "graceful"])
def test_restarted_server_resumes_the_job(tmp_path: Path, jobs_upstream: JobsUpstream, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPORT_")}
    env.update(
        {
            "AIPORT_DATA_DIR": str(tmp_path),
            "AIPORT_CONFIG": str(write_jobs_catalog(tmp_path / "models.yaml", jobs_upstream.url)),  # type: ignore[attr-defined]
            "AIPORT_LOG_LEVEL": "warning",
            **{
                f"AIPORT_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in JOB_SETTINGS.items()
            },
        }
    )
    exe = Path(sys.executable).parent / "aiport"
    key_file = tmp_path / "admin.key"
    subprocess.run([str(exe), "seed-demo", "--key-file", str(key_file)], env=env, check=True, capture_output=True)
    headers = {"authorization": f"Bearer {key_file.read_text().strip()}"}
    port = free_port()
    tag = f"resume-{sig.name}-{secrets.token_hex(3)}"
    n = 8
    server = Serve(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as c:
            body = {
                "requests": [
                    {"model": "sleepy", "messages": [{"role": "user", "content": f"{tag} {i}"}]} for i in range(n)
                ]
            }
            r = c.post("/api/jobs", json={"kind": "chat_batch", "input": {**body, "concurrency": 1}})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            wait_for(lambda: c.get(f"/api/jobs/{job_id}").json()["progress"]["done"] >= 2, what="two answers")
            server.stop(sig)
            asked_before = sum(jobs_upstream.calls[f"{tag} {i}"] for i in range(n))
            assert asked_before < n  # stopped mid-job
            server = Serve(env, port)
            job = wait_job(c, job_id, timeout=40)
            assert job["status"] == "succeeded", (job, "".join(server.output[-40:]))
            assert job["attempt"] == 2
            texts: list[Any] = [x["response"]["choices"][0]["message"]["content"] for x in job["result"]["responses"]]
            assert texts == [f"echo: {tag} {i}" for i in range(n)]
            asked = [jobs_upstream.calls[f"{tag} {i}"] for i in range(n)]
            assert all(k >= 1 for k in asked) and sum(asked) <= n + 1, asked  # resumed, not restarted
            notes = [x for x in c.get("/api/notifications").json()["data"] if x["data"]["job_id"] == job_id]
            assert [x["type"] for x in notes] == ["job.succeeded"]
            if sig == signal.SIGTERM:  # a graceful stop hands the job back at once, with a reason
                with c.stream("GET", f"/api/jobs/{job_id}/events") as events:
                    text = "".join(events.iter_text())
                assert "the server stopped; resuming" in text
    finally:
        server.stop(signal.SIGTERM)
