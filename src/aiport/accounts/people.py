"""Users, teams and memberships: the operations behind the people API and the CLI.

Authorization is the caller's job (`accounts.authz`); these functions keep the invariants
that hold whoever calls them: unique emails and team slugs, an org always keeps an owner,
and deactivating a user ends their sessions and revokes their keys in the same transaction.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.authz import ORG_ROLES, TEAM_ROLES
from aiport.accounts.passwords import check_policy, hash_password
from aiport.accounts.sessions import revoke_user_sessions
from aiport.domain.errors import GatewayError, NotFound, Unprocessable
from aiport.store.models import ApiKey, Team, TeamMember, User, iso_utc, utcnow

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
_SLUG = re.compile(r"[^a-z0-9]+")


class Conflict(GatewayError):
    """The request clashes with what exists (a taken email or slug, the last owner)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


def normalize_email(email: str, *, param: str = "email") -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise Unprocessable(f"'{email[:100]}' is not an email address.", param=param)
    return email


def slugify(text: str, *, max_length: int = 64) -> str:
    """Lowercase ASCII letters, digits and single dashes: what URLs and `app:<slug>` need."""
    slug = _SLUG.sub("-", text.lower()).strip("-")[:max_length].strip("-")
    return slug


async def find_user(session: AsyncSession, org_id: str, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None or user.org_id != org_id:
        raise NotFound(f"No user {user_id} in this organization.", param="user_id", code="user_not_found")
    return user


async def find_team(session: AsyncSession, org_id: str, team_id: str) -> Team:
    team = await session.get(Team, team_id)
    if team is None or team.org_id != org_id:
        raise NotFound(f"No team {team_id} in this organization.", param="team_id", code="team_not_found")
    return team


async def create_user(
    session: AsyncSession, org_id: str, *, email: str, name: str, role: str = "member", password: str | None = None
) -> User:
    if role not in ORG_ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ORG_ROLES)}.", param="role")
    email = normalize_email(email)
    if (await session.execute(select(User.id).where(User.email == email))).first() is not None:
        raise Conflict(f"A user with the email {email} already exists.", param="email")
    user = User(org_id=org_id, email=email, name=name.strip() or email.split("@")[0], role=role)
    if password is not None:
        check_policy(password)
        user.password_hash = await hash_password(password)
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    """Change a password and end the user's other logins."""
    check_policy(password)
    user.password_hash = await hash_password(password)
    await revoke_user_sessions(session, user.id)


async def _owners(session: AsyncSession, org_id: str) -> int:
    query = select(func.count()).where(User.org_id == org_id, User.role == "owner", User.is_active.is_(True))
    return int((await session.execute(query)).scalar_one())


async def set_role(session: AsyncSession, user: User, role: str) -> None:
    if role not in ORG_ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ORG_ROLES)}.", param="role")
    if user.role == "owner" and role != "owner" and await _owners(session, user.org_id) <= 1:
        raise Conflict("This is the organization's last owner; make someone else owner first.", param="role")
    user.role = role


async def deactivate_user(session: AsyncSession, user: User) -> None:
    """Sign the user out everywhere and revoke their keys, in this transaction. The caller
    clears the key cache after commit so cached keys stop working at once too."""
    if user.role == "owner" and user.is_active and await _owners(session, user.org_id) <= 1:
        raise Conflict("This is the organization's last owner; it cannot be deactivated.", param="user_id")
    user.is_active = False
    await revoke_user_sessions(session, user.id)
    await session.execute(
        update(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )


async def create_team(session: AsyncSession, org_id: str, *, name: str, slug: str | None = None) -> Team:
    slug = slugify(slug or name)
    if not slug:
        raise Unprocessable("A team needs a name with letters or digits.", param="name")
    taken = await session.execute(select(Team.id).where(Team.org_id == org_id, Team.slug == slug))
    if taken.first() is not None:
        raise Conflict(f"A team with the slug '{slug}' already exists.", param="slug")
    team = Team(org_id=org_id, name=name.strip(), slug=slug)
    session.add(team)
    await session.flush()
    return team


async def set_membership(session: AsyncSession, team: Team, user: User, role: str) -> TeamMember:
    if role not in TEAM_ROLES:
        raise Unprocessable(f"role must be one of {', '.join(TEAM_ROLES)}.", param="role")
    if user.org_id != team.org_id:
        raise NotFound(f"No user {user.id} in this organization.", param="user_id", code="user_not_found")
    member = await session.get(TeamMember, (team.id, user.id))
    if member is None:
        member = TeamMember(team_id=team.id, user_id=user.id, role=role)
        session.add(member)
    else:
        member.role = role
    await session.flush()
    return member


async def remove_membership(session: AsyncSession, team: Team, user_id: str) -> None:
    member = await session.get(TeamMember, (team.id, user_id))
    if member is None:
        raise NotFound(f"User {user_id} is not a member of this team.", param="user_id", code="member_not_found")
    await session.delete(member)


async def user_team_ids(session: AsyncSession, user_id: str) -> frozenset[str]:
    rows = await session.execute(select(TeamMember.team_id).where(TeamMember.user_id == user_id))
    return frozenset(rows.scalars())


async def team_members(session: AsyncSession, team_id: str) -> list[tuple[User, str]]:
    rows = await session.execute(
        select(User, TeamMember.role)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team_id)
    )
    return [(u, r) for u, r in rows.all()]


def user_view(user: User) -> dict[str, Any]:
    """What the people API shows about a user: never the password hash."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "is_active": user.is_active,
        "has_password": user.password_hash is not None,
        "created_at": iso_utc(user.created_at),
    }


def team_view(team: Team) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "slug": team.slug, "created_at": iso_utc(team.created_at)}
