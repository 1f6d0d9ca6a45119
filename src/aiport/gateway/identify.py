"""The identify stage for programs: API keys.

Keys are `aip_` + 43 url-safe random chars (256 bits), shown once. Only their SHA-256 is
stored, with a visible prefix for humans. Verified keys are cached (gateway/renewing.py)
to keep the database off the hot path. Revocations through this process clear the cache
at once; a watcher polls a cheap fingerprint (revoked keys, users per role and state, team
memberships) every `revocation_poll_seconds`, so revocations, deactivations and role or
membership changes made by the CLI or another replica also clear it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.domain.errors import Unauthenticated
from aiport.domain.principal import Principal
from aiport.gateway.renewing import RenewingCache
from aiport.store.apps import AppKey
from aiport.store.models import ApiKey, TeamMember, User

log = logging.getLogger("aiport.identify")

KEY_PREFIX = "aip_"
_VISIBLE = 12


def generate_key() -> tuple[str, str, str]:
    """Return (key, visible prefix, sha256 hex)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:_VISIBLE], hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_token(authorization: str | None, x_api_key: str | None = None) -> str:
    """Extract the key from `Authorization: Bearer …` (or `x-api-key`), with a helpful 401."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("The Authorization header must be 'Bearer <your aiport API key>'.")
        return token.strip()
    if x_api_key:
        return x_api_key.strip()
    raise Unauthenticated(
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'; "
        "create one with `aiport keys create` or ask your admin.",
        code="missing_api_key",
    )


class KeyAuthenticator:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache_seconds: float = 60.0) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._cache: RenewingCache[str, Principal] = RenewingCache(self._lookup, cache_seconds, what="API keys")
        self._fingerprint: Any = None
        self._watcher: asyncio.Task[None] | None = None

    def start_watching(self, interval: float) -> None:
        """Poll for revocations made outside this process (CLI, other replicas)."""
        if interval > 0 and self._cache_seconds > 0:
            self._watcher = asyncio.create_task(self._watch(interval), name="aiport-key-revocations")

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch(self, interval: float) -> None:
        while True:
            try:
                fingerprint = await self._revocation_fingerprint()
                if self._fingerprint is not None and fingerprint != self._fingerprint:
                    self.invalidate()
                self._fingerprint = fingerprint
            except Exception:  # a database hiccup: trust nothing cached, try again later
                log.warning("revocation check failed; clearing the key cache", exc_info=True)
                self.invalidate()
            await asyncio.sleep(interval)

    async def _revocation_fingerprint(self) -> tuple[Any, ...]:
        """What a cached Principal depends on, in a few aggregate rows: revoked keys, users
        per (role, active) and team memberships. A revocation, a deactivation, a promotion or
        demotion and a membership added or removed all change it; two changes that cancel
        out within one poll (two users swapping roles) are left to the cache's lifetime."""
        async with self._sessions() as session:
            keys = (
                await session.execute(
                    select(func.count(), func.max(ApiKey.revoked_at)).where(ApiKey.revoked_at.is_not(None))
                )
            ).one()
            users = (
                await session.execute(
                    select(User.role, User.is_active, func.count())
                    .group_by(User.role, User.is_active)
                    .order_by(User.role, User.is_active)
                )
            ).all()
            members = (await session.execute(select(func.count()).select_from(TeamMember))).scalar_one()
        return (*keys, *(tuple(row) for row in users), members)

    async def authenticate(self, key: str) -> Principal:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            raise Unauthenticated("Incorrect API key provided. aiport keys start with 'aip_'.")
        principal = await self._cache.get(hash_key(key))
        if principal is None:
            raise Unauthenticated("Incorrect API key provided, or the key was revoked.")
        return principal

    def invalidate(self) -> None:
        """Forget every cached key: called after a revocation or a user deactivation."""
        self._cache.invalidate()

    async def _lookup(self, digest: str) -> Principal | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ApiKey, User, AppKey.app_id)
                    .join(User, User.id == ApiKey.user_id)
                    .outerjoin(AppKey, AppKey.api_key_id == ApiKey.id)
                    .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None), User.is_active.is_(True))
                )
            ).first()
            if row is None:
                return None
            key, user, bound_app = row
            team_id = key.team_id
            if team_id is None:
                team_id = (
                    await session.execute(
                        select(TeamMember.team_id)
                        .where(TeamMember.user_id == user.id)
                        .order_by(TeamMember.team_id)
                        .limit(1)
                    )
                ).scalar_one_or_none()
        allowed = frozenset(key.allowed_models) if key.allowed_models is not None else None
        return Principal(
            org_id=key.org_id,
            user_id=user.id,
            api_key_id=key.id,
            team_id=team_id,
            role="member" if bound_app is not None else user.role,  # an app key never carries admin rights
            allowed_models=allowed,
        )
