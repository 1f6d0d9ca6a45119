"""App builder screens: the no-code editor (every field of an app, a test run against the
draft, publish) and the natural-language builder (describe -> a validated draft to review).
The page script does the work through the apps API; these handlers only load the page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from aiport.accounts.authz import Action, can_edit_app
from aiport.apps import registry
from aiport.store.models import Team
from aiport.web.ui.context import PageRoute, Viewer, render, runtime_of, viewer

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)

BLANK: dict[str, Any] = {
    "name": "",
    "slug": "",
    "description": "",
    "icon": "✨",
    "kind": "generator",
    "system_prompt": "",
    "prompt_template": "",
    "variables": [],
    "model": "auto",
    "params": {},
    "opening_message": "",
    "suggested_questions": [],
}


async def _teams(request: Request, me: Viewer) -> list[dict[str, str]]:
    async with runtime_of(request).sessions() as session:
        query = select(Team).where(Team.org_id == me.actor.org_id).order_by(Team.name)
        if not me.is_admin:
            query = query.where(Team.id.in_(list(me.actor.teams) or [""]))
        return [{"id": t.id, "name": t.name} for t in (await session.execute(query)).scalars()]


def _models(request: Request) -> list[str]:
    catalog = runtime_of(request).settings.catalog
    return ["auto", *sorted(set(catalog.routes) - {"auto"}), *sorted(m.name for m in catalog.models)]


@router.get("/build")
async def build_list(request: Request) -> Response:
    me = await viewer(request)
    async with runtime_of(request).sessions() as session:
        apps = [a for a in await registry.visible_apps(session, me.actor) if can_edit_app(me.actor, a.access)]
    rows = [
        {"slug": a.app.slug, "draft": a.app.draft, "published": a.app.published_version_id is not None} for a in apps
    ]
    return render(request, "build_list.html", me, active="build", apps=rows)


async def _editor(request: Request, me: Viewer, mode: str, slug: str | None = None) -> Response:
    data: dict[str, Any] = {"mode": mode, "definition": BLANK, "sharing": {"visibility": "private", "team_ids": []}}
    versions: list[dict[str, Any]] = []
    if slug is not None:
        async with runtime_of(request).sessions() as session:
            loaded = await registry.load_app(session, me.actor, slug, Action.APP_EDIT)
            versions = [registry.version_view(v) for v in await registry.list_versions(session, loaded.app)]
        data.update(
            slug=slug,
            definition=loaded.app.draft,
            sharing={"visibility": loaded.app.visibility, "team_ids": sorted(loaded.access.shared_team_ids)},
        )
    data.update(teams=await _teams(request, me), models=_models(request))
    return render(request, "build_edit.html", me, active="build", mode=mode, slug=slug, data=data, versions=versions)


@router.get("/build/new")
async def build_new(request: Request) -> Response:
    return await _editor(request, await viewer(request), "new")


@router.get("/build/describe")
async def build_describe(request: Request) -> Response:
    return await _editor(request, await viewer(request), "describe")


@router.get("/build/{slug}")
async def build_edit(request: Request, slug: str) -> Response:
    return await _editor(request, await viewer(request), "edit", slug)
