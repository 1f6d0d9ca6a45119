"""Logs dashboard at scale: seed N audit rows (default 1,000,000) into SQLite through the real
migrations (indexes + full-text triggers), then time the dashboard's own queries.

    .venv/bin/python bench/logs_pagination.py                 # 1M rows in a temp dir
    .venv/bin/python bench/logs_pagination.py --rows 200000 --db /tmp/logs.db --keep

Measured (median of --repeat runs, ms): first page, a deep page (keyset cursor at 90% of
the table), the same deep page with OFFSET for comparison, filtered and sorted pages,
full-text search (rare and common word), and a CSV export of a filtered set.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, text

from aiport.domain.ids import new_id
from aiport.observe.dashboard import LogQuery, Names, encode_cursor, export_csv, log_page
from aiport.store.db import make_engine, make_sessionmaker
from aiport.store.migrate import upgrade
from aiport.store.models import AuditLog

WORDS = "report summary meeting budget invoice email translate weather code review plan story".split()
MODELS = ["echo", "strong", "local-gemma", "gpt-4o-mini"]
STATUSES = ["ok"] * 18 + ["error", "client_closed"]


def seed(path: Path, rows: int, batch: int = 20_000) -> float:
    """Insert rows with sqlite3 executemany (the FTS trigger runs for each, as in production)."""
    rng = random.Random(7)
    users = [f"usr_{i:04d}" for i in range(500)]
    teams = [f"team_{i:02d}" for i in range(20)]
    apps = [f"app_{i:02d}" for i in range(30)] + [None] * 10
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = timedelta(days=300) / rows
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = (
        "INSERT INTO audit_logs (id, request_id, org_id, team_id, user_id, app_id, entry_point, client_ip, "
        "model_requested, model_used, provider, stream, input_messages, output_text, prompt_tokens, "
        "completion_tokens, total_tokens, cost_usd, latency_ms, status, http_status, cache_hit, saved_cost_usd, created_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    t0 = time.perf_counter()
    for offset in range(0, rows, batch):
        chunk = []
        for i in range(offset, min(offset + batch, rows)):
            words = " ".join(rng.choices(WORDS, k=6))
            if i == rows // 3:
                words += " zanzibar"  # one rare word for the search benchmark
            prompt, completion = rng.randint(5, 800), rng.randint(5, 800)
            model = rng.choice(MODELS)
            created = (start + step * i).replace(tzinfo=None).isoformat(sep=" ")
            chunk.append(
                (
                    new_id("log_"),
                    new_id("req_"),
                    "org_bench",
                    rng.choice(teams),
                    rng.choice(users),
                    rng.choice(apps),
                    "api",
                    "10.0.0.1",
                    model,
                    model,
                    "fake",
                    0,
                    orjson.dumps([{"role": "user", "content": words}]).decode(),
                    f"answer: {words}",
                    prompt,
                    completion,
                    prompt + completion,
                    (prompt + 2 * completion) / 1e6,
                    rng.uniform(50, 3000),
                    rng.choice(STATUSES),
                    200,
                    rng.random() < 0.1,
                    0.0,
                    created,
                )
            )
        conn.executemany(sql, chunk)
        conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return time.perf_counter() - t0


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


async def measure(url: str, rows: int, repeat: int) -> list[tuple[str, float, str]]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    base = LogQuery(org_id="org_bench")
    results: list[tuple[str, float, str]] = []
    async with sessions() as session:
        deep_row = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.org_id == "org_bench")
                .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
                .offset(int(rows * 0.9))
                .limit(1)
            )
        ).scalar_one()
        deep_cursor = encode_cursor(deep_row, "created")
        cost_row = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.org_id == "org_bench")
                .order_by(AuditLog.cost_usd.desc(), AuditLog.id.desc())
                .offset(int(rows * 0.5))
                .limit(1)
            )
        ).scalar_one()
        cost_cursor = encode_cursor(cost_row, "cost")

        async def page(query: LogQuery, cursor: str | None = None) -> int:
            return len((await log_page(session, query, limit=50, cursor=cursor)).rows)

        async def offset_page() -> None:
            stmt = (
                select(AuditLog)
                .where(AuditLog.org_id == "org_bench")
                .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
                .offset(int(rows * 0.9))
                .limit(50)
            )
            (await session.execute(stmt)).scalars().all()

        cases: list[tuple[str, Callable[[], Awaitable[Any]], str]] = [
            ("first page, newest first", lambda: page(base), "keyset"),
            ("deep page at 90% (keyset cursor)", lambda: page(base, deep_cursor), "keyset"),
            ("deep page at 90% (OFFSET, for comparison)", offset_page, "offset"),
            ("filter: user, first page", lambda: page(LogQuery(org_id="org_bench", user_id="usr_0042")), "index"),
            (
                "filter: model + status=error",
                lambda: page(LogQuery(org_id="org_bench", model="strong", status="error")),
                "index",
            ),
            (
                "filter: team + date range (one week)",
                lambda: page(
                    LogQuery(
                        org_id="org_bench",
                        team_id="team_03",
                        since=datetime(2026, 6, 1, tzinfo=UTC),
                        until=datetime(2026, 6, 8, tzinfo=UTC),
                    )
                ),
                "index",
            ),
            ("sort: highest cost, first page", lambda: page(LogQuery(org_id="org_bench", sort="cost")), "index"),
            (
                "sort: highest cost, page at 50%",
                lambda: page(LogQuery(org_id="org_bench", sort="cost"), cost_cursor),
                "keyset",
            ),
            ("search: rare word", lambda: page(LogQuery(org_id="org_bench", q="zanzibar")), "fts"),
            ("search: common word", lambda: page(LogQuery(org_id="org_bench", q="budget")), "fts"),
            (
                "search: two words + model filter",
                lambda: page(LogQuery(org_id="org_bench", q="budget invoice", model="echo")),
                "fts",
            ),
        ]
        for name, fn, kind in cases:
            results.append((name, await timed(fn, repeat), kind))
        count = (await session.execute(text("SELECT count(*) FROM audit_logs"))).scalar_one()
    names = Names(users={}, teams={}, apps={})
    export_query = LogQuery(org_id="org_bench", user_id="usr_0042")

    async def export() -> None:
        async for _ in export_csv(sessions, export_query, names):
            pass

    results.append((f"CSV export of one user's rows (~{rows // 500})", await timed(export, 1), "stream"))
    await engine.dispose()
    assert count == rows, count
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="reuse --db if it already has the rows")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "logs.db"
    url = f"sqlite+aiosqlite:///{path}"
    existing = 0
    if args.keep and path.exists():
        existing = sqlite3.connect(path).execute("SELECT count(*) FROM audit_logs").fetchone()[0]
    if existing != args.rows:
        path.unlink(missing_ok=True)

        async def migrate() -> None:
            engine = make_engine(url)
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        seconds = seed(path, args.rows)
        print(f"seeded {args.rows:,} rows in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s, FTS trigger included)")
    print(f"database: {path} ({path.stat().st_size / 1e6:,.0f} MB)")
    print(f"{'query':<48} {'median ms':>10}")
    for name, ms, _ in asyncio.run(measure(url, args.rows, args.repeat)):
        print(f"{name:<48} {ms:>10.1f}")


if __name__ == "__main__":
    main()
