"""A throwaway PostgreSQL database per test session, on the real server.

Locally the tests skip (with the reason) when PostgreSQL is not reachable; with CI=true
they fail loudly instead, because CI must exercise the PostgreSQL path.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

ADMIN_DSN = os.environ.get("AIPORT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _admin_async(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(sql: str) -> None:
    """Run one admin statement on its own thread and loop, whatever loop the caller is in."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(sql)).result()


def create_database() -> tuple[str, str]:
    """Return (sqlalchemy url, database name) of a fresh database, or skip/fail."""
    name = "aiport_test_" + secrets.token_hex(4)
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {ADMIN_DSN}: {exc}"
        if _in_ci():
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
