"""The demo organization a newcomer gets on first start: an admin, two teams, a few members,
every demo user with the same password for the web UI, and the seed apps."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.keys import create_key
from aiport.accounts.passwords import check_policy, hash_password
from aiport.store.models import Org, Team, TeamMember, User

DEMO_ORG_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@demo.aiport.local"

_MEMBERS = [
    # email, name, org role, team slug, team role
    ("mina@demo.aiport.local", "Mina Park", "member", "product", "admin"),
    ("joon@demo.aiport.local", "Joon Kim", "member", "product", "member"),
    ("sara@demo.aiport.local", "Sara Lee", "member", "support", "admin"),
    ("alex@demo.aiport.local", "Alex Chen", "member", "support", "member"),
]


@dataclass(slots=True)
class DemoSeed:
    created: bool
    org: Org
    admin: User
    api_key: str | None  # plain key, only when one was created now
    password: str | None = None  # the demo users' password, only when it was set now


async def seed_demo(
    session: AsyncSession, *, new_key: bool = False, password: str | None = None, reset_password: bool = False
) -> DemoSeed:
    """Create the demo org once (idempotent). Returns a fresh admin key when it creates the
    org, or when `new_key` asks for one. Demo users get `password` (random when None) when
    the org is created, or again when `reset_password` asks for it."""
    from aiport.apps.seed import seed_apps  # apps build on accounts, not the other way round

    org = (await session.execute(select(Org).where(Org.slug == DEMO_ORG_SLUG))).scalar_one_or_none()
    if org is not None:
        admin = (await session.execute(select(User).where(User.email == DEMO_ADMIN_EMAIL))).scalar_one()
        secret = (await create_key(session, admin, name="demo key")).secret if new_key else None
        chosen = await _set_passwords(session, org, password) if reset_password else None
        return DemoSeed(created=False, org=org, admin=admin, api_key=secret, password=chosen)

    org = Org(name="Demo Organization", slug=DEMO_ORG_SLUG)
    session.add(org)
    await session.flush()
    admin = User(org_id=org.id, email=DEMO_ADMIN_EMAIL, name="Demo Admin", role="owner")
    session.add(admin)
    teams = {slug: Team(org_id=org.id, name=slug.title(), slug=slug) for slug in ("product", "support")}
    session.add_all(teams.values())
    await session.flush()
    for email, name, role, team_slug, team_role in _MEMBERS:
        user = User(org_id=org.id, email=email, name=name, role=role)
        session.add(user)
        await session.flush()
        session.add(TeamMember(team_id=teams[team_slug].id, user_id=user.id, role=team_role))
    session.add(TeamMember(team_id=teams["product"].id, user_id=admin.id, role="admin"))
    await session.flush()
    chosen = await _set_passwords(session, org, password)
    await seed_apps(session, admin)
    created = await create_key(session, admin, name="demo admin key")
    return DemoSeed(created=True, org=org, admin=admin, api_key=created.secret, password=chosen)


async def _set_passwords(session: AsyncSession, org: Org, password: str | None) -> str:
    chosen = password or secrets.token_urlsafe(12)
    check_policy(chosen, param="AIPORT_DEMO_PASSWORD")
    users = (await session.execute(select(User).where(User.org_id == org.id))).scalars()
    for user in users:
        user.password_hash = await hash_password(chosen)
    return chosen
