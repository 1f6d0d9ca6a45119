"""Deactivating a user ends their sessions and revokes their API keys (app keys too) at once,
on SQLite and PostgreSQL; an org keeps its last owner; reactivation does not revive keys."""

from __future__ import annotations

import httpx

from tests.apps.harness import PASSWORD, World, login, simple_app


def test_deactivation_revokes_sessions_and_every_key_at_once(any_world: World) -> None:
    w = any_world
    gw = w.gateway
    browser = login(gw, w.b_admin.email)
    with w.client("b_admin") as c:
        assert c.post("/api/apps", json={"definition": simple_app("b-tool"), "publish": True}).status_code == 201
        app_key = c.post("/api/apps/b-tool/keys", json={"name": "bot"}).json()["key"]
        second_key = c.post("/api/keys", json={"name": "laptop"}).json()["key"]
    # warm the key cache: a cached key must stop working too
    for key in (w.b_admin.key, second_key, app_key):
        with gw.client(key) as c:
            assert c.get("/api/auth/me").status_code == 200
    assert browser.get("/api/auth/me").status_code == 200

    with w.client("admin") as c:
        r = c.post(f"/api/users/{w.b_admin.id}/deactivate")
        assert r.status_code == 200 and r.json()["is_active"] is False

    assert browser.get("/api/auth/me").status_code == 401
    for key in (w.b_admin.key, second_key, app_key):
        with gw.client(key) as c:
            r = c.get("/api/auth/me")
            assert r.status_code == 401, r.text
            chat = c.post(
                "/v1/chat/completions", json={"model": "app:b-tool", "messages": [{"role": "user", "content": "x"}]}
            )
            assert chat.status_code == 401
    with httpx.Client(base_url=gw.url) as c:
        r = c.post("/api/auth/login", json={"email": w.b_admin.email, "password": PASSWORD})
        assert r.status_code == 401  # same answer as a wrong password
    with w.client("admin") as c:
        keys = c.get("/api/admin/keys").json()["data"]
        assert all(k["revoked_at"] for k in keys if k["user_id"] == w.b_admin.id)
        assert c.post(f"/api/users/{w.b_admin.id}/reactivate").json()["is_active"] is True
    login(gw, w.b_admin.email).close()  # the password works again ...
    with gw.client(second_key) as c:
        assert c.get("/api/auth/me").status_code == 401  # ... but revoked keys stay revoked
    browser.close()


def test_the_last_owner_cannot_be_demoted_or_deactivated(any_world: World) -> None:
    w = any_world
    with w.client("owner") as c:
        r = c.patch(f"/api/users/{w.owner.id}", json={"role": "admin"})
        assert r.status_code == 409 and r.json()["error"]["param"] == "role"
        assert c.post(f"/api/users/{w.owner.id}/deactivate").status_code == 422  # not yourself
        assert c.get(f"/api/users/{w.owner.id}").json()["role"] == "owner"


def test_role_changes_take_effect_at_once(any_world: World) -> None:
    w = any_world
    with w.client("loner") as c:
        assert c.get("/api/users").status_code == 403  # (and its key is now cached as a member)
    with w.client("admin") as c:
        assert c.patch(f"/api/users/{w.loner.id}", json={"role": "admin"}).json()["role"] == "admin"
    with w.client("loner") as c:
        assert c.get("/api/users").status_code == 200
    with w.client("owner") as c:
        assert c.patch(f"/api/users/{w.loner.id}", json={"role": "owner"}).json()["role"] == "owner"
        assert c.patch(f"/api/users/{w.loner.id}", json={"role": "member"}).json()["role"] == "member"
    with w.client("loner") as c:
        assert c.get("/api/users").status_code == 403
