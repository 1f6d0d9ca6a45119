"""The admit stage: rate limits, then the response cache, then token/cost quotas.

Rate limits apply to every call, answered from the cache or not. A fresh cached answer
costs nothing, so it reserves nothing; every other call reserves its quota estimate
before the provider is called and settles to the real usage afterwards. With Redis all
three are one round trip (gateway/admission_script.py); in process they are plain calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.config import ModelConfig
from aiport.domain.chat import Usage
from aiport.domain.errors import GatewayError, RateLimited
from aiport.domain.principal import Principal
from aiport.gateway.admission_script import AdmissionScript
from aiport.gateway.cache import CachedAnswer, RedisCache, ResponseCache
from aiport.gateway.call import Call
from aiport.gateway.ledger import Charge, Outcome, QuotaLedger, RedisLedger, window_for
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


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """Where the pipeline's cache stage wants admission to look: the key and the freshness asked for."""

    key: str
    ttl: int


@dataclass(slots=True)
class Admission:
    """What admit reserved for one call (settled to the real usage afterwards), or the
    cached answer it found instead."""

    charges: list[Charge] = field(default_factory=list)
    settled: bool = False
    cached: CachedAnswer | None = None
    store: tuple[str, bytes, int] | None = None  # the answer for the cache, stored when settling


