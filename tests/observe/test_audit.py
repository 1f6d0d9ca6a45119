"""The audit log: one record per call, none lost, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from aiport.config import Settings
from aiport.observe.audit import AuditWriter
from aiport.store.db import make_engine
from aiport.store.migrate import upgrade
from aiport.store.models import AuditLog
from aiport.web.app import create_app
from tests.conftest import Gateway, write_catalog
from tests.support.servers import ServerThread


async def _concurrent(url: str, key: str, n: int, tag: str) -> list[int]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {key}"}, limits=limits, timeout=60
    ) as c:

        async def one(i: int) -> int:
            stream = i % 4 == 0
            r = await c.post(
                "/v1/chat/completions",
                json={"model": "echo", "stream": stream, "messages": [{"role": "user", "content": f"{tag} {i}"}]},
            )
            if stream:
                assert r.text.endswith("data: [DONE]\n\n")
            return r.status_code

        return await asyncio.gather(*(one(i) for i in range(n)))


def test_no_record_lost_under_200_concurrent_requests(any_gateway: Gateway) -> None:
    tag = f"burst-{time.time_ns()}"
    statuses = asyncio.run(_concurrent(any_gateway.url, any_gateway.key, 200, tag))
    assert statuses == [200] * 200
    any_gateway.flush()

    async def count() -> int:
        async with any_gateway.runtime.sessions() as s:
            q = select(func.count()).select_from(AuditLog).where(AuditLog.output_text.like(f"echo: {tag} %"))
            return int((await s.execute(q)).scalar_one())

    assert any_gateway.server.run(count()) == 200


def test_record_has_every_field(any_gateway: Gateway) -> None:
    with any_gateway.client() as c:
        r = c.post(
            "/v1/chat/completions",
            headers={"user-agent": "audit-test/1.0", "x-request-id": "mine-1"},
            json={"model": "echo", "messages": [{"role": "user", "content": "fields please"}], "temperature": 0.5},
        )
    rid = r.headers["x-request-id"]
    summary = next(x for x in any_gateway.logs() if x["request_id"] == rid)
    full = any_gateway.log(summary["id"])
    expected = {
        "entry_point": "api",
        "client_ip": "127.0.0.1",
        "user_agent": "audit-test/1.0",
        "model_requested": "echo",
        "model_used": "echo",
        "provider": "fake",
        "status": "ok",
        "http_status": 200,
        "finish_reason": "stop",
        "cache_hit": False,
        "client_request_id": "mine-1",
        "route_reason": "requested",
        "app_id": None,
        "output_text": "echo: fields please",
        "stream": False,
    }
    assert {k: full[k] for k in expected} == expected
    assert full["user_id"].startswith("usr_") and full["team_id"].startswith("team_")
    assert full["api_key_id"].startswith("key_")
    assert full["total_tokens"] == full["prompt_tokens"] + full["completion_tokens"] > 0
    assert full["cost_usd"] > 0 and full["latency_ms"] > 0
    assert full["input_messages"] == [{"role": "user", "content": "fields please"}]
    assert full["request_params"] == {"temperature": 0.5}
    assert full["created_at"].endswith("Z")


async def _read_then_hang_up(url: str, key: str) -> str:
    """Open a slow stream, read two content events, then disconnect."""
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
        async with c.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "slowstream", "stream": True, "messages": [{"role": "user", "content": "go"}]},
        ) as r:
            seen = 0
            async for line in r.aiter_lines():
                if '"content":"w' in line or '"content":" w' in line:
                    seen += 1
                    if seen == 2:
                        return r.headers["x-request-id"]
    raise AssertionError("stream ended early")


def test_interrupted_stream_is_recorded_with_partial_output(any_gateway: Gateway, fake_upstream) -> None:
    before = fake_upstream.cancelled_streams
    rid = asyncio.run(_read_then_hang_up(any_gateway.url, any_gateway.key))
    deadline = time.monotonic() + 10
    record = None
    while time.monotonic() < deadline and record is None:
        record = next((x for x in any_gateway.logs(model="slowstream") if x["request_id"] == rid), None)
        time.sleep(0.1)
    assert record is not None, "the interrupted stream left no audit record"
    assert record["status"] == "client_closed" and record["http_status"] == 499
    assert record["output_preview"].startswith("w0 w1")
    assert len(record["output_preview"].split()) < 50  # partial, not the whole answer
    # the provider's usage never came: aiport bills what it sent, so hanging up never escapes a quota
    sent = len(record["output_preview"].split())
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] >= sent
    assert any_gateway.log(record["id"])["attempts"][-1]["usage"].startswith("estimated by aiport")
    deadline = time.monotonic() + 5
    while fake_upstream.cancelled_streams == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_upstream.cancelled_streams > before, "the upstream kept generating for a gone client"


def test_graceful_shutdown_flushes_pending_records(tmp_path: Path, fake_upstream) -> None:
    from aiport.accounts.demo import seed_demo

    settings = Settings(
        data_dir=tmp_path,
        AIPORT_CONFIG=write_catalog(tmp_path / "m.yaml", fake_upstream.url),
        audit_flush_interval=3600,
        audit_batch_size=10_000,
    )
    server = ServerThread(create_app(settings)).start()
    rt = server.config.app.state.runtime

    async def seed() -> str:
        async with rt.sessions() as s, s.begin():
            return (await seed_demo(s)).api_key  # type: ignore[return-value]

    key = server.run(seed())
    statuses = asyncio.run(_concurrent(server.url, key, 50, "shutdown"))
    assert statuses == [200] * 50
    assert rt.audit.pending == 50  # nothing written yet: the flush interval is an hour
    server.stop()

    async def count() -> int:
        engine = make_engine(settings.resolved_database_url)
        async with engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(AuditLog))).scalar_one()
        await engine.dispose()
        return int(n)

    assert asyncio.run(count()) == 50


def _row(i: int) -> dict:
    from datetime import UTC, datetime

    return {
        "id": f"log_spill_{i:04d}",
        "request_id": f"req_{i}",
        "entry_point": "api",
        "status": "ok",
        "http_status": 200,
        "stream": False,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "cost_usd": 0.0,
        "cache_hit": False,
        "created_at": datetime.now(UTC),
    }


def test_database_outage_spills_and_reingests(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    spill = tmp_path / "spill.jsonl"

    async def outage() -> None:
        dead = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{dead_port}/none")
        writer = AuditWriter(dead, max_buffer=5, flush_interval=0.01, spill_path=spill)
        await writer.start()
        for i in range(12):
            writer.submit(_row(i))
        await asyncio.sleep(0.2)
        await writer.close()  # cannot reach the database: everything must spill, nothing dropped
        await dead.dispose()

    asyncio.run(outage())
    assert len(spill.read_text().splitlines()) == 12

    async def recovery() -> int:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        await upgrade(engine)
        writer = AuditWriter(engine, spill_path=spill)
        await writer.start()
        await writer.close()
        async with engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(AuditLog))).scalar_one()
        await engine.dispose()
        return int(n)

    assert asyncio.run(recovery()) == 12
    assert not spill.exists()


@pytest.mark.parametrize("n", [3])
def test_flush_waits_for_inflight_batch(tmp_path: Path, n: int) -> None:
    async def run() -> int:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
        await upgrade(engine)
        writer = AuditWriter(engine, flush_interval=10)
        await writer.start()
        for i in range(n):
            writer.submit(_row(i))
        await writer.flush()
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(AuditLog))).scalar_one()
        await writer.close()
        await engine.dispose()
        return int(count)

    assert asyncio.run(run()) == n
