"""The per-organization rule cache on the real database: a burst of calls loads the rules
once, an expired entry is answered at once and refreshed in the background, and an
admin's change (invalidate) is never overwritten by a load that started before it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from aiport.gateway.rules import OrgRules, RuleBook
from aiport.store.models import Quota
from tests.conftest import Gateway
from tests.gateway.conftest import gateway_admin_id


class CountingBook(RuleBook):
    """A RuleBook that counts its database loads and can be slowed down."""

    loads = 0
    delay = 0.0

    async def _load(self, org_id: str) -> OrgRules:
        self.loads += 1
        await asyncio.sleep(self.delay)
        return await super()._load(org_id)


def _org_of_admin(gateway: Gateway) -> str:
    from aiport.store.models import User

    async def org() -> str:
        async with gateway.runtime.sessions() as s:
            user = await s.get(User, await gateway_admin_id(gateway))
            assert user is not None
            return str(user.org_id)

    return gateway.server.run(org())


async def _add_quota(gateway: Gateway, org_id: str, subject: str) -> None:
    async with gateway.runtime.sessions() as s, s.begin():
        s.add(Quota(org_id=org_id, scope="user", subject_id=subject, metric="tokens", period="day", limit_value=5))


async def _drop_quotas(gateway: Gateway, subject: str) -> None:
    async with gateway.runtime.sessions() as s, s.begin():
        await s.execute(delete(Quota).where(Quota.subject_id == subject))


@pytest.fixture
def subject(embedded_gateway: Gateway) -> Iterator[tuple[str, str]]:
    """The admin's org and a fresh user id to add quotas for; the quotas are dropped after."""
    subject = f"u_{secrets.token_hex(4)}"
    yield _org_of_admin(embedded_gateway), subject
    embedded_gateway.server.run(_drop_quotas(embedded_gateway, subject))


def test_a_burst_loads_the_rules_once(embedded_gateway: Gateway) -> None:
    org_id = _org_of_admin(embedded_gateway)
    book = CountingBook(embedded_gateway.runtime.sessions, refresh_seconds=60)
    book.delay = 0.05

    async def burst() -> list[OrgRules]:
        return await asyncio.gather(*(book.for_org(org_id) for _ in range(100)))

    answers = embedded_gateway.server.run(burst())
    assert book.loads == 1
    assert all(a is answers[0] for a in answers)


def test_an_entry_past_half_its_age_is_renewed_behind_the_calls(
    embedded_gateway: Gateway, subject: tuple[str, str]
) -> None:
    gw = embedded_gateway
    org_id, user = subject
    book = CountingBook(gw.runtime.sessions, refresh_seconds=1.0)

    async def scenario() -> None:
        before = await book.for_org(org_id)
        await _add_quota(gw, org_id, user)
        await asyncio.sleep(0.55)  # past half its age, not expired
        book.delay = 0.1
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(book.for_org(org_id) for _ in range(20)))
        assert asyncio.get_running_loop().time() - started < 0.09  # nobody waited for the database
        assert all(a is before for a in answers)
        await asyncio.sleep(0.25)  # the one renewal has landed, before the entry expired
        assert book.loads == 2
        assert any(q.subject_id == user for q in (await book.for_org(org_id)).quotas)

    gw.server.run(scenario())


def test_an_expired_entry_is_never_answered(embedded_gateway: Gateway, subject: tuple[str, str]) -> None:
    """After an idle spell, a change made by another process applies to the very next call."""
    gw = embedded_gateway
    org_id, user = subject
    book = CountingBook(gw.runtime.sessions, refresh_seconds=0.1)

    async def scenario() -> None:
        await book.for_org(org_id)
        await _add_quota(gw, org_id, user)
        await asyncio.sleep(0.15)
        book.delay = 0.05
        answers = await asyncio.gather(*(book.for_org(org_id) for _ in range(20)))
        assert all(any(q.subject_id == user for q in a.quotas) for a in answers)
        assert book.loads == 2

    gw.server.run(scenario())


def test_a_load_started_before_an_invalidate_is_not_kept(embedded_gateway: Gateway, subject: tuple[str, str]) -> None:
    gw = embedded_gateway
    org_id, user = subject
    book = CountingBook(gw.runtime.sessions, refresh_seconds=0.4)

    async def scenario() -> None:
        await book.for_org(org_id)
        await asyncio.sleep(0.25)
        book.delay = 0.2
        await book.for_org(org_id)  # starts a slow background refresh (reads before the change)
        await asyncio.sleep(0.05)
        await _add_quota(gw, org_id, user)
        book.invalidate(org_id)  # what the admin API does after the change
        book.delay = 0.0
        after = await book.for_org(org_id)
        assert any(q.subject_id == user for q in after.quotas)
        await asyncio.sleep(0.3)  # the old refresh finishes: it must not replace the newer rules
        assert any(q.subject_id == user for q in (await book.for_org(org_id)).quotas)

    gw.server.run(scenario())


def test_a_failing_refresh_keeps_the_last_rules(embedded_gateway: Gateway) -> None:
    org_id = _org_of_admin(embedded_gateway)

    class Flaky(RuleBook):
        fail = False

        async def _load(self, org_id: str) -> OrgRules:
            if self.fail:
                raise ConnectionError("database unreachable")
            return await super()._load(org_id)

    book = Flaky(embedded_gateway.runtime.sessions, refresh_seconds=0.1)

    async def scenario() -> None:
        first = await book.for_org(org_id)
        book.fail = True
        await asyncio.sleep(0.06)
        assert await book.for_org(org_id) is first  # answered; the renewal fails behind it
        await asyncio.sleep(0.15)
        assert await book.for_org(org_id) is first  # expired, and the database still down

    embedded_gateway.server.run(scenario())
