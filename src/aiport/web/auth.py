"""Web login for the UI: session cookies (`POST /api/auth/login`, `logout`, `GET me`), and
the one dependency every /api endpoint uses to learn who is calling (`current_actor`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.responses import Response

from aiport.accounts.authz import Action, Actor, authorize, load_actor
from aiport.accounts.passwords import MAX_LENGTH, verify_password
from aiport.accounts.people import set_password, team_view, user_view
from aiport.accounts.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    LoginThrottle,
    create_session,
    find_session,
    revoke_session,
)
from aiport.domain.errors import Unauthenticated, Unprocessable
from aiport.store.models import Org, Team, TeamMember, User, iso_utc
from aiport.store.people import WebSession
from aiport.web.v1 import identify, runtime

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def current_actor(request: Request) -> Actor:
    """identify (API key or session cookie), then the caller's team roles and app binding."""
    principal = await identify(request)
    async with runtime(request).sessions() as session:
        return await load_actor(session, principal)


def _throttle(request: Request) -> LoginThrottle:
    state = request.app.state
    throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
    if throttle is None:
        settings = runtime(request).settings
        throttle = LoginThrottle(settings.login_max_failures, settings.login_failure_window_seconds)
        state.login_throttle = throttle
    return throttle


def set_session_cookies(request: Request, response: Response, token: str, web: WebSession) -> None:
    settings = runtime(request).settings
    secure = settings.session_cookie_secure
    if secure is None:
        secure = request.url.scheme == "https"
    max_age = int(settings.session_ttl_hours * 3600)
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, web.csrf_token, max_age=max_age, httponly=False, samesite="lax", secure=secure)


async def me_view(session: Any, user: User, web: WebSession | None, auth: str) -> dict[str, Any]:
    org = await session.get(Org, user.org_id)
    rows = await session.execute(
        select(Team, TeamMember.role)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(TeamMember.user_id == user.id)
    )
    return {
        "user": user_view(user),
        "org": {"id": org.id, "name": org.name, "slug": org.slug} if org else None,
        "teams": [{**team_view(t), "role": role} for t, role in rows.all()],
        "auth": auth,
        "csrf_token": web.csrf_token if web else None,
        "session_expires_at": iso_utc(web.expires_at) if web else None,
    }


class LoginBody(BaseModel):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]


@router.post("/login", summary="Log in with email and password; sets the session cookie")
async def login(body: LoginBody, request: Request) -> Response:
    rt = runtime(request)
    client = request.client.host if request.client else "?"
    email = body.email.strip().lower()
    throttle = _throttle(request)
    throttle.check(email, client)
    async with rt.sessions() as session, session.begin():
        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
        ok, rehashed = await verify_password(user.password_hash if user else None, body.password)
        if user is None or not ok or not user.is_active:
            throttle.failed(email, client)
            raise Unauthenticated("Wrong email or password.", code="invalid_credentials")
        throttle.succeeded(email, client)
        if rehashed:
            user.password_hash = rehashed
        token, web = await create_session(
            session,
            user,
            ttl_hours=rt.settings.session_ttl_hours,
            client_ip=client,
            user_agent=request.headers.get("user-agent"),
        )
        body_out = await me_view(session, user, web, "session")
    response = Response(json_bytes(body_out), media_type="application/json")
    set_session_cookies(request, response, token, web)
    return response


@router.post("/logout", summary="End this browser's session")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with runtime(request).sessions() as session, session.begin():
            await revoke_session(session, token)
    response = Response(json_bytes({"logged_out": True}), media_type="application/json")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", summary="Who is calling: user, org, teams and roles; the CSRF token for sessions")
async def me(request: Request) -> dict[str, Any]:
    principal = await identify(request)
    token = request.cookies.get(SESSION_COOKIE)
    async with runtime(request).sessions() as session:
        user = await session.get(User, principal.user_id)
        assert user is not None
        web = None
        if principal.api_key_id is None and token:
            found = await find_session(session, token)
            web = found[0] if found else None
        return await me_view(session, user, web, "api_key" if principal.api_key_id else "session")


class PasswordBody(BaseModel):
    current_password: Annotated[str, Field(max_length=MAX_LENGTH)] = ""
    new_password: Annotated[str, Field(max_length=MAX_LENGTH)]


@router.post("/password", summary="Change my password (ends my other sessions)")
async def change_password(body: PasswordBody, request: Request) -> Response:
    actor = await current_actor(request)
    authorize(actor, Action.SELF)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        user = await session.get(User, actor.user_id)
        assert user is not None
        if user.password_hash is not None:
            ok, _ = await verify_password(user.password_hash, body.current_password)
            if not ok:
                raise Unprocessable("The current password is wrong.", param="current_password")
        await set_password(session, user, body.new_password)
        token, web = await create_session(session, user, ttl_hours=rt.settings.session_ttl_hours)
        out = await me_view(session, user, web, "session")
    response = Response(json_bytes(out), media_type="application/json")
    set_session_cookies(request, response, token, web)
    return response


def json_bytes(data: Any) -> bytes:
    return orjson.dumps(data, default=str)
