"""API key lifecycle: create (shown once), list (prefix only), revoke (effective at once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.domain.errors import InvalidRequest, NotFound
from aiport.gateway.identify import generate_key
from aiport.store.models import ApiKey, TeamMember, User, iso_utc, utcnow


@dataclass(slots=True)
class CreatedKey:
    key: ApiKey
    secret: str  # the only time the plain key exists


async def create_key(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    team_id: str | None = None,
    allowed_models: list[str] | None = None,
) -> CreatedKey:
    if not name.strip() or len(name) > 200:
        raise InvalidRequest("A key needs a name of 1 to 200 characters.", param="name")
    if team_id is not None:
        member = await session.get(TeamMember, (team_id, user.id))
        if member is None:
            raise InvalidRequest(f"The user is not a member of team {team_id}.", param="team_id")
    secret, prefix, digest = generate_key()
    key = ApiKey(
        org_id=user.org_id,
        user_id=user.id,
        team_id=team_id,
        name=name.strip(),
        prefix=prefix,
        key_hash=digest,
        allowed_models=allowed_models,
    )
    session.add(key)
    await session.flush()
    return CreatedKey(key=key, secret=secret)


async def revoke_key(session: AsyncSession, org_id: str, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.org_id != org_id:
        raise NotFound(f"No API key {key_id} in this organization.", code="key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


async def list_keys(session: AsyncSession, org_id: str, user_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at.desc())
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list((await session.execute(query)).scalars())


def key_view(key: ApiKey) -> dict[str, object]:
    """What may be shown about a key after creation: never the secret or its hash."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "user_id": key.user_id,
        "team_id": key.team_id,
        "allowed_models": key.allowed_models,
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
    }


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value)
