"""Builds a Pipeline and its stage backends from settings, for every process kind
(the web server, job workers): in-process state by default, Redis when configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.config import Settings
from aiport.gateway.admission_script import AdmissionScript
from aiport.gateway.admit import Admitter
from aiport.gateway.cache import MemoryCache, RedisCache, ResponseCache
from aiport.gateway.idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from aiport.gateway.ledger import MemoryLedger, QuotaLedger, RedisLedger
from aiport.gateway.pipeline import Pipeline, PipelineOptions
from aiport.gateway.ratelimit import RateLimiter
from aiport.gateway.resilience import CircuitBreaker, RetryPolicy
from aiport.gateway.resp import RespLane
from aiport.gateway.router import Router
from aiport.gateway.rules import RuleBook
from aiport.observe.audit import AuditWriter
from aiport.providers.registry import ProviderRegistry


@dataclass
class Gateway:
    pipeline: Pipeline
    router: Router
    providers: ProviderRegistry
    rules: RuleBook
    redis: Any | None
    scripts: Any | None = None  # the lean connection the hot scripts run on (gateway/resp.py)

    async def aclose(self) -> None:
        await self.pipeline.admitter.drain()  # settlements still in flight land before Redis closes
        await self.providers.aclose()
        if self.scripts is not None and self.scripts is not self.redis:
            await self.scripts.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def build_gateway(settings: Settings, sessions: async_sessionmaker[AsyncSession], audit: AuditWriter) -> Gateway:
    catalog = settings.catalog
    redis = scripts = None
    ledger: QuotaLedger
    dedupe: IdempotencyStore
    cache: ResponseCache
    if settings.redis_url:
        import redis.asyncio as aioredis

        # a blocking pool: under a burst, callers wait briefly for a connection instead of
        # failing (a failed settle would leave a quota reservation counted)
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=512, timeout=5, socket_connect_timeout=2, socket_timeout=2
        )
        redis = aioredis.Redis(connection_pool=pool)
        # the two scripts every controlled call runs go over one lean pipelined connection
        scripts = RespLane(settings.redis_url) if RespLane.supports(settings.redis_url) else redis
        ledger, dedupe, cache = RedisLedger(redis, scripts), RedisIdempotencyStore(redis), RedisCache(redis)
    else:
        ledger, dedupe, cache = MemoryLedger(), MemoryIdempotencyStore(), MemoryCache(settings.cache_max_entries)
    rules = RuleBook(sessions, settings.rules_refresh_seconds)
    limiter = RateLimiter(settings.redis_url, fail_open=settings.ratelimit_fail_open)
    admitter = Admitter(
        rules,
        ledger,
        limiter,
        cache,
        sessions,
        script=AdmissionScript(scripts, limiter) if scripts is not None else None,
        default_output_reservation=settings.default_output_reservation,
        quota_fail_open=settings.quota_fail_open,
    )
    router = Router(catalog)
    providers = ProviderRegistry(catalog, settings)
    pipeline = Pipeline(
        router,
        providers,
        audit,
        admitter=admitter,
        dedupe=dedupe,
        cache=cache,
        breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown_seconds),
        retry=RetryPolicy(
            attempts_per_model=settings.retry_attempts_per_model,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            max_retry_after=settings.retry_max_retry_after,
        ),
        options=PipelineOptions(settings.idempotency_ttl_seconds, settings.idempotency_wait_seconds),
    )
    return Gateway(pipeline=pipeline, router=router, providers=providers, rules=rules, redis=redis, scripts=scripts)
