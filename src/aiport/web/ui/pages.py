"""The pages people use every day: login, the app catalog, an app (guided form + chat) and
the per-answer process panel. Pages read through the same service functions as the JSON
API; everything that changes data is a fetch from the page's script to that API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from aiport.accounts.authz import Action, can_edit_app
from aiport.apps import conversations as convs
from aiport.apps import registry
from aiport.apps.forms import form_schema
from aiport.domain.errors import NotFound
from aiport.observe.traces import load_tree
from aiport.store.apps import App, AppVersion, ConversationMessage
from aiport.store.models import AuditLog
from aiport.web.ui.context import PageRoute, render, runtime_of, safe_next, viewer
from aiport.web.ui.i18n import LANG_COOKIE, LANGUAGES

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=safe_next(next))


@router.get("/lang")
async def set_language(request: Request, to: str = "en", next: str | None = None) -> Response:
    """Switch the language; remembered in a cookie for a year (per browser, per user)."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/")
async def catalog(request: Request, q: str = "") -> Response:
    me = await viewer(request)
    async with runtime_of(request).sessions() as session:
        apps = await registry.visible_apps(session, me.actor)
        ids = [a.app.published_version_id for a in apps if a.app.published_version_id]
        versions = {}
        if ids:
            rows = await session.execute(select(AppVersion).where(AppVersion.id.in_(ids)))
            versions = {v.id: v for v in rows.scalars()}
        recent = await convs.list_conversations(session, me.actor, limit=8)
    cards = []
    for loaded in apps:
        view = registry.app_view(loaded, me.actor, versions.get(loaded.app.published_version_id or ""))
        if view["definition"] is None:
            continue
        cards.append(view)
    needle = q.strip().lower()
    if needle:
        cards = [c for c in cards if needle in _haystack(c)]
    return render(request, "catalog.html", me, apps=cards, recent=recent, q=q)


def _haystack(view: dict[str, Any]) -> str:
    d = view["definition"] or {}
    return f"{d.get('name', '')} {d.get('description', '')} {view['slug']}".lower()


@router.get("/apps/{slug}")
async def app_page(request: Request, slug: str, c: str | None = None) -> Response:
    """The app: its guided form, the chat, and this person's conversations with it."""
    me = await viewer(request)
    async with runtime_of(request).sessions() as session:
        loaded = await registry.load_app(session, me.actor, slug, Action.APP_RUN)
        try:
            version, defn = await registry.published(session, loaded.app)
            version_number: int | None = version.number
        except NotFound:
            if not can_edit_app(me.actor, loaded.access):
                raise
            defn, version_number = loaded.draft, None
        history = await convs.list_conversations(session, me.actor, app_id=loaded.app.id, limit=50)
        current = None
        messages: list[dict[str, Any]] = []
        if c:
            current = await convs.load_conversation(session, me.actor, c, Action.CONVERSATION_VIEW)
            if current.app_id != loaded.app.id:
                raise NotFound("No conversation with that id or slug.", code="conversation_not_found")
            messages = await convs.message_views(session, current.org_id, await convs.messages_of(session, current.id))
    schema = form_schema(defn)
    fields = [{"name": name, **schema["properties"][name]} for name in schema["x-aiport-order"]]
    return render(
        request,
        "app.html",
        me,
        app=loaded.app,
        defn=defn,
        fields=fields,
        required=set(schema["required"]),
        version_number=version_number,
        draft=version_number is None,
        history=[h for h, _ in history],
        current=current,
        messages=messages,
        can_edit=can_edit_app(me.actor, loaded.access),
    )


@router.get("/api/messages/{message_id}/process")
async def process(request: Request, message_id: str) -> dict[str, Any]:
    """The process panel of one answer: model and why, tokens, cost, latency, request id
    (from its audit record, which the writer stores within a fraction of a second)."""
    me = await viewer(request)
    async with runtime_of(request).sessions() as session:
        message = await session.get(ConversationMessage, message_id[:40])
        if message is None:
            raise NotFound("No such message.", code="message_not_found")
        conversation = await convs.load_conversation(
            session, me.actor, message.conversation_id, Action.CONVERSATION_VIEW
        )
        row = None
        if message.log_id:
            row = await session.get(AuditLog, message.log_id)
        if row is None and message.request_id:
            row = (
                await session.execute(select(AuditLog).where(AuditLog.request_id == message.request_id).limit(1))
            ).scalar_one_or_none()
        app = await session.get(App, conversation.app_id)
        spans = flatten(await load_tree(session, row.request_id, me.actor.org_id)) if row is not None else []
    if row is None or row.org_id != me.actor.org_id:
        return {"ready": False, "request_id": message.request_id, "model": message.model, "status": message.status}
    return {
        "ready": True,
        "app": app.slug if app else None,
        "request_id": row.request_id,
        "log_id": row.id if me.is_admin else None,
        "model": row.model_used or row.model_requested,
        "provider": row.provider,
        "route_reason": row.route_reason,
        "route_score": row.route_score,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "cost_usd": row.cost_usd,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "cache_hit": row.cache_hit,
        "status": row.status,
        "error": row.error,
        "sources": [_span_label(s) for s in spans if s["kind"] == "retrieval"],
        "tools": [s["name"].removeprefix("tool:") for s in spans if s["kind"] == "tool"]
        or [c.get("function", {}).get("name") for c in (row.output_tool_calls or []) if isinstance(c, dict)],
    }


def flatten(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans of a trace tree in start order, each with its depth (for an indented list)."""
    out: list[dict[str, Any]] = []

    def walk(nodes: list[dict[str, Any]], depth: int) -> None:
        for node in nodes:
            out.append({**node, "depth": depth})
            walk(node.get("children") or [], depth + 1)

    walk(tree, 0)
    return out


def _span_label(span: dict[str, Any]) -> str:
    preview = span.get("result_preview") or ""
    args = span.get("args") or {}
    query = args.get("query") or args.get("document_id") or ""
    return f"{query} → {preview[:120]}" if query else preview[:160] or span["name"]
