"""The admin logs dashboard's reads: filtered, sorted, keyset-paginated audit pages, full-text
search, a streamed CSV export of the filtered set, and the aggregates behind the charts.

Keyset, not OFFSET: a page is "the next `limit` rows after (sort value, id) of the last row
seen", which is one index range scan (migration 0005) however deep the page is.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Select, String, case, func, select, text, tuple_
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from aiport.domain.errors import InvalidRequest
from aiport.store.models import AuditLog, iso_utc

Sort = Literal["created", "tokens", "cost"]
SORT_COLUMNS: dict[str, Any] = {
    "created": AuditLog.created_at,
    "tokens": AuditLog.total_tokens,
    "cost": AuditLog.cost_usd,
}
STATUSES = ("ok", "error", "client_closed")
PG_TSVECTOR = "to_tsvector('simple', coalesce(output_text, '') || ' ' || coalesce(input_messages::jsonb::text, ''))"


@dataclass(slots=True)
class LogQuery:
    """What the dashboard's filter bar asks for; every field but org_id is optional."""

    org_id: str
    since: datetime | None = None
    until: datetime | None = None
    user_id: str | None = None
    team_id: str | None = None
    app_id: str | None = None
    model: str | None = None
    status: str | None = None
    q: str | None = None
    sort: Sort = "created"
    descending: bool = True


@dataclass(slots=True)
class Page:
    rows: list[AuditLog]
    next_cursor: str | None


def search_words(q: str) -> list[str]:
    """The words of a search box, without any character a query syntax could interpret."""
    cleaned = "".join(c if c.isalnum() or c in "_-." else " " for c in q)
    return [w.strip("-.") for w in cleaned.split() if w.strip("-.")][:12]


def fts5_query(q: str) -> str:
    """Search words -> an FTS5 query: each word quoted (no operators can be injected), all
    required, each as a prefix so Korean words match with their particles ("서울" finds
    "서울에서") and results appear while a word is still being typed."""
    return " ".join(f'"{w}"*' for w in search_words(q))


def pg_tsquery(q: str) -> str:
    """The same for PostgreSQL's to_tsquery: 'word':* joined with &."""
    return " & ".join(f"'{w}':*" for w in search_words(q))


def _search_clause(q: str, dialect: str) -> ColumnElement[bool]:
    if dialect == "sqlite":
        match = fts5_query(q)
        if not match:
            raise InvalidRequest("The search needs at least one word.", param="q")
        ids = text("SELECT log_id FROM audit_fts WHERE audit_fts MATCH :fts_q").bindparams(fts_q=match)
        return AuditLog.id.in_(ids.columns(log_id=String()))
    tsquery = pg_tsquery(q)
    if not tsquery:
        raise InvalidRequest("The search needs at least one word.", param="q")
    return text(f"{PG_TSVECTOR} @@ to_tsquery('simple', :fts_q)").bindparams(fts_q=tsquery)  # type: ignore[return-value]


def where_clauses(query: LogQuery, dialect: str) -> list[ColumnElement[bool]]:
    """The filter bar as SQL conditions (shared by pages, export and charts)."""
    clauses: list[ColumnElement[bool]] = [AuditLog.org_id == query.org_id]
    for column, value in (
        (AuditLog.user_id, query.user_id),
        (AuditLog.team_id, query.team_id),
        (AuditLog.app_id, query.app_id),
        (AuditLog.model_used, query.model),
        (AuditLog.status, query.status),
    ):
        if value:
            clauses.append(column == value)
    if query.since is not None:
        clauses.append(AuditLog.created_at >= query.since)
    if query.until is not None:
        clauses.append(AuditLog.created_at < query.until)
    if query.q and query.q.strip():
        clauses.append(_search_clause(query.q.strip(), dialect))
    return clauses