class Admitter:
    def __init__(
        self,
        rules: RuleBook,
        ledger: QuotaLedger,
        limiter: RateLimiter,
        cache: ResponseCache,
        sessions: async_sessionmaker[AsyncSession],
        *,
        script: AdmissionScript | None = None,
        default_output_reservation: int = 1024,
        quota_fail_open: bool = False,
    ) -> None:
        self.rules = rules
        self._ledger = ledger
        self._limiter = limiter
        self._cache = cache
        self._sessions = sessions
        self._script = script
        self._store_on_settle = script is not None and isinstance(cache, RedisCache)
        self._pending: set[asyncio.Task[None]] = set()
        self._default_output = default_output_reservation
        self._quota_fail_open = quota_fail_open

    async def admit(self, call: Call, model: ModelConfig, lookup: CacheLookup | None = None) -> Admission | None:
        p = call.principal
        assert p is not None
        rules = await self.rules.for_org(p.org_id)
        checks: list[RateCheck] = []
        charges: list[Charge] = []
        if not rules.empty:
            max_out = call.request.max_tokens or min(model.max_output_tokens, self._default_output)
            tokens = estimate_prompt_tokens(call.request) + max_out
            checks = _rate_checks(rules, p, model.name, tokens)
            est_cost = model.price.cost(tokens - max_out, max_out)
            charges = [
                Charge(q, window_for(q), float(tokens) if q.metric == "tokens" else est_cost)
                for q in _quotas_for(rules, p)
            ]
        if self._script is not None and (checks or charges):
            return await self._admit_at_once(call, checks, charges, lookup)
        if checks:
            verdict = await self._limiter.hit(checks)
            call.response_headers.update(verdict.headers)
            if verdict.refused is not None:
                raise _rate_refusal(verdict.refused, verdict.retry_after, call.response_headers)
        if lookup is not None:
            answer = await self._look_up(call, lookup)
            if answer is not None:
                return Admission(cached=answer)
        return await self._reserve(call, charges) if charges else None

    async def _admit_at_once(
        self, call: Call, checks: list[RateCheck], charges: list[Charge], lookup: CacheLookup | None
    ) -> Admission | None:
        assert self._script is not None and isinstance(self._ledger, RedisLedger)
        try:
            quota = await self._ledger.prepare(charges, self._seed) if charges else ([], [])
            reply = await self._script.run(self._limiter.redis_layout(checks), lookup.key if lookup else None, quota)
        except GatewayError:
            raise
        except Exception as exc:
            self._counters_down(call, checks, charges, lookup, exc)
            return None
        verdict = self._limiter.verdict(checks, reply.windows, reply.rate_refused)
        call.response_headers.update(verdict.headers)
        if verdict.refused is not None:
            raise _rate_refusal(verdict.refused, verdict.retry_after, call.response_headers)
        if lookup is not None:
            answer = _fresh(call, lookup, CachedAnswer.from_bytes(reply.cached) if reply.cached else None)
            if answer is not None:
                return Admission(cached=answer)
            if reply.cached is not None:  # stale for this request's max-age: nothing was reserved yet
                return await self._reserve(call, charges) if charges else None
        if not charges:
            return None
        assert reply.quota is not None
        return self._admitted(call, charges, RedisLedger.outcome(charges, reply.quota))

    def _counters_down(
        self, call: Call, checks: list[RateCheck], charges: list[Charge], lookup: CacheLookup | None, exc: Exception
    ) -> None:
        """Redis failed: each part fails open or closed as configured (rate limits first)."""
        if checks:
            self._limiter.unavailable(exc)
            call.degrade("rate-limits")
        if charges:
            self._quota_down(call, exc)
        if lookup is not None:
            call.degrade("cache")
            call.cache_key = None

    async def _look_up(self, call: Call, lookup: CacheLookup) -> CachedAnswer | None:
        try:
            answer = await self._cache.get(lookup.key)
        except Exception as exc:  # a cache that is down is a miss, not an outage
            log.warning("response cache unavailable: %s", exc)
            call.degrade("cache")
            call.cache_key = None
            return None
        return _fresh(call, lookup, answer)

    async def _reserve(self, call: Call, charges: list[Charge]) -> Admission | None:
        try:
            outcome = await self._ledger.reserve(charges, self._seed)
        except Exception as exc:
            self._quota_down(call, exc)
            return None
        return self._admitted(call, charges, outcome)

    def _quota_down(self, call: Call, exc: Exception) -> None:
        if not self._quota_fail_open:
            raise QuotaUnavailable(
                "Token quotas cannot be checked right now (the shared counter store is unreachable); "
                "try again shortly.",
                headers={"retry-after": "5"},
            ) from exc
        log.warning("quota ledger unavailable (%s); failing open", exc)
        call.degrade("quotas")

    @staticmethod
    def _admitted(call: Call, charges: list[Charge], outcome: Outcome) -> Admission:
        _quota_headers(call.response_headers, charges, outcome.used)
        if outcome.refused is not None:
            index = charges.index(outcome.refused)
            raise _quota_refusal(outcome.refused, outcome.used[index], call.response_headers)
        return Admission(charges=charges)

    def store_on_settle(self, admission: Admission | None, key: str, answer: CachedAnswer, ttl: int) -> bool:
        """With Redis, hand the answer for the cache to the settle round trip (True), instead
        of a round trip of its own."""
        if not self._store_on_settle or admission is None or admission.settled or not admission.charges:
            return False
        admission.store = (key, answer.to_bytes(), ttl)
        return True

    async def settle_soon(self, admission: Admission | None, model: ModelConfig | None, usage: Usage | None) -> None:
        """Settle without holding up the answer: with Redis the settle round trip runs after
        the response is on its way (until it lands the quota counts the reservation, the safe
        side); in process it is immediate. `drain` waits for the pending ones at shutdown."""
        if admission is None or admission.settled or not admission.charges:
            return
        if self._script is None:
            await self._settle(admission, model, usage)
            return
        task = asyncio.get_running_loop().create_task(self._settle(admission, model, usage))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for background settlements (shutdown), so no reservation is left counted."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _settle(self, admission: Admission | None, model: ModelConfig | None, usage: Usage | None) -> None:
        """Replace the reservation with what the call really used (nothing, if it failed)."""
        if admission is None or admission.settled or not admission.charges:
            return
        admission.settled = True
        used = usage or Usage()
        cost = model.price.cost(used.prompt_tokens, used.completion_tokens) if model else 0.0
        actual = [float(used.total_tokens) if c.rule.metric == "tokens" else cost for c in admission.charges]
        try:
            if admission.store is not None:
                assert isinstance(self._ledger, RedisLedger)
                await self._ledger.settle(admission.charges, actual, also_set=admission.store)
            else:
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
        headers["x-ratelimit-reset-quota-tokens"] = _timestamp(c.window.end)


@lru_cache(maxsize=1024)
def _timestamp(when: datetime) -> str:
    """A window's end as the header shows it (a window ends at the same time for all its calls)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _fresh(call: Call, lookup: CacheLookup, answer: CachedAnswer | None) -> CachedAnswer | None:
    """A cached answer young enough for this request's max-age, marked on the response."""
    if answer is None or time.time() - answer.stored_at > lookup.ttl:
        call.response_headers["x-aiport-cache"] = "miss"
        return None
    call.response_headers["x-aiport-cache"] = "hit"
    return answer
