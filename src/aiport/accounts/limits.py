"""Setting quotas and rate limits (admin API and CLI share these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.domain.errors import InvalidRequest, NotFound
from aiport.store.models import ApiKey, Quota, RateLimit, Team, User, iso_utc


class QuotaSpec(BaseModel):
    scope: Literal["org", "team", "user"]
    subject_id: str | None = Field(None, max_length=40, description="team or user id; omitted for scope=org")
    metric: Literal["tokens", "cost"] = "tokens"
    period: Literal["day", "week", "month", "rolling"] = "day"
    rolling_seconds: int | None = Field(None, ge=60, le=366 * 86400)
    limit: float = Field(gt=0, le=1e15)

    @model_validator(mode="after")
    def _consistent(self) -> QuotaSpec:
        if self.period == "rolling" and self.rolling_seconds is None:
            raise ValueError("rolling_seconds is required when period is 'rolling'")
        if self.period != "rolling" and self.rolling_seconds is not None:
            raise ValueError("rolling_seconds is only for period 'rolling'")
        if self.scope != "org" and not self.subject_id:
            raise ValueError(f"subject_id (the {self.scope} id) is required for scope '{self.scope}'")
        return self


class RateLimitSpec(BaseModel):
    scope: Literal["key", "user", "team", "model"]
    subject: str = Field(min_length=1, max_length=200, description="key/user/team id, or model name")
    rpm: int | None = Field(None, ge=1, le=10_000_000)
    tpm: int | None = Field(None, ge=1, le=10_000_000_000)

    @model_validator(mode="after")
    def _something(self) -> RateLimitSpec:
        if self.rpm is None and self.tpm is None:
            raise ValueError("give rpm, tpm or both")
        return self


async def _check_subject(session: AsyncSession, org_id: str, scope: str, subject: str, models: set[str]) -> None:
    table: Any = {"team": Team, "user": User, "key": ApiKey}.get(scope)
    if scope == "model":
        if subject not in models:
            raise NotFound(f"No model '{subject}' in the catalog.", param="subject", code="model_not_found")
        return
    if table is None:
        return
    row = await session.get(table, subject)
    if row is None or row.org_id != org_id:
        raise NotFound(f"No {scope} {subject} in this organization.", param="subject_id", code=f"{scope}_not_found")


async def set_quota(session: AsyncSession, org_id: str, spec: QuotaSpec) -> tuple[Quota, bool]:
    """Create or replace the quota for (scope, subject, metric, period). Returns (quota, created)."""
    subject = org_id if spec.scope == "org" else spec.subject_id
    assert subject is not None
    if spec.scope == "org" and spec.subject_id not in (None, org_id):
        raise InvalidRequest("For scope 'org', subject_id must be omitted or be your org id.", param="subject_id")
    await _check_subject(session, org_id, spec.scope, subject, set())
    existing = (
        await session.execute(
            select(Quota).where(
                Quota.org_id == org_id,
                Quota.scope == spec.scope,
                Quota.subject_id == subject,
                Quota.metric == spec.metric,
                Quota.period == spec.period,
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        existing.limit_value = spec.limit
        existing.rolling_seconds = spec.rolling_seconds
        return existing, False
    quota = Quota(
        org_id=org_id,
        scope=spec.scope,
        subject_id=subject,
        metric=spec.metric,
        period=spec.period,
        rolling_seconds=spec.rolling_seconds,
        limit_value=spec.limit,
    )
    session.add(quota)
    await session.flush()
    return quota, True


async def set_rate_limit(
    session: AsyncSession, org_id: str, spec: RateLimitSpec, models: set[str]
) -> tuple[RateLimit, bool]:
    await _check_subject(session, org_id, spec.scope, spec.subject, models)
    existing = (
        await session.execute(
            select(RateLimit).where(
                RateLimit.org_id == org_id, RateLimit.scope == spec.scope, RateLimit.subject == spec.subject
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        existing.rpm, existing.tpm = spec.rpm, spec.tpm
        return existing, False
    limit = RateLimit(org_id=org_id, scope=spec.scope, subject=spec.subject, rpm=spec.rpm, tpm=spec.tpm)
    session.add(limit)
    await session.flush()
    return limit, True


async def delete_rule(session: AsyncSession, org_id: str, table: type[Quota] | type[RateLimit], rule_id: str) -> None:
    row: Quota | RateLimit | None = await session.get(table, rule_id)
    if row is None or row.org_id != org_id:
        raise NotFound(f"No rule {rule_id} in this organization.", code="rule_not_found")
    await session.delete(row)


def quota_view(q: Quota) -> dict[str, Any]:
    return {
        "id": q.id,
        "scope": q.scope,
        "subject_id": q.subject_id,
        "metric": q.metric,
        "period": q.period,
        "rolling_seconds": q.rolling_seconds,
        "limit": q.limit_value,
        "created_at": iso_utc(q.created_at),
    }


def rate_limit_view(r: RateLimit) -> dict[str, Any]:
    return {
        "id": r.id,
        "scope": r.scope,
        "subject": r.subject,
        "rpm": r.rpm,
        "tpm": r.tpm,
        "created_at": iso_utc(r.created_at),
    }
