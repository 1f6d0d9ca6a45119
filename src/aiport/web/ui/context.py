"""What every page needs: who is looking (the session cookie), their language, and a
Jinja2 environment with autoescaping on, so nothing a model or a user wrote becomes HTML."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aiport.accounts.authz import Actor, load_actor
from aiport.accounts.sessions import CSRF_COOKIE, SESSION_COOKIE
from aiport.domain.errors import GatewayError, PermissionDenied, Unauthenticated
from aiport.store.models import Org, User
from aiport.web.runtime import Runtime
from aiport.web.ui.i18n import LANGUAGES, pick_language, translator
from aiport.web.ui.jsonview import highlight_json
from aiport.web.v1 import identify

HERE = Path(__file__).parent
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _json_script(value: Any) -> Markup:
    """Data for a page's script as JSON that cannot close the <script> element."""
    raw = orjson.dumps(value).decode()
    raw = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(raw)


env.filters["json_script"] = _json_script
env.filters["json_highlight"] = lambda value: Markup(highlight_json(value))
env.filters["urlq"] = lambda value: quote(str(value), safe="")


class NotLoggedIn(Exception):
    """Raised by page handlers; answered with a redirect to the login page."""


class AdminOnly(Exception):
    """Raised when a member opens an admin page."""


@dataclass(slots=True)
class Viewer:
    actor: Actor
    user: User
    org: Org | None
    lang: str

    @property
    def is_admin(self) -> bool:
        return self.actor.is_org_admin


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def viewer(request: Request, *, admin: bool = False) -> Viewer:
    """The person behind the session cookie (pages never accept API keys)."""
    if not request.cookies.get(SESSION_COOKIE):
        raise NotLoggedIn
    try:
        principal = await identify(request)
    except GatewayError as exc:
        raise NotLoggedIn from exc
    async with runtime_of(request).sessions() as session:
        actor = await load_actor(session, principal)
        user = await session.get(User, principal.user_id)
        org = await session.get(Org, principal.org_id)
    if user is None:
        raise NotLoggedIn
    if admin and not actor.is_org_admin:
        raise AdminOnly
    return Viewer(actor=actor, user=user, org=org, lang=pick_language(request))


def render(request: Request, template: str, viewer: Viewer | None = None, status: int = 200, **data: Any) -> Response:
    lang = viewer.lang if viewer else pick_language(request)
    words = translator(lang)

    def t(text: str) -> str:
        return words.get(text, text)

    html = env.get_template(template).render(
        request=request,
        viewer=viewer,
        lang=lang,
        languages=LANGUAGES,
        t=t,
        words=words,
        path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        csrf_cookie=CSRF_COOKIE,
        **data,
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def safe_next(value: str | None) -> str:
    """Only our own pages as redirect targets (no open redirect)."""
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui/"


class PageRoute(APIRoute):
    """Errors on pages become pages (login redirect, 403, 404); on /ui/api they stay JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            is_api = request.url.path.startswith("/ui/api/")
            try:
                return await handler(request)
            except NotLoggedIn as exc:
                if is_api:
                    raise Unauthenticated("Log in again.", code="invalid_session") from exc
                return login_redirect(request)
            except AdminOnly as exc:
                if is_api:
                    raise PermissionDenied("Only organization owners and admins may do this.") from exc
                message = "Only organization owners and admins can see this page."
                return render(request, "error.html", None, status=403, title="Admin", message=message)
            except GatewayError as exc:
                if is_api or request.method != "GET":
                    raise
                title = "Not found" if exc.status == 404 else "Something went wrong"
                return render(request, "error.html", None, status=exc.status, title=title, message=exc.message)

        return page_handler
