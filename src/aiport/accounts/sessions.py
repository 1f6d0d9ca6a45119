"""Web sessions: an opaque cookie for browsers, checked against the database on every request.

Only the SHA-256 of the cookie is stored. There is no cache, so logging out or deactivating
a user ends their sessions at the very next request. Cookie-authenticated requests that
change something must carry the session's CSRF token in `X-CSRF-Token` (the cookie is also
SameSite=Lax; the header is the defence that does not depend on the browser).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.domain.errors import PermissionDenied, RateLimited, Unauthenticated
from aiport.domain.principal import Principal
from aiport.gateway.identify import hash_key
from aiport.store.models import TeamMember, User, utcnow
from aiport.store.people import WebSession

SESSION_COOKIE = "aiport_session"
CSRF_COOKIE = "aiport_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def create_session(
    session: AsyncSession,
    user: User,
    *,
    ttl_hours: float,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, WebSession]:
    """Start a login; returns (cookie value, row). The cookie value exists only here."""
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=hash_key(token),
        csrf_token=secrets.token_urlsafe(24),
        user_id=user.id,
        org_id=user.org_id,
        expires_at=utcnow() + timedelta(hours=ttl_hours),
        client_ip=client_ip,
        user_agent=(user_agent or "")[:400] or None,
    )
    session.add(row)
    await session.flush()
    return token, row


async def find_session(session: AsyncSession, token: str) -> tuple[WebSession, User] | None:
    """The live session for a cookie value and its (active) user, or None."""
    if not token or len(token) > 200:
        return None
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_hash == hash_key(token), WebSession.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    web, user = row
    if not user.is_active or _aware(web.expires_at) <= utcnow():
        return None
    return web, user


async def authenticate_session(
    sessions: async_sessionmaker[AsyncSession], token: str, *, method: str, csrf: str | None
) -> Principal:
    """identify for browsers: the cookie's user as a Principal (no API key, every model)."""
    async with sessions() as session:
        found = await find_session(session, token)
        if found is None:
            raise Unauthenticated(
                "Your session has expired or was ended. Log in again (POST /api/auth/login).",
                code="invalid_session",
            )
        web, user = found
        team_id = (
            await session.execute(
                select(TeamMember.team_id).where(TeamMember.user_id == user.id).order_by(TeamMember.team_id).limit(1)
            )
        ).scalar_one_or_none()
    if method.upper() not in SAFE_METHODS and not (csrf and hmac.compare_digest(csrf, web.csrf_token)):
        raise PermissionDenied(
            f"Missing or wrong CSRF token: send the session's csrf_token (GET /api/auth/me) in {CSRF_HEADER}.",
            code="csrf_failed",
        )
    return Principal(org_id=user.org_id, user_id=user.id, team_id=team_id, role=user.role)


async def revoke_session(session: AsyncSession, token: str) -> None:
    await session.execute(
        update(WebSession)
        .where(WebSession.token_hash == hash_key(token), WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_user_sessions(session: AsyncSession, user_id: str) -> None:
    """End every login of a user at once (deactivation, password change)."""
    await session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


class LoginThrottle:
    """Refuses further password attempts for an (email, client) after too many failures in a
    window, so a password cannot be guessed at argon2 speed. In-process: each replica counts
    its own attempts, which still bounds guessing to replicas × limit per window."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def check(self, email: str, client: str) -> None:
        times = self._failures.get((email.lower(), client))
        if times is None:
            return
        now = time.monotonic()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            retry = int(times[0] + self.window - now) + 1
            raise RateLimited(
                f"Too many failed logins for this account; try again in {retry} seconds.",
                code="too_many_logins",
                headers={"retry-after": str(retry)},
            )

    def failed(self, email: str, client: str) -> None:
        if len(self._failures) > 100_000:
            self._failures.clear()
        self._failures.setdefault((email.lower(), client), deque()).append(time.monotonic())

    def succeeded(self, email: str, client: str) -> None:
        self._failures.pop((email.lower(), client), None)
