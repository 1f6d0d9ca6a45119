"""Password hashing for web login: argon2id, run off the event loop (it is slow on purpose)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aiport.domain.errors import Unprocessable

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps a huge body from costing CPU

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("aiport-timing-equalizer")


def check_policy(password: str, *, param: str = "password") -> None:
    """Refuse passwords that are too short or absurdly long, naming the field."""
    if len(password) < MIN_LENGTH:
        raise Unprocessable(f"A password needs at least {MIN_LENGTH} characters.", param=param)
    if len(password) > MAX_LENGTH:
        raise Unprocessable(f"A password may have at most {MAX_LENGTH} characters.", param=param)


async def hash_password(password: str) -> str:
    """argon2id hash with a fresh salt."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """Return (matches, new hash if the stored one used weaker parameters)."""
    if len(password) > MAX_LENGTH:
        return False, None

    def _verify() -> tuple[bool, str | None]:
        try:
            _hasher.verify(stored or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False, None
        if stored is None:
            return False, None
        return True, _hasher.hash(password) if _hasher.check_needs_rehash(stored) else None

    return await asyncio.to_thread(_verify)
