"""Password login (argon2), session cookies, CSRF on unsafe methods, logout, throttling."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from aiport.store.models import User, utcnow
from aiport.store.people import WebSession
from tests.apps.harness import PASSWORD, World, login, simple_app


def _cookie_headers(response: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def test_login_sets_a_httponly_samesite_session_cookie_and_returns_the_csrf_token(world: World) -> None:
    with httpx.Client(base_url=world.gateway.url) as c:
        r = c.post("/api/auth/login", json={"email": world.a_member.email.upper(), "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user"]["id"] == world.a_member.id and body["auth"] == "session"
        assert body["teams"][0]["id"] == world.team_a and body["teams"][0]["role"] == "member"
        assert "password_hash" not in body["user"] and body["csrf_token"]
        cookies = _cookie_headers(r)
        session_cookie = cookies["aiport_session"].lower()
        assert "httponly" in session_cookie and "samesite=lax" in session_cookie and "path=/" in session_cookie
        assert "secure" not in session_cookie  # plain http on loopback; https requests get Secure
        assert "httponly" not in cookies["aiport_csrf"].lower()  # the UI reads it
        me = c.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["user"]["email"] == world.a_member.email


def test_session_cookie_is_secure_over_https(world: World) -> None:
    """Behind a TLS proxy the setting forces Secure (the request itself arrives as http)."""
    rt = world.gateway.runtime
    original = rt.settings.session_cookie_secure
    rt.settings.session_cookie_secure = True
    try:
        with httpx.Client(base_url=world.gateway.url) as c:
            r = c.post("/api/auth/login", json={"email": world.a_member.email, "password": PASSWORD})
            assert "secure" in _cookie_headers(r)["aiport_session"].lower()
    finally:
        rt.settings.session_cookie_secure = original


def test_passwords_are_stored_as_argon2id_hashes_and_sessions_as_digests(world: World) -> None:
    client = login(world.gateway, world.b_member.email)
    token = client.cookies["aiport_session"]

    async def read() -> tuple[str | None, list[str]]:
        async with world.gateway.runtime.sessions() as session:
            user = await session.get(User, world.b_member.id)
            assert user is not None
            hashes = (
                await session.execute(select(WebSession.token_hash).where(WebSession.user_id == user.id))
            ).scalars()
            return user.password_hash, list(hashes)

    password_hash, token_hashes = world.gateway.server.run(read())
    assert password_hash is not None and password_hash.startswith("$argon2id$") and PASSWORD not in password_hash
    assert token not in token_hashes and all(len(h) == 64 for h in token_hashes)
    client.close()


def test_wrong_password_and_unknown_email_get_the_same_401(world: World) -> None:
    with httpx.Client(base_url=world.gateway.url) as c:
        wrong = c.post("/api/auth/login", json={"email": world.admin.email, "password": "not the password"})
        unknown = c.post("/api/auth/login", json={"email": "nobody@example.com", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"] == "Wrong email or password."
    assert "aiport_session" not in wrong.cookies


def test_repeated_failures_are_throttled_with_retry_after(world: World) -> None:
    with httpx.Client(base_url=world.gateway.url) as c:
        for _ in range(3):  # login_max_failures=3 in the harness
            assert (
                c.post("/api/auth/login", json={"email": world.loner.email, "password": "wrong-wrong"}).status_code
                == 401
            )
        r = c.post("/api/auth/login", json={"email": world.loner.email, "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert r.json()["error"]["code"] == "too_many_logins"
    world.gateway.server.config.app.state.login_throttle.succeeded(world.loner.email, "127.0.0.1")


def test_unsafe_methods_with_a_session_need_the_csrf_header(world: World) -> None:
    client = login(world.gateway, world.a_admin.email)
    csrf = client.headers.pop("x-csrf-token")
    definition = {"definition": simple_app("csrf-check")}
    assert client.get("/api/apps").status_code == 200  # safe methods need no token
    missing = client.post("/api/apps", json=definition)
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    wrong = client.post("/api/apps", json=definition, headers={"x-csrf-token": "x" + csrf})
    assert wrong.status_code == 403
    assert client.delete("/api/apps/csrf-check").status_code == 403
    ok = client.post("/api/apps", json=definition, headers={"x-csrf-token": csrf})
    assert ok.status_code == 201, ok.text
    assert client.delete("/api/apps/csrf-check", headers={"x-csrf-token": csrf}).status_code == 200
    client.close()


def test_logout_ends_the_session_for_good(world: World) -> None:
    client = login(world.gateway, world.a_admin.email)
    stolen = client.cookies["aiport_session"]
    assert client.post("/api/auth/logout").status_code == 200
    with httpx.Client(base_url=world.gateway.url, cookies={"aiport_session": stolen}) as replay:
        r = replay.get("/api/auth/me")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"
    client.close()


def test_no_credentials_and_a_forged_cookie_are_401(world: World) -> None:
    with httpx.Client(base_url=world.gateway.url) as c:
        assert c.get("/api/apps").status_code == 401
    with httpx.Client(base_url=world.gateway.url, cookies={"aiport_session": "forged"}) as c:
        assert c.get("/api/apps").status_code == 401


def test_changing_the_password_ends_other_sessions(world: World) -> None:
    first = login(world.gateway, world.b_admin.email)
    second = login(world.gateway, world.b_admin.email)
    wrong = second.post("/api/auth/password", json={"current_password": "nope-nope", "new_password": "another pass 1"})
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "current_password"
    short = second.post("/api/auth/password", json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and short.json()["error"]["param"] == "password"
    r = second.post("/api/auth/password", json={"current_password": PASSWORD, "new_password": "another pass 1"})
    assert r.status_code == 200, r.text
    assert first.get("/api/auth/me").status_code == 401  # the other login ended
    assert second.get("/api/auth/me").status_code == 200  # this one got a fresh session
    login(world.gateway, world.b_admin.email, "another pass 1").close()
    back = second.post(
        "/api/auth/password",
        json={"current_password": "another pass 1", "new_password": PASSWORD},
        headers={"x-csrf-token": second.get("/api/auth/me").json()["csrf_token"]},
    )
    assert back.status_code == 200
    first.close()
    second.close()


def test_an_expired_session_is_refused(world: World) -> None:
    client = login(world.gateway, world.a_member.email)

    async def expire() -> None:
        async with world.gateway.runtime.sessions() as session, session.begin():
            await session.execute(
                update(WebSession)
                .where(WebSession.user_id == world.a_member.id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    world.gateway.server.run(expire())
    r = client.get("/api/auth/me")
    assert r.status_code == 401 and "Log in again" in r.json()["error"]["message"]
    client.close()
