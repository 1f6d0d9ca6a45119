"""The logs dashboard's queries on real SQLite and PostgreSQL: filters, full-text search,
keyset pages that never skip or repeat a row, sorting, CSV export and chart aggregates."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from aiport.domain.errors import InvalidRequest
from aiport.domain.ids import new_id
from aiport.observe.dashboard import LogQuery, Names, export_csv, fts5_query, log_page, pg_tsquery, usage_overview
from aiport.store.db import make_engine, make_sessionmaker
from aiport.store.migrate import upgrade
from aiport.store.models import AuditLog
from tests.support.postgres import create_database, drop_database

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _row(i: int, **over: Any) -> dict[str, Any]:
    words = ["apple banana", "서울 날씨", "quarterly report", "cherry pie"][i % 4]
    row = {
        "id": new_id("log_"),
        "request_id": f"req_{i}",
        "org_id": "org_a",
        "team_id": "team_x" if i % 2 else "team_y",
        "user_id": f"usr_{i % 3}",
        "app_id": "app_1" if i % 5 == 0 else None,
        "entry_point": "api",
        "model_used": "echo" if i % 2 else "strong",
        "stream": False,
        "input_messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"q{i} {words}"}],
        "output_text": f"answer {i}",
        "prompt_tokens": i,
        "completion_tokens": 2,
        "total_tokens": i + 2,
        "cost_usd": (i % 7) / 1000,
        "status": "error" if i % 10 == 9 else "ok",
        "http_status": 200,
        "cache_hit": i % 4 == 0,
        "client_ip": "=cmd|' /C calc'!A0" if i == 3 else "127.0.0.1",
        "created_at": T0 + timedelta(hours=i),
    }
    row.update(over)
    return row


ROWS = [_row(i) for i in range(60)]
ROWS[7]["output_text"] = "부산에서 만나요"
OTHER_ORG = [_row(i, org_id="org_b") for i in range(5)]


@pytest.fixture(params=["sqlite", "postgres"], scope="module")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('dash')) / 'a.db'}"
        return
    url, name = create_database()
    yield url
    drop_database(name)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await upgrade(eng)
    async with eng.begin() as conn:
        await conn.execute(insert(AuditLog), ROWS + OTHER_ORG)
    yield eng
    await eng.dispose()


async def _all_pages(engine: AsyncEngine, query: LogQuery, limit: int) -> list[AuditLog]:
    sessions = make_sessionmaker(engine)
    seen: list[AuditLog] = []
    cursor = None
    for _ in range(100):
        async with sessions() as s:
            page = await log_page(s, query, limit=limit, cursor=cursor)
        seen += page.rows
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


async def test_keyset_pages_cover_every_row_once_in_order(engine: AsyncEngine) -> None:
    rows = await _all_pages(engine, LogQuery(org_id="org_a"), limit=7)
    assert [r.request_id for r in rows] == [f"req_{i}" for i in reversed(range(60))]
    oldest_first = await _all_pages(engine, LogQuery(org_id="org_a", descending=False), limit=9)
    assert [r.request_id for r in oldest_first] == [f"req_{i}" for i in range(60)]


@pytest.mark.parametrize("sort", ["tokens", "cost"])
async def test_sorting_by_numbers_pages_without_gaps(engine: AsyncEngine, sort: str) -> None:
    rows = await _all_pages(engine, LogQuery(org_id="org_a", sort=sort), limit=8)  # type: ignore[arg-type]
    assert len({r.id for r in rows}) == 60
    values = [r.total_tokens if sort == "tokens" else r.cost_usd for r in rows]
    assert values == sorted(values, reverse=True)


async def test_filters_combine_and_stay_inside_the_org(engine: AsyncEngine) -> None:
    q = LogQuery(org_id="org_a", team_id="team_x", model="echo", status="error")
    rows = await _all_pages(engine, q, limit=5)
    assert {r.request_id for r in rows} == {f"req_{i}" for i in range(60) if i % 10 == 9}
    since, until = T0 + timedelta(hours=10), T0 + timedelta(hours=20)
    rows = await _all_pages(engine, LogQuery(org_id="org_a", since=since, until=until, user_id="usr_1"), limit=3)
    assert {r.request_id for r in rows} == {f"req_{i}" for i in range(10, 20) if i % 3 == 1}
    assert await _all_pages(engine, LogQuery(org_id="org_c"), limit=5) == []


async def test_full_text_search_finds_input_and_output_words(engine: AsyncEngine) -> None:
    found = await _all_pages(engine, LogQuery(org_id="org_a", q="quarterly"), limit=50)
    assert {r.request_id for r in found} == {f"req_{i}" for i in range(60) if i % 4 == 2}
    korean = await _all_pages(engine, LogQuery(org_id="org_a", q="서울"), limit=50)
    assert {r.request_id for r in korean} == {f"req_{i}" for i in range(60) if i % 4 == 1}
    particle = await _all_pages(engine, LogQuery(org_id="org_a", q="부산"), limit=50)
    assert {r.request_id for r in particle} == {"req_7"}  # "부산에서" matches "부산"
    output = await _all_pages(engine, LogQuery(org_id="org_a", q="answer 17"), limit=50)
    assert "req_17" in {r.request_id for r in output}
    injected = await _all_pages(engine, LogQuery(org_id="org_a", q='apple" OR "cherry'), limit=50)
    assert all("apple" in str(r.input_messages) for r in injected)


async def test_search_results_page_newest_first_without_gaps(engine: AsyncEngine) -> None:
    rows = await _all_pages(engine, LogQuery(org_id="org_a", q="apple", model="strong"), limit=4)
    assert [r.request_id for r in rows] == [f"req_{i}" for i in reversed(range(60)) if i % 4 == 0 and i % 2 == 0]
    oldest = await _all_pages(engine, LogQuery(org_id="org_a", q="apple", descending=False), limit=4)
    assert [r.request_id for r in oldest] == [f"req_{i}" for i in range(60) if i % 4 == 0]


def test_search_words_cannot_inject_query_syntax() -> None:
    assert fts5_query('a "b" c* OR(d)') == '"a"* "b"* "c"* "OR"* "d"*'
    assert fts5_query('"" *') == ""
    assert pg_tsquery("it's a:b & !c") == "'it':* & 's':* & 'a':* & 'b':* & 'c':*"


async def test_bad_cursor_is_a_clear_error(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as s:
        with pytest.raises(InvalidRequest) as err:
            await log_page(s, LogQuery(org_id="org_a"), cursor="not-a-cursor")
    assert err.value.param == "cursor"


async def test_csv_export_streams_the_filtered_set(engine: AsyncEngine) -> None:
    names = Names(users={"usr_1": "Mina"}, teams={"team_x": "Product"}, apps={"app_1": "notes"})
    chunks = [
        c
        async for c in export_csv(make_sessionmaker(engine), LogQuery(org_id="org_a", team_id="team_x"), names, batch=7)
    ]
    assert len(chunks) > 2  # streamed in pieces
    text = b"".join(chunks).decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 30
    assert {r["team"] for r in table} == {"Product"}
    by_request = {r["request_id"]: r for r in table}
    assert by_request["req_1"]["user"] == "Mina" and by_request["req_1"]["input"].startswith("q1 ")
    assert by_request["req_3"]["client_ip"].startswith("'=")  # no formula injection into spreadsheets


async def test_usage_overview_aggregates(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as s:
        data = await usage_overview(s, LogQuery(org_id="org_a"), bucket="day")
    totals = data["totals"]
    assert totals["calls"] == 60
    assert totals["tokens"] == sum(i + 2 for i in range(60))
    assert totals["errors"] == 6 and totals["error_rate"] == pytest.approx(0.1)
    assert totals["cache_hit_rate"] == pytest.approx(15 / 60)
    assert [p["key"] for p in data["series"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert sum(p["calls"] for p in data["series"]) == 60
    assert {p["key"] for p in data["by_team"]} == {"team_x", "team_y"}
    assert data["by_model"][0]["key"] in ("echo", "strong")
    assert sum(p["calls"] for p in data["by_user"]) == 60
