"""The admit stage: rate limits, then token/cost quotas reserved before the provider is called."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.config import ModelConfig
from aiport.domain.chat import Usage
from aiport.domain.errors import GatewayError, RateLimited
from aiport.domain.principal import Principal
from aiport.gateway.call import Call
from aiport.gateway.ledger import Charge, QuotaLedger, window_for
from aiport.gateway.ratelimit import RateCheck, RateLimiter
from aiport.gateway.rules import OrgRules, QuotaRule, RuleBook
from aiport.gateway.tokens import estimate_prompt_tokens
from aiport.store.models import AuditLog

log = logging.getLogger("aiport.admit")

_SCOPE_COLUMN = {"org": AuditLog.org_id, "team": AuditLog.team_id, "user": AuditLog.user_id}
_PERIOD_WORDS = {"day": "per day", "week": "per week", "month": "per month"}


class QuotaUnavailable(GatewayError):
    status = 503
    type = "api_error"
    code = "quota_unavailable"


@dataclass(slots=True)
class Admission:
    """What admit reserved for one call; settled to the real usage afterwards."""

    charges: list[Charge] = field(default_factory=list)
    settled: bool = False


class Admitter:
    def __init__(
        self,
        rules: RuleBook,
        ledger: QuotaLedger,
        limiter: RateLimiter,
        sessions: async_sessionmaker[AsyncSession],
        *,
        default_output_reservation: int = 1024,
        quota_fail_open: bool = False,
    ) -> None:
        self.rules = rules
        self._ledger = ledger
        self._limiter = limiter
        self._sessions = sessions
        self._default_output = default_output_reservation
        self._quota_fail_open = quota_fail_open

    async def admit(self, call: Call, model: ModelConfig) -> Admission | None:
        p = call.principal
        assert p is not None
        rules = await self.rules.for_org(p.org_id)
        if rules.empty:
            return None
        max_out = call.request.max_tokens or min(model.max_output_tokens, self._default_output)
        tokens = estimate_prompt_tokens(call.request) + max_out
        checks = _rate_checks(rules, p, model.name, tokens)
        if checks:
            verdict = await self._limiter.hit(checks)
            call.response_headers.update(verdict.headers)
            if verdict.refused is not None:
                raise _rate_refusal(verdict.refused, verdict.retry_after, call.response_headers)
        quotas = _quotas_for(rules, p)
        if not quotas:
            return None
        est_cost = model.price.cost(tokens - max_out, max_out)
        charges = [Charge(q, window_for(q), float(tokens) if q.metric == "tokens" else est_cost) for q in quotas]
        try:
            outcome = await self._ledger.reserve(charges, self._seed)
        except Exception as exc:
            if self._quota_fail_open:
                log.warning("quota ledger unavailable (%s); failing open", exc)
                call.response_headers["x-aiport-degraded"] = "quotas"
                return None
            raise QuotaUnavailable(
                "Token quotas cannot be checked right now (the shared counter store is unreachable); "
                "try again shortly.",
                headers={"retry-after": "5"},
            ) from exc
        _quota_headers(call.response_headers, charges, outcome.used)
        if outcome.refused is not None:
            index = charges.index(outcome.refused)
            raise _quota_refusal(outcome.refused, outcome.used[index], call.response_headers)
        return Admission(charges=charges)

    async def settle(self, admission: Admission | None, model: ModelConfig | None, usage: Usage | None) -> None:
        """Replace the reservation with what the call really used (nothing, if it failed)."""
        if admission is None or admission.settled:
            return
        admission.settled = True
        used = usage or Usage()
        cost = model.price.cost(used.prompt_tokens, used.completion_tokens) if model else 0.0
        actual = [float(used.total_tokens) if c.rule.metric == "tokens" else cost for c in admission.charges]
        try:
            await self._ledger.settle(admission.charges, actual)
        except Exception:  # the audit log keeps the durable total; the next window re-seeds from it
            log.exception("settling a quota reservation failed")

    async def durable_usage(self, rule: QuotaRule, start: datetime, end: datetime) -> float:
        """Usage recorded in the audit log for a quota's window (what counters start from)."""
        return await self._seed(rule, start, end)

    async def _seed(self, rule: QuotaRule, start: datetime, end: datetime) -> float:
        """Durable usage of a window, from the audit log."""
        column = AuditLog.total_tokens if rule.metric == "tokens" else AuditLog.cost_usd
        query = select(func.coalesce(func.sum(column), 0)).where(
            _SCOPE_COLUMN[rule.scope] == rule.subject_id,
            AuditLog.created_at >= start.astimezone(UTC),
            AuditLog.created_at < end.astimezone(UTC),
        )
        async with self._sessions() as session:
            return float((await session.execute(query)).scalar_one())


