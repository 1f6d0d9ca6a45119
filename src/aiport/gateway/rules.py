"""Per-organization gateway rules (quotas, rate limits), cached in process.

One small query per organization every `refresh_seconds`; changes made through this
process's admin API apply at once (`invalidate`). An org with no rules costs a dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.store.models import Quota, RateLimit

log = logging.getLogger("aiport.rules")


@dataclass(frozen=True, slots=True)
class QuotaRule:
    id: str
    scope: str  # org | team | user
    subject_id: str
    metric: str  # tokens | cost
    period: str  # day | week | month | rolling
    rolling_seconds: int | None
    limit: float


@dataclass(frozen=True, slots=True)
class RateRule:
    id: str
    scope: str  # key | user | team | model
    subject: str
    rpm: int | None
    tpm: int | None


@dataclass(slots=True)
class OrgRules:
    quotas: list[QuotaRule] = field(default_factory=list)
    rates: list[RateRule] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.quotas and not self.rates


class RuleBook:
    """Rules per organization, cached for `refresh_seconds` at most. Past half that age, a
    call starts one background query that renews the entry before it expires, so under
    traffic no call waits on the database; after an idle spell the first calls wait for
    one query together (a burst never queries more than once per organization)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], refresh_seconds: float = 5.0) -> None:
        self._sessions = sessions
        self._refresh = refresh_seconds
        self._cache: dict[str, tuple[OrgRules, float]] = {}  # org -> (rules, loaded at)
        self._loading: dict[str, asyncio.Future[OrgRules]] = {}
        self._generation = 0  # bumped by invalidate: a load that started before is not kept

    async def for_org(self, org_id: str) -> OrgRules:
        hit = self._cache.get(org_id)
        if hit is not None:
            age = time.monotonic() - hit[1]
            if age < self._refresh:
                if age >= self._refresh / 2 and org_id not in self._loading:
                    self._start_load(org_id).add_done_callback(_retrieve)  # renewed in the background
                return hit[0]
        loading = self._loading.get(org_id)
        return await asyncio.shield(loading if loading is not None else self._start_load(org_id))

    def invalidate(self, org_id: str | None = None) -> None:
        """Forget the cached rules (the next call reads them from the database)."""
        self._generation += 1
        if org_id is None:
            self._cache.clear()
            self._loading.clear()
        else:
            self._cache.pop(org_id, None)
            self._loading.pop(org_id, None)

    def _start_load(self, org_id: str) -> asyncio.Future[OrgRules]:
        future = asyncio.ensure_future(self._load_and_keep(org_id, self._generation))
        self._loading[org_id] = future
        return future

    async def _load_and_keep(self, org_id: str, generation: int) -> OrgRules:
        started = time.monotonic()
        try:
            rules = await self._load(org_id)
        except Exception:
            last = self._cache.get(org_id)
            if last is None:
                raise
            # the database is unreachable: keep enforcing the last rules read, and try again later
            log.exception("reading the gateway rules of org %s failed; keeping the last ones read", org_id)
            if generation == self._generation:
                self._cache[org_id] = (last[0], time.monotonic())
            return last[0]
        finally:
            if generation == self._generation:
                self._loading.pop(org_id, None)
        if generation == self._generation:
            self._cache[org_id] = (rules, started)  # as old as the query, not its answer
        return rules

    async def _load(self, org_id: str) -> OrgRules:
        async with self._sessions() as session:
            quotas = (await session.execute(select(Quota).where(Quota.org_id == org_id))).scalars()
            rates = (await session.execute(select(RateLimit).where(RateLimit.org_id == org_id))).scalars()
            return OrgRules(
                quotas=[
                    QuotaRule(q.id, q.scope, q.subject_id, q.metric, q.period, q.rolling_seconds, q.limit_value)
                    for q in quotas
                ],
                rates=[RateRule(r.id, r.scope, r.subject, r.rpm, r.tpm) for r in rates],
            )


def _retrieve(future: asyncio.Future[OrgRules]) -> None:
    """A background refresh's failure is logged where it happens; mark it seen."""
    if not future.cancelled():
        future.exception()
