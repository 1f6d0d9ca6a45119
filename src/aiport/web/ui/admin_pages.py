"""Admin pages: the logs dashboard (filters, search, sort, keyset pages, CSV), a record's
detail (conversation, timeline, raw JSON), usage charts, and the members, keys, models and
quotas screens. Reads go through observe.dashboard and the admin API's own functions;
changes are made by the page scripts through the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response, StreamingResponse

from aiport.accounts.keys import list_keys
from aiport.accounts.people import team_view, user_view
from aiport.domain.errors import InvalidRequest, NotFound
from aiport.observe.dashboard import STATUSES, LogQuery, Names, export_csv, input_preview, log_page, message_text
from aiport.observe.dashboard import usage_overview as overview
from aiport.observe.traces import load_tree
from aiport.store.apps import App
from aiport.store.models import AuditLog, Team, TeamMember, User, iso_utc
from aiport.web import admin_limits
from aiport.web.ui import charts
from aiport.web.ui.context import AdminOnly, PageRoute, Viewer, render, runtime_of, viewer
from aiport.web.ui.pages import flatten

router = APIRouter(prefix="/ui/admin", include_in_schema=False, route_class=PageRoute)

SORTS = {"created": ("created", True), "oldest": ("created", False), "tokens": ("tokens", True), "cost": ("cost", True)}
FILTER_KEYS = ("since", "until", "user", "team", "app", "model", "status", "q", "sort")


async def _names(session: Any, org_id: str) -> tuple[Names, dict[str, list[tuple[str, str]]]]:
    users = (await session.execute(select(User.id, User.name).where(User.org_id == org_id).order_by(User.name))).all()
    teams = (await session.execute(select(Team.id, Team.name).where(Team.org_id == org_id).order_by(Team.name))).all()
    apps = (await session.execute(select(App.id, App.slug).where(App.org_id == org_id).order_by(App.slug))).all()
    names = Names(users=dict(users), teams=dict(teams), apps=dict(apps))
    options = {"users": [tuple(r) for r in users], "teams": [tuple(r) for r in teams], "apps": [tuple(r) for r in apps]}
    return names, options


def _day(value: str, param: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{value}' is not a date (YYYY-MM-DD).", param=param) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _query(request: Request, org_id: str) -> tuple[LogQuery, dict[str, str]]:
    """The filter bar from the URL (so a filtered view is a link one can share)."""
    args = {k: request.query_params.get(k, "").strip() for k in FILTER_KEYS}
    until = _day(args["until"], "until")
    if until is not None and len(args["until"]) == 10:
        until += timedelta(days=1)  # a date means "to the end of that day"
    sort, descending = SORTS.get(args["sort"], SORTS["created"])
    query = LogQuery(
        org_id=org_id,
        since=_day(args["since"], "since"),
        until=until,
        user_id=args["user"] or None,
        team_id=args["team"] or None,
        app_id=args["app"] or None,
        model=args["model"] or None,
        status=args["status"] if args["status"] in STATUSES else None,
        q=args["q"][:200] or None,
        sort=sort,  # type: ignore[arg-type]
        descending=descending,
    )
    return query, args


def _row_view(row: AuditLog, names: Names) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": iso_utc(row.created_at),
        "user": names.users.get(row.user_id or "", row.user_id or "—"),
        "team": names.teams.get(row.team_id or "", row.team_id or "—"),
        "app": names.apps.get(row.app_id or "", "—" if not row.app_id else row.app_id),
        "input": input_preview(row.input_messages)[:160],
        "output": (row.output_text or row.error or "")[:160],
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "cost_usd": row.cost_usd,
        "client_ip": row.client_ip or "",
        "model": row.model_used or row.model_requested or "—",
        "status": row.status,
    }


@router.get("/logs")
async def logs(request: Request, cursor: str | None = None, per: int = 50) -> Response:
    me = await viewer(request, admin=True)
    query, args = _query(request, me.actor.org_id)
    per = max(1, min(per, 200))
    async with runtime_of(request).sessions() as session:
        names, options = await _names(session, me.actor.org_id)
        page = await log_page(session, query, limit=per, cursor=cursor)
    kept: dict[str, Any] = {k: v for k, v in args.items() if v}
    if per != 50:
        kept["per"] = per
    models = sorted({m.name for m in runtime_of(request).settings.catalog.models})
    return render(
        request,
        "admin_logs.html",
        me,
        active="logs",
        rows=[_row_view(r, names) for r in page.rows],
        args=args,
        options=options,
        models=models,
        statuses=STATUSES,
        first_url="/ui/admin/logs?" + urlencode(kept),
        next_url=("/ui/admin/logs?" + urlencode({**kept, "cursor": page.next_cursor})) if page.next_cursor else None,
        csv_url="/ui/admin/logs.csv?" + urlencode(kept),
        deep=cursor is not None,
    )


@router.get("/logs.csv")
async def logs_csv(request: Request) -> Response:
    me = await viewer(request, admin=True)
    query, _ = _query(request, me.actor.org_id)
    async with runtime_of(request).sessions() as session:
        names, _ = await _names(session, me.actor.org_id)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export_csv(runtime_of(request).sessions, query, names),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="aiport-logs-{stamp}.csv"', "cache-control": "no-store"},
    )


def _timeline(row: AuditLog) -> list[dict[str, Any]]:
    """received -> attempts -> routed -> first token -> finished, in ms from the start."""
    steps: list[dict[str, Any]] = [{"at": 0.0, "what": "received", "detail": row.entry_point, "fail": False}]
    for i, attempt in enumerate(row.attempts or []):
        if isinstance(attempt, dict):
            detail = ", ".join(f"{k}={v}" for k, v in attempt.items() if v is not None)
            steps.append({"at": None, "what": f"attempt {i + 1}", "detail": detail, "fail": bool(attempt.get("error"))})
    route = row.model_used or row.model_requested or "—"
    steps.append({"at": None, "what": "routed", "detail": f"{route} · {row.route_reason or ''}", "fail": False})
    if row.ttft_ms is not None:
        steps.append({"at": row.ttft_ms, "what": "first token", "detail": "", "fail": False})
    finished = f"{row.status} · HTTP {row.http_status}" + (f" · {row.error}" if row.error else "")
    steps.append({"at": row.latency_ms, "what": "finished", "detail": finished, "fail": row.status != "ok"})
    return steps


@router.get("/logs/{log_id}")
async def log_detail(request: Request, log_id: str) -> Response:
    me = await viewer(request, admin=True)
    async with runtime_of(request).sessions() as session:
        row = await session.get(AuditLog, log_id[:40])
        if row is None or row.org_id != me.actor.org_id:
            raise NotFound(f"No audit record {log_id}.", code="log_not_found")
        names, _ = await _names(session, me.actor.org_id)
        spans = flatten(await load_tree(session, row.request_id, me.actor.org_id))
    messages = [
        {"role": str(m.get("role", "?")), "content": message_text(m.get("content"))}
        for m in (row.input_messages or [])
        if isinstance(m, dict)
    ]
    request_json = {"model": row.model_requested, "messages": row.input_messages, **(row.request_params or {})}
    response_json = {
        "model": row.model_used,
        "output_text": row.output_text,
        "tool_calls": row.output_tool_calls,
        "finish_reason": row.finish_reason,
        "usage": {
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "total_tokens": row.total_tokens,
        },
        "error": row.error,
    }
    record = {c.key: getattr(row, c.key) for c in AuditLog.__table__.columns}
    record["created_at"] = iso_utc(row.created_at)
    return render(
        request,
        "admin_log.html",
        me,
        active="logs",
        row=row,
        view=_row_view(row, names),
        messages=messages,
        timeline=_timeline(row),
        spans=spans,
        request_json=request_json,
        response_json=response_json,
        record=record,
    )


@router.get("/usage")
async def usage(request: Request, days: int = 30, bucket: str = "day", team: str | None = None) -> Response:
    """Org admins see the whole org (or one team); team admins see the teams they admin."""
    me = await viewer(request)
    admin_teams = sorted(me.actor.admin_team_ids)
    if not me.is_admin and not admin_teams:
        raise AdminOnly
    if not me.is_admin and team not in admin_teams:
        team = admin_teams[0]
    days = max(1, min(days, 366))
    since = datetime.now(UTC) - timedelta(days=days)
    query = LogQuery(org_id=me.actor.org_id, since=since, team_id=team or None)
    async with runtime_of(request).sessions() as session:
        names, _ = await _names(session, me.actor.org_id)
        data = await overview(session, query, bucket="hour" if bucket == "hour" else "day")

    def label(mapping: dict[str, str], key: str | None) -> str:
        return mapping.get(key or "", key or "—")

    series = data["series"]
    lookups = {"by_team": names.teams, "by_app": names.apps, "by_user": names.users, "by_model": {}}
    breakdowns = {name: [(label(lookups[name], p["key"]), p["tokens"]) for p in data[name]] for name in lookups}
    chart = {
        "tokens": charts.columns([(p["key"], p["tokens"]) for p in series], "Tokens over time"),
        "cost": charts.line([(p["key"], p["cost_usd"]) for p in series], "Cost over time", charts.dollars),
        "errors": charts.line(
            [(p["key"], p["error_rate"]) for p in series], "Error rate", charts.percent, "#c0392b", 1.0
        ),
        "cache": charts.line(
            [(p["key"], p["cache_hit_rate"]) for p in series], "Cache hit rate", charts.percent, peak=1.0
        ),
        **{name: charts.bars(items, name) for name, items in breakdowns.items()},
    }
    top_users = [(label(names.users, p["key"]), p) for p in data["by_user"]]
    top_apps = [(label(names.apps, p["key"]), p) for p in data["by_app"] if p["key"]]
    return render(
        request,
        "admin_usage.html",
        me,
        active="usage",
        totals=data["totals"],
        chart=chart,
        top_users=top_users,
        top_apps=top_apps,
        days=days,
        bucket=data["bucket"],
        team=team or "",
        teams=[(tid, names.teams.get(tid, tid)) for tid in (sorted(names.teams) if me.is_admin else admin_teams)],
        fmt=charts,
    )


@router.get("/people")
async def people_page(request: Request) -> Response:
    me = await viewer(request, admin=True)
    async with runtime_of(request).sessions() as session:
        users = list(
            (await session.execute(select(User).where(User.org_id == me.actor.org_id).order_by(User.name))).scalars()
        )
        teams = list(
            (await session.execute(select(Team).where(Team.org_id == me.actor.org_id).order_by(Team.name))).scalars()
        )
        memberships = (
            await session.execute(select(TeamMember).where(TeamMember.team_id.in_([t.id for t in teams] or [""])))
        ).scalars()
        members: dict[str, list[tuple[str, str]]] = {}
        user_teams: dict[str, list[str]] = {}
        by_id = {u.id: u for u in users}
        team_names = {t.id: t.name for t in teams}
        for m in memberships:
            members.setdefault(m.team_id, []).append(
                (by_id[m.user_id].name if m.user_id in by_id else m.user_id, m.role)
            )
            user_teams.setdefault(m.user_id, []).append(team_names.get(m.team_id, m.team_id))
    return render(
        request,
        "admin_people.html",
        me,
        active="people",
        users=[{**user_view(u), "teams": user_teams.get(u.id, [])} for u in users],
        teams=[{**team_view(t), "members": members.get(t.id, [])} for t in teams],
    )


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    me = await viewer(request, admin=True)
    async with runtime_of(request).sessions() as session:
        keys = await list_keys(session, me.actor.org_id)
        names, options = await _names(session, me.actor.org_id)
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "prefix": k.prefix,
            "owner": names.users.get(k.user_id, k.user_id),
            "created_at": iso_utc(k.created_at),
            "revoked_at": iso_utc(k.revoked_at),
            "models": k.allowed_models,
        }
        for k in keys
    ]
    return render(request, "admin_keys.html", me, active="keys", keys=rows, users=options["users"])


@router.get("/models")
async def models_page(request: Request) -> Response:
    me = await viewer(request, admin=True)
    catalog = runtime_of(request).settings.catalog
    providers = [
        {"name": name, "kind": cfg.kind, "base_url": getattr(cfg, "base_url", None)}
        for name, cfg in catalog.providers.items()
    ]
    return render(
        request,
        "admin_models.html",
        me,
        active="models",
        providers=providers,
        models=catalog.models,
        routes=catalog.routes,
    )


@router.get("/quotas")
async def quotas_page(request: Request) -> Response:
    me: Viewer = await viewer(request, admin=True)
    quotas = (await admin_limits.list_quotas(request))["data"]
    limits = (await admin_limits.list_rate_limits(request))["data"]
    async with runtime_of(request).sessions() as session:
        names, options = await _names(session, me.actor.org_id)
    subjects = {**names.users, **names.teams}
    models = sorted({m.name for m in runtime_of(request).settings.catalog.models})
    return render(
        request,
        "admin_quotas.html",
        me,
        active="quotas",
        quotas=quotas,
        limits=limits,
        subjects=subjects,
        options=options,
        models=models,
    )


JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


@router.get("/jobs")
async def jobs_page(request: Request, status: str = "", before: str | None = None) -> Response:
    """Background jobs of the organization, newest first (cancel through the jobs API)."""
    from aiport.jobs.queries import list_jobs
    from aiport.jobs.views import job_view

    me = await viewer(request, admin=True)
    async with runtime_of(request).sessions() as session:
        rows = await list_jobs(
            session,
            org_id=me.actor.org_id,
            user_id=None,
            status=status if status in JOB_STATUSES else None,
            kind=None,
            before=(before or "")[:64] or None,
            limit=50,
        )
        names, _ = await _names(session, me.actor.org_id)
    jobs = [{**job_view(j, full=False), "user": names.users.get(j.user_id or "", j.user_id or "—")} for j in rows]
    query = {"status": status} if status else {}
    next_url = "/ui/admin/jobs?" + urlencode({**query, "before": jobs[-1]["id"]}) if len(jobs) == 50 else None
    return render(
        request,
        "admin_jobs.html",
        me,
        active="jobs",
        jobs=jobs,
        job_status=status,
        statuses=JOB_STATUSES,
        next_url=next_url,
    )