def encode_cursor(row: AuditLog, sort: Sort) -> str:
    value: Any = getattr(row, SORT_COLUMNS[sort].key)
    if isinstance(value, datetime):
        value = iso_utc(value)
    return base64.urlsafe_b64encode(orjson.dumps([value, row.id])).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, str]:
    try:
        value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort == "created":
            value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        elif not isinstance(value, int | float):
            raise ValueError("not a number")
        if not isinstance(row_id, str):
            raise ValueError("bad id")
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidRequest("The page cursor is not valid; start again from the first page.", param="cursor") from exc
    return value, row_id


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _ordered(query: LogQuery, dialect: str, cursor: str | None) -> Select[AuditLog]:
    column = SORT_COLUMNS[query.sort]
    stmt = select(AuditLog).where(*where_clauses(query, dialect))
    if cursor:
        value, row_id = decode_cursor(cursor, query.sort)
        if dialect == "sqlite" and isinstance(value, datetime):
            value = value.astimezone(UTC).replace(tzinfo=None)  # stored naive UTC
        key = tuple_(column, AuditLog.id)
        stmt = stmt.where(key < tuple_(value, row_id) if query.descending else key > tuple_(value, row_id))
    if query.descending:
        return stmt.order_by(column.desc(), AuditLog.id.desc())
    return stmt.order_by(column.asc(), AuditLog.id.asc())


_FTS = sql_table("audit_fts", sql_column("rowid"), sql_column("log_id"), sql_column("audit_fts"))


async def _search_page_sqlite(session: AsyncSession, query: LogQuery, limit: int, cursor: str | None) -> Page:
    """Newest-first search on SQLite walks the FTS index in rowid (= recording) order and
    joins each hit to its row, stopping after one page: a common word costs the same as a
    rare one. Results are in the order calls were recorded, which is creation order up to
    the audit writer's batching (a fraction of a second)."""
    match = fts5_query(query.q or "")
    if not match:
        raise InvalidRequest("The search needs at least one word.", param="q")
    others = where_clauses(dataclasses.replace(query, q=None), "sqlite")
    stmt = (
        select(AuditLog, _FTS.c.rowid)
        .join_from(_FTS, AuditLog, AuditLog.id == _FTS.c.log_id)
        .where(_FTS.c.audit_fts.op("MATCH")(match), *others)
    )
    if cursor:
        position = _fts_position(cursor)
        stmt = stmt.where(_FTS.c.rowid < position if query.descending else _FTS.c.rowid > position)
    order = _FTS.c.rowid.desc() if query.descending else _FTS.c.rowid.asc()
    found = (await session.execute(stmt.order_by(order).limit(limit + 1))).all()
    rows = [row for row, _ in found[:limit]]
    more = len(found) > limit
    next_cursor = "fts." + str(found[limit - 1][1]) if more else None
    return Page(rows, next_cursor)


def _fts_position(cursor: str) -> int:
    if not cursor.startswith("fts.") or not cursor[4:].isdigit():
        raise InvalidRequest("The page cursor is not valid; start again from the first page.", param="cursor")
    return int(cursor[4:])


async def log_page(session: AsyncSession, query: LogQuery, *, limit: int = 50, cursor: str | None = None) -> Page:
    """One page of the table, and the cursor of the next page (None on the last one)."""
    dialect = _dialect(session)
    if dialect == "sqlite" and query.q and query.q.strip() and query.sort == "created":
        return await _search_page_sqlite(session, query, limit, cursor)
    rows = list((await session.execute(_ordered(query, dialect, cursor).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1], query.sort) if more and rows else None)


def message_text(content: Any) -> str:
    """A message's content as plain text (strings, or the text parts of a multimodal list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def input_preview(messages: list[Any] | None) -> str:
    """The last user turn: what the person asked, for the table's Input column."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


CSV_COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "user",
    "team",
    "app",
    "model",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "client_ip",
    "entry_point",
    "input",
    "output",
)


