"""API keys: random, shown once, stored hashed, revocable at once; admin API is admin-only."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from sqlalchemy import select

from aiport.accounts.keys import create_key
from aiport.store.models import ApiKey, User
from tests.conftest import Gateway


def _member_key(gateway: Gateway, email: str = "joon@demo.aiport.local", **kw: object) -> str:
    async def make() -> str:
        async with gateway.runtime.sessions() as s, s.begin():
            user = (await s.execute(select(User).where(User.email == email))).scalar_one()
            return (await create_key(s, user, name="member key", **kw)).secret  # type: ignore[arg-type]

    return gateway.server.run(make())


def test_create_shows_key_once_and_stores_only_a_hash(gateway: Gateway) -> None:
    with gateway.client() as c:
        r = c.post("/api/admin/keys", json={"name": "ci bot"})
        assert r.status_code == 201
        created = r.json()
        secret = created["key"]
        assert secret.startswith("aip_") and len(secret) > 40
        assert created["prefix"] == secret[:12]
        listed = c.get("/api/admin/keys").json()["data"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine and "key_hash" not in mine

    async def stored() -> list[str]:
        async with gateway.runtime.sessions() as s:
            return [v for row in (await s.execute(select(ApiKey))).scalars() for v in (row.key_hash, row.prefix)]

    values = gateway.server.run(stored())
    assert secret not in values and all(secret not in v or v == secret[:12] for v in values)
    openai.OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0).models.list()


def test_revoked_key_stops_working_at_once(gateway: Gateway) -> None:
    with gateway.client() as c:
        created = c.post("/api/admin/keys", json={"name": "short-lived"}).json()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=created["key"], max_retries=0)
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])  # cached now
    with gateway.client() as c:
        r = c.delete(f"/api/admin/keys/{created['id']}")
        assert r.status_code == 200 and r.json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])


def test_revocations_made_elsewhere_are_noticed(gateway: Gateway) -> None:
    """Deactivating a user straight in the database (as the CLI or another replica would)."""
    key = _member_key(gateway, "alex@demo.aiport.local")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    client.models.list()

    async def deactivate() -> None:
        async with gateway.runtime.sessions() as s, s.begin():
            user = (await s.execute(select(User).where(User.email == "alex@demo.aiport.local"))).scalar_one()
            user.is_active = False

    gateway.server.run(deactivate())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            client.models.list()
        except openai.AuthenticationError:
            return
        time.sleep(0.05)
    raise AssertionError("a deactivated user's key still worked 3 s later")


def test_role_changes_made_elsewhere_are_noticed(gateway: Gateway) -> None:
    """Promoting and demoting a user straight in the database (the CLI, another replica):
    the cached key carries the role, so the watcher must clear it within a poll or two."""
    email = "mina@demo.aiport.local"
    key = _member_key(gateway, email)

    async def set_role(role: str) -> None:
        async with gateway.runtime.sessions() as s, s.begin():
            (await s.execute(select(User).where(User.email == email))).scalar_one().role = role

    def admin_api_status(expected: int) -> int:
        deadline = time.monotonic() + 3
        with gateway.client(key) as c:
            while True:
                status = c.get("/api/admin/keys").status_code
                if status == expected or time.monotonic() > deadline:
                    return status
                time.sleep(0.05)

    assert admin_api_status(403) == 403  # a member; the key is cached now
    gateway.server.run(set_role("admin"))
    try:
        assert admin_api_status(200) == 200
    finally:
        gateway.server.run(set_role("member"))
    assert admin_api_status(403) == 403


def test_members_cannot_use_admin_api(gateway: Gateway) -> None:
    key = _member_key(gateway)
    with gateway.client(key) as c:
        for method, path in [("GET", "/api/admin/logs"), ("GET", "/api/admin/keys"), ("POST", "/api/admin/keys")]:
            r = c.request(method, path, json={"name": "x"} if method == "POST" else None)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["code"] == "admin_only"


def test_key_restricted_to_models(gateway: Gateway) -> None:
    key = _member_key(gateway, allowed_models=["echo"])
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["echo"]
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="tools", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 403 and err.value.body["param"] == "model"


def test_create_key_rejects_unknown_models_and_users(gateway: Gateway) -> None:
    with gateway.client() as c:
        r = c.post("/api/admin/keys", json={"name": "x", "allowed_models": ["nope"]})
        assert r.status_code == 422 and "nope" in r.json()["error"]["message"]
        r = c.post("/api/admin/keys", json={"name": "x", "user_id": "usr_missing"})
        assert r.status_code == 404
        r = c.post("/api/admin/keys", json={"name": ""})
        assert r.status_code == 422 and r.json()["error"]["param"] == "name"
        before = len(c.get("/api/admin/keys").json()["data"])
        assert c.delete("/api/admin/keys/key_missing").status_code == 404
        assert len(c.get("/api/admin/keys").json()["data"]) == before


def test_admin_logs_pagination_and_filters(gateway: Gateway) -> None:
    asyncio.run(asyncio.sleep(0))
    with gateway.client() as c:
        for i in range(5):
            c.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": f"p{i}"}]})
    gateway.flush()
    with gateway.client() as c:
        first = c.get("/api/admin/logs", params={"limit": 2, "model": "echo"}).json()
        second = c.get("/api/admin/logs", params={"limit": 2, "model": "echo", "before": first["next_before"]}).json()
        assert len(first["data"]) == 2 and len(second["data"]) == 2
        assert first["data"][-1]["id"] > second["data"][0]["id"]
        assert c.get("/api/admin/logs", params={"status": "bogus"}).status_code == 422
        assert c.get("/api/admin/logs", params={"limit": 0}).status_code == 422
        assert c.get("/api/admin/logs/log_nope").status_code == 404
