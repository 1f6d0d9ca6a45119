"""Per-organization gateway rules (quotas, rate limits), cached in process.

One small query per organization every `refresh_seconds`, renewed in the background
(gateway/renewing.py); changes made through this process's admin API apply at once
(`invalidate`). An org with no rules costs a dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.gateway.renewing import RenewingCache
from aiport.store.models import Quota, RateLimit


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
    """Rules per organization, read through a RenewingCache (at most `refresh_seconds` old)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], refresh_seconds: float = 5.0) -> None:
        self._sessions = sessions
        self._cache: RenewingCache[str, OrgRules] = RenewingCache(self._load, refresh_seconds, what="gateway rules")

    async def for_org(self, org_id: str) -> OrgRules:
        rules = await self._cache.get(org_id)
        assert rules is not None  # an org without rules has empty ones
        return rules

    def invalidate(self, org_id: str | None = None) -> None:
        """Forget the cached rules (the next call reads them from the database)."""
        self._cache.invalidate(org_id)

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
