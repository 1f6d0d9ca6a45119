"""Invitations by link: an admin invites an email with a role (and optionally a team); the
link's token lets one person join once, before it expires. Only the token's hash is stored."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.authz import ORG_ROLES, TEAM_ROLES
from aiport.accounts.people import Conflict, create_user, normalize_email, set_membership
from aiport.domain.errors import NotFound, Unprocessable
from aiport.gateway.identify import hash_key
from aiport.store.models import Org, Team, User, iso_utc, utcnow
from aiport.store.people import Invitation


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def create_invitation(
    session: AsyncSession,
    org_id: str,
    *,
    email: str,
    role: str,
    team_id: str | None,
    team_role: str,
    invited_by: str,
    ttl_hours: float,
) -> tuple[str, Invitation]:
    """Return (token, row); the token is shown only now, as part of the invitation link."""
    if role not in ORG_ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ORG_ROLES)}.", param="role")
    if team_role not in TEAM_ROLES:
        raise Unprocessable(f"team_role must be one of {', '.join(TEAM_ROLES)}.", param="team_role")
    email = normalize_email(email)
    if (await session.execute(select(User.id).where(User.email == email))).first() is not None:
        raise Conflict(f"{email} already has an account.", param="email")
    token = secrets.token_urlsafe(32)
    row = Invitation(
        org_id=org_id,
        email=email,
        role=role,
        team_id=team_id,
        team_role=team_role,
        token_hash=hash_key(token),
        invited_by=invited_by,
        expires_at=utcnow() + timedelta(hours=ttl_hours),
    )
    session.add(row)
    await session.flush()
    return token, row


async def find_open_invitation(session: AsyncSession, token: str) -> Invitation:
    """The invitation for a link token, if it can still be accepted; 404 otherwise (an
    expired, used or revoked link says so, without telling a guesser anything more)."""
    row = None
    if token and len(token) <= 200:
        row = (
            await session.execute(select(Invitation).where(Invitation.token_hash == hash_key(token)))
        ).scalar_one_or_none()
    if row is None:
        raise NotFound("This invitation link is not valid.", code="invitation_not_found")
    if row.revoked_at is not None or row.accepted_at is not None:
        raise NotFound("This invitation link was already used or withdrawn.", code="invitation_not_found")
    if _aware(row.expires_at) <= utcnow():
        raise NotFound("This invitation link has expired; ask for a new one.", code="invitation_expired")
    return row


async def accept_invitation(session: AsyncSession, token: str, *, name: str, password: str) -> User:
    """Create the invited user with their password, join the team, close the invitation."""
    invitation = await find_open_invitation(session, token)
    user = await create_user(
        session, invitation.org_id, email=invitation.email, name=name, role=invitation.role, password=password
    )
    if invitation.team_id is not None:
        team = await session.get(Team, invitation.team_id)
        if team is not None:
            await set_membership(session, team, user, invitation.team_role)
    invitation.accepted_at = utcnow()
    invitation.accepted_user_id = user.id
    return user


async def invitation_public_view(session: AsyncSession, invitation: Invitation) -> dict[str, Any]:
    """What the accept page may show to whoever holds the link."""
    org = await session.get(Org, invitation.org_id)
    team = await session.get(Team, invitation.team_id) if invitation.team_id else None
    return {
        "email": invitation.email,
        "org": org.name if org else None,
        "team": team.name if team else None,
        "role": invitation.role,
        "expires_at": iso_utc(invitation.expires_at),
    }


def invitation_view(invitation: Invitation) -> dict[str, Any]:
    state = "open"
    if invitation.revoked_at is not None:
        state = "revoked"
    elif invitation.accepted_at is not None:
        state = "accepted"
    elif _aware(invitation.expires_at) <= utcnow():
        state = "expired"
    return {
        "id": invitation.id,
        "email": invitation.email,
        "role": invitation.role,
        "team_id": invitation.team_id,
        "team_role": invitation.team_role,
        "state": state,
        "invited_by": invitation.invited_by,
        "created_at": iso_utc(invitation.created_at),
        "expires_at": iso_utc(invitation.expires_at),
        "accepted_user_id": invitation.accepted_user_id,
    }
