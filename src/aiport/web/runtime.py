"""Everything a running aiport process holds: built at startup, closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aiport.apps.active_runs import ActiveRuns
from aiport.config import Settings
from aiport.gateway.assembly import Gateway, build_gateway
from aiport.gateway.identify import KeyAuthenticator
from aiport.gateway.pipeline import Pipeline
from aiport.gateway.router import Router
from aiport.gateway.rules import RuleBook
from aiport.gateway.tokens import count_text
from aiport.jobs.service import JobService
from aiport.observe.audit import AuditWriter
from aiport.providers.registry import ProviderRegistry
from aiport.store.db import make_engine, make_sessionmaker
from aiport.store.migrate import upgrade

log = logging.getLogger("aiport")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditWriter
    keys: KeyAuthenticator
    router: Router
    providers: ProviderRegistry
    pipeline: Pipeline
    rules: RuleBook
    gateway: Gateway
    runs: ActiveRuns
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    jobs: JobService | None = None

    def __post_init__(self) -> None:
        """Background jobs and webhooks start with the runtime (server and Celery worker alike)."""
        if self.jobs is None:
            self.jobs = JobService(self.settings, self.sessions, self.pipeline)
            self.jobs.start()

    @classmethod
    async def start(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _ = settings.catalog  # fail early on a bad catalog, before touching the database
        engine = make_engine(settings.resolved_database_url)
        if migrate:
            await upgrade(engine)
        sessions = make_sessionmaker(engine)
        audit = AuditWriter(
            engine,
            batch_size=settings.audit_batch_size,
            flush_interval=settings.audit_flush_interval,
            max_buffer=settings.audit_max_buffer,
            spill_path=settings.data_dir / "audit-spill.jsonl",
        )
        await audit.start()
        gateway = build_gateway(settings, sessions, audit)
        await asyncio.to_thread(count_text, "")  # load the tokenizer now, not on the first request
        keys = KeyAuthenticator(sessions, settings.key_cache_seconds)
        keys.start_watching(settings.revocation_poll_seconds)
        runs = ActiveRuns(gateway.redis)
        runs.start()
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            audit=audit,
            keys=keys,
            router=gateway.router,
            providers=gateway.providers,
            pipeline=gateway.pipeline,
            rules=gateway.rules,
            gateway=gateway,
            runs=runs,
        )

    def warm_local_models(self) -> None:
        """Start loading embedded models in the background (failures are logged, not fatal)."""
        for name, cfg in self.settings.catalog.providers.items():
            if cfg.kind == "local":
                provider = self.providers.get(name)
                warm = getattr(provider, "warm", None)
                if warm is not None:
                    task = asyncio.create_task(warm(), name=f"warm-{name}")
                    task.add_done_callback(_log_failure)
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Graceful shutdown: flush the audit log first, then release providers and the database."""
        if self.jobs is not None:
            await self.jobs.close()  # running jobs go back to the queue; their calls reach the audit log
        await self.keys.stop_watching()
        await self.runs.aclose()
        await self.audit.close()
        await self.gateway.aclose()
        await self.engine.dispose()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("warming the embedded model failed: %s", task.exception())