@dataclass(slots=True)
class Names:
    """id -> display name for users, teams and apps (small tables, read once per page)."""

    users: dict[str, str]
    teams: dict[str, str]
    apps: dict[str, str]


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ is read as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_row(row: AuditLog, names: Names) -> list[Any]:
    return [
        _csv_safe(v)
        for v in (
            row.id,
            iso_utc(row.created_at),
            row.request_id,
            names.users.get(row.user_id or "", row.user_id or ""),
            names.teams.get(row.team_id or "", row.team_id or ""),
            names.apps.get(row.app_id or "", row.app_id or ""),
            row.model_used or row.model_requested or "",
            row.status,
            row.prompt_tokens,
            row.completion_tokens,
            row.total_tokens,
            f"{row.cost_usd:.6f}",
            "" if row.latency_ms is None else f"{row.latency_ms:.1f}",
            row.client_ip or "",
            row.entry_point,
            input_preview(row.input_messages),
            row.output_text or "",
        )
    ]


async def export_csv(
    sessions: async_sessionmaker[AsyncSession], query: LogQuery, names: Names, *, batch: int = 1000
) -> AsyncIterator[bytes]:
    """The whole filtered set as CSV, page by page (keyset), so memory stays flat and each
    database read is short, even for a million rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode()  # BOM: spreadsheets then read UTF-8 (Korean) correctly
    cursor: str | None = None
    while True:
        async with sessions() as session:
            page = await log_page(session, query, limit=batch, cursor=cursor)
        buffer.seek(0)
        buffer.truncate()
        for row in page.rows:
            writer.writerow(csv_row(row, names))
        if page.rows:
            yield buffer.getvalue().encode()
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# ---- aggregates for the charts ----------------------------------------------------------

Bucket = Literal["hour", "day"]


def _bucket_expr(dialect: str, bucket: Bucket) -> Any:
    if dialect == "sqlite":
        fmt = "%Y-%m-%dT%H:00" if bucket == "hour" else "%Y-%m-%d"
        return func.strftime(fmt, AuditLog.created_at)
    fmt = 'YYYY-MM-DD"T"HH24:00' if bucket == "hour" else "YYYY-MM-DD"
    return func.to_char(func.date_trunc(bucket, func.timezone("UTC", AuditLog.created_at)), fmt)


def _measures() -> list[Any]:
    return [
        func.count().label("calls"),
        func.coalesce(func.sum(AuditLog.total_tokens), 0).label("tokens"),
        func.coalesce(func.sum(AuditLog.cost_usd), 0.0).label("cost"),
        func.coalesce(func.sum(case((AuditLog.cache_hit.is_(True), 1), else_=0)), 0).label("cache_hits"),
        func.coalesce(func.sum(case((AuditLog.status == "error", 1), else_=0)), 0).label("errors"),
    ]


def _point(key: Any, calls: Any, tokens: Any, cost: Any, hits: Any, errors: Any) -> dict[str, Any]:
    calls = int(calls)
    return {
        "key": key,
        "calls": calls,
        "tokens": int(tokens),
        "cost_usd": float(cost),
        "cache_hits": int(hits),
        "errors": int(errors),
        "cache_hit_rate": int(hits) / calls if calls else 0.0,
        "error_rate": int(errors) / calls if calls else 0.0,
    }


async def usage_overview(
    session: AsyncSession, query: LogQuery, *, bucket: Bucket = "day", top: int = 8
) -> dict[str, Any]:
    """Totals, a time series and breakdowns (team, app, user, model) of the filtered calls."""
    dialect = _dialect(session)
    where = where_clauses(query, dialect)
    measures = _measures()
    total_row = (await session.execute(select(*measures).where(*where))).one()
    totals = _point("total", *total_row)
    key = _bucket_expr(dialect, bucket).label("bucket")
    series_rows = await session.execute(select(key, *measures).where(*where).group_by(key).order_by(key))
    out: dict[str, Any] = {"totals": totals, "bucket": bucket, "series": [_point(*r) for r in series_rows.all()]}
    for name, column in (
        ("by_team", AuditLog.team_id),
        ("by_app", AuditLog.app_id),
        ("by_user", AuditLog.user_id),
        ("by_model", AuditLog.model_used),
    ):
        stmt = select(column, *measures).where(*where).group_by(column)
        stmt = stmt.order_by(func.sum(AuditLog.total_tokens).desc()).limit(top)
        out[name] = [_point(*r) for r in (await session.execute(stmt)).all()]
    return out
