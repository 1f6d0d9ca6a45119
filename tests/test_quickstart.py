"""The README's first command, as a newcomer runs it: `scripts/start.sh` installs, migrates, seeds
the demo organization, prints a key once, and serves the embedded model to the official client."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^\s+(aip_[A-Za-z0-9_\-]+)\s*$")

pytestmark = pytest.mark.model


class Quickstart:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIPORT_")}
        env.update(AIPORT_DATA_DIR=str(data_dir), AIPORT_HOST="127.0.0.1", AIPORT_PORT=str(self.port))
        env["PYTHON"] = sys.executable
        self.data_dir = data_dir
        self.env = env
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "start.sh")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def key(self) -> str:
        keys = [m.group(1) for line in self.lines if (m := KEY.match(line))]
        assert len(keys) == 1, "".join(self.lines)
        return keys[0]

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "start.sh exited:\n" + "".join(self.lines)
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("aiport did not become ready:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quickstart]:
    started = Quickstart(tmp_path_factory.mktemp("quickstart"))
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def test_start_prints_one_key_and_the_client_gets_real_text(quickstart: Quickstart) -> None:
    client = openai.OpenAI(base_url=quickstart.base + "/v1", api_key=quickstart.key(), max_retries=0, timeout=120)
    assert "gemma-3-270m" in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(
        model="gemma-3-270m", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=24
    )
    assert answer.choices[0].message.content and answer.choices[0].message.content.strip()
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Name a color."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_calls_are_in_the_audit_log(quickstart: Quickstart) -> None:
    client = openai.OpenAI(base_url=quickstart.base + "/v1", api_key=quickstart.key(), max_retries=0, timeout=120)
    client.chat.completions.create(model="gemma-3-270m", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    deadline = time.monotonic() + 20
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        out = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "aiport"), "logs", "--json"],
            env=quickstart.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if len(records) >= 1 and any(r["model_used"] == "gemma-3-270m" for r in records):
            break
        time.sleep(0.5)
    assert any(r["model_used"] == "gemma-3-270m" and r["status"] == "ok" for r in records), records
    assert all(r["prompt_tokens"] for r in records if r["status"] == "ok")