def _rate_checks(rules: OrgRules, p: Principal, model: str, tokens: int) -> list[RateCheck]:
    subjects = {"key": p.api_key_id, "user": p.user_id, "team": p.team_id, "model": model}
    checks: list[RateCheck] = []
    for rule in rules.rates:
        if subjects.get(rule.scope) != rule.subject:
            continue
        if rule.rpm:
            checks.append(RateCheck(rule, "requests", rule.rpm, 1))
        if rule.tpm:
            checks.append(RateCheck(rule, "tokens", rule.tpm, tokens))
    return checks


def _quotas_for(rules: OrgRules, p: Principal) -> list[QuotaRule]:
    subjects = {"org": p.org_id, "team": p.team_id, "user": p.user_id}
    return [q for q in rules.quotas if subjects.get(q.scope) == q.subject_id]


def _describe(rule: QuotaRule) -> str:
    period = _PERIOD_WORDS.get(rule.period) or f"per rolling {rule.rolling_seconds or 86400} s"
    what = "token" if rule.metric == "tokens" else "cost"
    return f"{rule.scope} {what} quota ({_amount(rule.metric, rule.limit)} {period}, {rule.scope} {rule.subject_id})"


def _amount(metric: str, value: float) -> str:
    return f"{int(value):,} tokens" if metric == "tokens" else f"${value:,.4f}"


def _quota_headers(headers: dict[str, str], charges: list[Charge], used: list[float]) -> None:
    tightest: tuple[float, Charge] | None = None
    for c, u in zip(charges, used, strict=False):
        left = c.rule.limit - u
        if c.rule.metric == "tokens" and (tightest is None or left < tightest[0]):
            tightest = (left, c)
    if tightest is not None:
        left, c = tightest
        headers["x-ratelimit-limit-quota-tokens"] = str(int(c.rule.limit))
        headers["x-ratelimit-remaining-quota-tokens"] = str(max(int(left), 0))
        headers["x-ratelimit-reset-quota-tokens"] = c.window.end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quota_refusal(charge: Charge, used: float, headers: dict[str, str]) -> RateLimited:
    rule = charge.rule
    left = max(rule.limit - used, 0.0)
    reset = charge.window.end
    retry = max(1, int((reset - datetime.now(UTC)).total_seconds()))
    return RateLimited(
        f"Quota exceeded: the {_describe(rule)} has {_amount(rule.metric, left)} left, and this request may use up "
        f"to {_amount(rule.metric, charge.amount)}. It resets at {reset:%Y-%m-%dT%H:%M:%SZ}. "
        "Lower max_tokens, or ask an admin to raise the quota.",
        code="quota_exceeded",
        headers={**headers, "retry-after": str(retry)},
    )


def _rate_refusal(check: RateCheck, retry_after: int, headers: dict[str, str]) -> RateLimited:
    rule = check.rule
    unit = "requests" if check.kind == "requests" else "tokens"
    return RateLimited(
        f"Rate limit reached for {rule.scope} {rule.subject}: {check.limit:,} {unit} per minute. "
        f"Try again in {retry_after} s.",
        code="rate_limit_exceeded",
        headers={**headers, "retry-after": str(retry_after)},
    )
