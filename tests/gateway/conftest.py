"""Fixtures for gateway-control tests: a fresh user (own key, own team) per test, so quotas
and limits set by one test never touch another, and every test run twice: on the
in-process counters (the embedded default) and on Redis (one admission script per call)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from aiport.accounts.keys import create_key
from aiport.store.models import Team, TeamMember, User
from tests.conftest import Gateway, start_gateway
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis import redis_url


@dataclass
class Member:
    user_id: str
    team_id: str
    key_id: str
    key: str


def make_member(gateway: Gateway) -> Member:
    tag = secrets.token_hex(4)

    async def create() -> Member:
        rt = gateway.runtime
        async with rt.sessions() as s, s.begin():
            admin = await s.get(User, (await gateway_admin_id(gateway)))
            assert admin is not None
            team = Team(org_id=admin.org_id, name=f"Team {tag}", slug=f"team-{tag}")
            user = User(org_id=admin.org_id, email=f"m-{tag}@test.local", name=f"Member {tag}")
            s.add_all([team, user])
            await s.flush()
            s.add(TeamMember(team_id=team.id, user_id=user.id))
            created = await create_key(s, user, name="test", team_id=team.id)
            return Member(user.id, team.id, created.key.id, created.secret)

    return gateway.server.run(create())


async def gateway_admin_id(gateway: Gateway) -> str:
    from sqlalchemy import select

    from aiport.accounts.demo import DEMO_ADMIN_EMAIL

    async with gateway.runtime.sessions() as s:
        return str((await s.execute(select(User.id).where(User.email == DEMO_ADMIN_EMAIL))).scalar_one())


@pytest.fixture(scope="session")
def redis_gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI) -> Iterator[Gateway]:
    """aiport on SQLite with its counters, cache and idempotency keys in the real Redis."""
    gw = start_gateway(
        tmp_path_factory.mktemp("gw-redis"), fake_upstream.url, None, "sqlite", redis_url=redis_url("shared")
    )  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()


@pytest.fixture(params=["memory", "redis"])
def gateway(request: pytest.FixtureRequest) -> Gateway:
    """The gateway-control tests, on in-process counters and on Redis."""
    return request.getfixturevalue("embedded_gateway" if request.param == "memory" else "redis_gateway")  # type: ignore[no-any-return]


@pytest.fixture
def member(gateway: Gateway) -> Iterator[Member]:
    yield make_member(gateway)
