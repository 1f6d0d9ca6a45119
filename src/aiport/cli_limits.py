"""`aiport quotas ...` and `aiport limits ...`: the admin API's quota and rate-limit rules from a shell.

Subjects are named the way people know them (team slug, user email); the same validation as the
admin API applies (aiport.accounts.limits), so a bad rule is refused with the same message."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import select

from aiport.domain.errors import GatewayError

quotas_app = typer.Typer(no_args_is_help=True, help="Token and cost quotas per org, team or user.")
limits_app = typer.Typer(
    no_args_is_help=True, help="Rate limits (requests/tokens per minute) per key, user, team, model."
)


def _run(fn: Any) -> Any:
    from aiport import cli

    try:
        return cli._with_session(fn)
    except GatewayError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


async def _org_id(session: Any, slug: str | None) -> str:
    from aiport.store.models import Org

    orgs = list((await session.execute(select(Org).order_by(Org.created_at))).scalars())
    if slug:
        match = [o for o in orgs if o.slug == slug]
        if not match:
            _fail(f"no organization '{slug}' (have: {', '.join(o.slug for o in orgs) or 'none'})")
        return str(match[0].id)
    if len(orgs) != 1:
        _fail(f"{len(orgs)} organizations here: say which with --org ({', '.join(o.slug for o in orgs)})")
    return str(orgs[0].id)


async def _subject(session: Any, org_id: str, scope: str, name: str | None) -> str | None:
    """Resolve a team slug / user email (or a raw id) to the id the rule stores."""
    from aiport.store.models import Team, User

    if scope in ("org", "model") or name is None:
        return name
    if scope == "team":
        row = (
            await session.execute(select(Team).where(Team.org_id == org_id, (Team.slug == name) | (Team.id == name)))
        ).scalar_one_or_none()
    elif scope == "user":
        row = (
            await session.execute(select(User).where(User.org_id == org_id, (User.email == name) | (User.id == name)))
        ).scalar_one_or_none()
    else:  # key: ids only
        return name
    if row is None:
        _fail(f"no {scope} '{name}' in this organization")
    return str(row.id)


def _spec(model: Any, **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'rule'}: {e['msg']}" for e in exc.errors())
        _fail(problems)


OrgOption = Annotated[str | None, typer.Option("--org", help="Organization slug (default: the only one)")]


@quotas_app.command("set")
def quotas_set(
    scope: Annotated[str, typer.Argument(help="org | team | user")],
    subject: Annotated[str | None, typer.Argument(help="team slug or user email (not for org)")] = None,
    limit: Annotated[float, typer.Option(help="Tokens, or US dollars with --metric cost")] = 0,
    metric: Annotated[str, typer.Option(help="tokens | cost")] = "tokens",
    period: Annotated[str, typer.Option(help="day | week | month | rolling")] = "day",
    rolling_seconds: Annotated[int | None, typer.Option(help="Window length for --period rolling")] = None,
    org: OrgOption = None,
) -> None:
    """Create or replace a quota, e.g. `aiport quotas set team research --limit 2000000 --period month`."""
    from aiport.accounts.limits import QuotaSpec, quota_view, set_quota

    async def run(session: Any) -> tuple[dict[str, Any], bool]:
        org_id = await _org_id(session, org)
        subject_id = await _subject(session, org_id, scope, subject)
        spec = _spec(
            QuotaSpec,
            scope=scope,
            subject_id=subject_id,
            metric=metric,
            period=period,
            rolling_seconds=rolling_seconds,
            limit=limit,
        )
        quota, created = await set_quota(session, org_id, spec)
        return quota_view(quota), created

    view, created = _run(run)
    typer.echo(f"{'created' if created else 'updated'} quota {view['id']}: {_quota_line(view)}")


def _quota_line(q: dict[str, Any]) -> str:
    window = f"rolling {q['rolling_seconds']}s" if q["period"] == "rolling" else f"per {q['period']}"
    amount = f"${q['limit']:g}" if q["metric"] == "cost" else f"{q['limit']:,.0f} tokens"
    return f"{q['scope']} {q['subject_id']}: {amount} {window}"


@quotas_app.command("list")
def quotas_list(org: OrgOption = None) -> None:
    """List quotas."""
    from aiport.accounts.limits import quota_view
    from aiport.store.models import Quota

    async def run(session: Any) -> list[dict[str, Any]]:
        org_id = await _org_id(session, org)
        rows = (await session.execute(select(Quota).where(Quota.org_id == org_id).order_by(Quota.created_at))).scalars()
        return [quota_view(q) for q in rows]

    views = _run(run)
    if not views:
        typer.echo("no quotas")
    for view in views:
        typer.echo(f"{view['id']}  {_quota_line(view)}")


@quotas_app.command("delete")
def quotas_delete(rule_id: str, org: OrgOption = None) -> None:
    """Delete a quota by id."""
    from aiport.accounts.limits import delete_rule
    from aiport.store.models import Quota

    async def run(session: Any) -> None:
        await delete_rule(session, await _org_id(session, org), Quota, rule_id)

    _run(run)
    typer.echo(f"deleted quota {rule_id}")


@limits_app.command("set")
def limits_set(
    scope: Annotated[str, typer.Argument(help="key | user | team | model")],
    subject: Annotated[str, typer.Argument(help="key id, user email, team slug, or model name")],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    org: OrgOption = None,
) -> None:
    """Create or replace a rate limit, e.g. `aiport limits set user ana@demo.aiport.local --rpm 60`."""
    from aiport import cli
    from aiport.accounts.limits import RateLimitSpec, rate_limit_view, set_rate_limit

    models = {m.name for m in cli._settings().catalog.models}

    async def run(session: Any) -> tuple[dict[str, Any], bool]:
        org_id = await _org_id(session, org)
        subject_id = await _subject(session, org_id, scope, subject)
        spec = _spec(RateLimitSpec, scope=scope, subject=subject_id, rpm=rpm, tpm=tpm)
        rule, created = await set_rate_limit(session, org_id, spec, models)
        return rate_limit_view(rule), created

    view, created = _run(run)
    typer.echo(f"{'created' if created else 'updated'} rate limit {view['id']}: {_limit_line(view)}")


def _limit_line(r: dict[str, Any]) -> str:
    parts = [f"{r['rpm']} req/min" if r["rpm"] else "", f"{r['tpm']:,} tok/min" if r["tpm"] else ""]
    return f"{r['scope']} {r['subject']}: {', '.join(p for p in parts if p)}"


@limits_app.command("list")
def limits_list(org: OrgOption = None) -> None:
    """List rate limits."""
    from aiport.accounts.limits import rate_limit_view
    from aiport.store.models import RateLimit

    async def run(session: Any) -> list[dict[str, Any]]:
        org_id = await _org_id(session, org)
        q = select(RateLimit).where(RateLimit.org_id == org_id).order_by(RateLimit.created_at)
        return [rate_limit_view(r) for r in (await session.execute(q)).scalars()]

    views = _run(run)
    if not views:
        typer.echo("no rate limits")
    for view in views:
        typer.echo(f"{view['id']}  {_limit_line(view)}")


@limits_app.command("delete")
def limits_delete(rule_id: str, org: OrgOption = None) -> None:
    """Delete a rate limit by id."""
    from aiport.accounts.limits import delete_rule
    from aiport.store.models import RateLimit

    async def run(session: Any) -> None:
        await delete_rule(session, await _org_id(session, org), RateLimit, rule_id)

    _run(run)
    typer.echo(f"deleted rate limit {rule_id}")
