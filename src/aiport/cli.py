"""`aiport serve | worker | migrate | seed-demo | logs | keys | quotas | limits | models`."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import select

from aiport.cli_limits import limits_app, quotas_app
from aiport.config import ConfigError, Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="aiport: self-hosted AI platform.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(quotas_app, name="quotas")
app.add_typer(limits_app, name="limits")

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = Settings()
        _ = settings.catalog  # fail early with a clear message
        return settings
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def _with_session(fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run `fn(session)` in one committed transaction on a migrated database."""
    from aiport.store.db import make_engine, make_sessionmaker
    from aiport.store.migrate import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> T:
        engine = make_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
            async with make_sessionmaker(engine)() as session, session.begin():
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _print_key_banner(key: str, email: str, password: str | None = None) -> None:
    line = "=" * 72
    typer.echo(f"\n{line}\n  Demo admin ({email}) API key — shown once, store it now:\n\n    {key}\n")
    if password:
        typer.echo(f"  Web login: {email} (and every demo user) with the password\n\n    {password}\n")
    typer.echo(f"{line}\n")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (AIPORT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AIPORT_PORT)")] = None,
    demo: Annotated[bool, typer.Option(help="Seed the demo organization on first start")] = True,
    warm: Annotated[bool, typer.Option(help="Load the embedded model at startup, in the background")] = True,
) -> None:
    """Apply migrations, seed the demo org on first start, and serve the API."""
    import uvicorn

    from aiport.accounts.demo import seed_demo
    from aiport.web.app import create_app

    settings = _settings()
    host = host or settings.host
    port = port if port is not None else settings.port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if demo:
        seed = _with_session(lambda s: seed_demo(s, password=settings.demo_password))
        if seed.api_key:
            _print_key_banner(seed.api_key, seed.admin.email, seed.password)
        else:
            typer.echo(f"Demo organization already exists. New key: `aiport keys create --email {seed.admin.email}`")
    typer.echo(f"aiport listening on http://{host}:{port}  (OpenAI base_url: http://{host}:{port}/v1)")
    application = create_app(settings, warm_local=warm)
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        timeout_graceful_shutdown=30,
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Jobs run at once by this worker")] = 4,
    pool: Annotated[str, typer.Option(help="Celery pool: threads (default), solo or prefork")] = "threads",
    loglevel: Annotated[str, typer.Option(help="Log level")] = "info",
) -> None:
    """Run Celery job workers: AIPORT_BROKER_URL names the broker, state is in the database."""
    import os

    settings = _settings()
    if not settings.broker_url:
        typer.secho(
            "AIPORT_BROKER_URL is not set: `aiport worker` runs jobs from a RabbitMQ or Redis broker "
            "(e.g. amqp://guest:guest@127.0.0.1:5672// or redis://127.0.0.1:6379/0). Without a broker, "
            "`aiport serve` runs jobs in-process.",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    from aiport.jobs.celery_app import create_celery

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    celery = create_celery(settings, worker=True, warm=pool != "prefork")
    celery.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--queues={settings.job_queue}",
            f"--hostname=aiport-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command()
def migrate() -> None:
    """Apply database migrations (serve does this too)."""
    _with_session(_noop)
    typer.echo("database is up to date")


async def _noop(_session: Any) -> None:
    return None


@app.command("seed-demo")
def seed_demo_cmd(
    key_file: Annotated[
        Path | None, typer.Option(help="Write a fresh admin key to this file instead of printing")
    ] = None,
    reset_password: Annotated[
        bool, typer.Option(help="Set the demo users' password again (AIPORT_DEMO_PASSWORD, or a new random one)")
    ] = False,
) -> None:
    """Create the demo organization (idempotent) and issue a fresh admin API key."""
    from aiport.accounts.demo import seed_demo

    password = _settings().demo_password
    seed = _with_session(lambda s: seed_demo(s, new_key=True, password=password, reset_password=reset_password))
    assert seed.api_key is not None
    if key_file:
        key_file.write_text(seed.api_key + "\n")
        key_file.chmod(0o600)
        typer.echo(f"demo org {'created' if seed.created else 'exists'}; key written to {key_file}")
        if seed.password:
            typer.echo(f"demo users' web password: {seed.password}")
    else:
        _print_key_banner(seed.api_key, seed.admin.email, seed.password)


@keys_app.command("create")
def keys_create(
    email: Annotated[str, typer.Option(help="Owner of the key")],
    name: Annotated[str, typer.Option(help="A label for the key")] = "cli key",
    model: Annotated[list[str] | None, typer.Option(help="Restrict to this model (repeatable)")] = None,
) -> None:
    """Create an API key for a user; the key is printed once."""
    from aiport.accounts.keys import create_key
    from aiport.store.models import User

    async def run(session: Any) -> str:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
        if user is None:
            typer.secho(f"no user with email {email}", fg="red", err=True)
            raise typer.Exit(1)
        return (await create_key(session, user, name=name, allowed_models=model or None)).secret

    typer.echo(_with_session(run))


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefix, owner, state)."""
    from aiport.store.models import ApiKey, User

    async def run(session: Any) -> list[Any]:
        q = select(ApiKey, User.email).join(User, User.id == ApiKey.user_id).order_by(ApiKey.created_at)
        return list((await session.execute(q)).all())

    for key, email in _with_session(run):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(f"{key.id}  {key.prefix}…  {email:<32} {key.name:<20} {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    from aiport.store.models import ApiKey, utcnow

    async def run(session: Any) -> bool:
        key = await session.get(ApiKey, key_id)
        if key is None:
            return False
        key.revoked_at = key.revoked_at or utcnow()
        return True

    if not _with_session(run):
        typer.secho(f"no key {key_id}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@app.command()
def logs(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    user: Annotated[str | None, typer.Option(help="Filter by user email")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="ok | error | client_closed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Full records as JSON lines")] = False,
) -> None:
    """Show the newest audit records."""
    from aiport.observe.queries import log_view
    from aiport.store.models import AuditLog, User

    async def run(session: Any) -> list[Any]:
        q = select(AuditLog, User.email).outerjoin(User, User.id == AuditLog.user_id)
        if user:
            q = q.where(User.email == user)
        if model:
            q = q.where(AuditLog.model_used == model)
        if status:
            q = q.where(AuditLog.status == status)
        return list((await session.execute(q.order_by(AuditLog.id.desc()).limit(limit))).all())

    rows = _with_session(run)
    if as_json:
        for row, email in rows:
            typer.echo(json.dumps({**log_view(row, full=True), "user_email": email}, ensure_ascii=False, default=str))
        return
    if not rows:
        typer.echo("no audit records yet")
        return
    typer.echo(
        f"{'time (UTC)':<20} {'user':<26} {'model':<16} {'status':<7} {'tok':>6} {'cost $':>9} {'ms':>7}  output"
    )
    for row, email in rows:
        preview = (row.output_text or row.error or "").replace("\n", " ")[:40]
        typer.echo(
            f"{row.created_at:%Y-%m-%d %H:%M:%S} {(email or '-')[:26]:<26} "
            f"{(row.model_used or row.model_requested or '-')[:16]:<16} {row.status[:7]:<7} "
            f"{row.total_tokens:>6} {row.cost_usd:>9.6f} {row.latency_ms or 0:>7.0f}  {preview}"
        )


@app.command()
def models() -> None:
    """List configured models with their prices."""
    for m in _settings().catalog.models:
        typer.echo(
            f"{m.name:<24} provider={m.provider:<12} in=${m.price.input_per_million}/M "
            f"out=${m.price.output_per_million}/M"
        )


def main() -> None:
    app()
