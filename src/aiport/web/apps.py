"""Apps API for the no-code builder and the UI: create and edit every field of an app,
publish versions, roll back, share, app-bound keys, the form schema, and the
natural-language builder. Runs and conversations are in web/conversations.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from aiport.accounts.authz import Action, authorize
from aiport.accounts.keys import key_view
from aiport.apps import registry
from aiport.apps.builder import draft_app
from aiport.apps.definition import definition_json_schema
from aiport.apps.forms import form_schema
from aiport.apps.keys import create_app_key, list_app_keys, revoke_app_key
from aiport.domain.chat import ChatRequest
from aiport.gateway.call import Call
from aiport.store.apps import App, AppVersion
from aiport.store.models import User
from aiport.web.auth import current_actor
from aiport.web.v1 import runtime

router = APIRouter(prefix="/api/apps", tags=["apps"])

Slug = Annotated[str, Field(max_length=64)]


class SharingBody(BaseModel):
    visibility: Literal["private", "teams", "org"] = "private"
    team_ids: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=100)] = []
    team_id: Annotated[str, Field(max_length=64)] | None = None

    def sharing(self) -> registry.Sharing:
        return registry.Sharing(self.visibility, frozenset(self.team_ids), self.team_id)


class AppCreate(BaseModel):
    definition: dict[str, Any]
    sharing: SharingBody = SharingBody()
    publish: bool = False


class AppPatch(BaseModel):
    definition: dict[str, Any] | None = None  # the fields to change; the rest of the draft stays
    sharing: SharingBody | None = None


class PublishBody(BaseModel):
    note: Annotated[str, Field(max_length=400)] | None = None


class RollbackBody(BaseModel):
    version: Annotated[int, Field(ge=1)]


class KeyBody(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class BuilderBody(BaseModel):
    description: Annotated[str, Field(min_length=3, max_length=4000)]
    model: Annotated[str, Field(max_length=200)] | None = None


async def _view(session: Any, actor: Any, loaded: registry.LoadedApp) -> dict[str, Any]:
    pid = loaded.app.published_version_id
    version = await session.get(AppVersion, pid) if pid else None
    return registry.app_view(loaded, actor, version, with_draft=True)


@router.get("", summary="Apps I can see and run (and those I can edit)")
async def list_apps(request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        apps = await registry.visible_apps(session, actor)
        ids = [a.app.published_version_id for a in apps if a.app.published_version_id]
        versions = {}
        if ids:
            versions = {
                v.id: v for v in (await session.execute(select(AppVersion).where(AppVersion.id.in_(ids)))).scalars()
            }
    data = [registry.app_view(a, actor, versions.get(a.app.published_version_id or "")) for a in apps]
    return {"object": "list", "data": data}


@router.get("/schema", summary="JSON Schema of an app definition (for builders and clients)")
async def app_schema() -> dict[str, Any]:
    return definition_json_schema()


@router.post("", status_code=201, summary="Create an app (a draft; `publish: true` publishes version 1)")
async def create(body: AppCreate, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        loaded = await registry.create_app(
            session, actor, body.definition, body.sharing.sharing(), publish=body.publish
        )
        return await _view(session, actor, loaded)


@router.post("/builder/draft", summary="Natural-language builder: describe an app, get a valid draft to review")
async def builder_draft(body: BuilderBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.APP_CREATE)
    rt = runtime(request)
    async with rt.sessions() as session:
        taken = set((await session.execute(select(App.slug).where(App.org_id == actor.org_id))).scalars())
    client_ip = request.client.host if request.client else None

    def new_call(chat: ChatRequest) -> Call:
        return Call(request=chat, principal=actor.principal, client_ip=client_ip)

    result = await draft_app(
        rt.pipeline,
        rt.router,
        actor.principal,
        body.description,
        model=body.model or rt.settings.builder_model,
        attempts=rt.settings.builder_attempts,
        taken_slugs=taken,
        new_call=new_call,
    )
    return {
        "object": "app.draft",
        "definition": result.definition.model_dump(mode="json"),
        "repairs": result.repairs,
        "attempts": result.attempts,
        "model": result.model,
        "request_ids": result.request_ids,
        "next": 'Review and edit the draft, then save it with POST /api/apps {"definition": ...}.',
    }


@router.get("/{slug}", summary="One app: its published definition (editors also get the draft)")
async def get_app(slug: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        return await _view(session, actor, await registry.load_app(session, actor, slug, Action.APP_RUN))


@router.patch("/{slug}", summary="Edit the draft (any fields) and/or the sharing")
async def patch_app(slug: str, body: AppPatch, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        if body.definition is not None:
            await registry.update_draft(session, actor, loaded, body.definition)
        if body.sharing is not None:
            await registry.set_sharing(session, actor, loaded, body.sharing.sharing())
        return await _view(session, actor, loaded)


@router.delete("/{slug}", summary="Delete an app with its versions and conversations (audit records stay)")
async def delete_app(slug: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        await session.delete(loaded.app)
    return {"slug": slug, "deleted": True}


@router.get("/{slug}/form", summary="The app's form as JSON Schema (`draft=true`: the draft's, for editors)")
async def get_form(slug: str, request: Request, draft: bool = False) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT if draft else Action.APP_RUN)
        defn = loaded.draft if draft else (await registry.published(session, loaded.app))[1]
    return form_schema(defn)


@router.post("/{slug}/publish", status_code=201, summary="Publish the draft as the next version")
async def publish(slug: str, request: Request, body: PublishBody | None = None) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        version = await registry.publish_draft(session, actor, loaded, body.note if body else None)
        return registry.version_view(version, full=True)


@router.get("/{slug}/versions", summary="Published versions, newest first (editors)")
async def versions(slug: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        rows = await registry.list_versions(session, loaded.app)
    current = loaded.app.published_version_id
    return {"object": "list", "data": [{**registry.version_view(v), "published": v.id == current} for v in rows]}


@router.get("/{slug}/versions/{number}", summary="One version with its whole definition (editors)")
async def version(slug: str, number: int, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        return registry.version_view(await registry.get_version(session, loaded.app, number), full=True)


@router.post("/{slug}/rollback", summary="Publish an earlier version again (and reset the draft to it)")
async def rollback(slug: str, body: RollbackBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        await registry.rollback(session, loaded, body.version)
        return await _view(session, actor, loaded)


@router.get("/{slug}/keys", summary="API keys bound to this app (editors)")
async def get_keys(slug: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        return {"object": "list", "data": [key_view(k) for k in await list_app_keys(session, loaded.app)]}


@router.post("/{slug}/keys", status_code=201, summary="Create a key that can run only this app (shown once)")
async def post_key(slug: str, body: KeyBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        user = await session.get(User, actor.user_id)
        assert user is not None
        created = await create_app_key(session, user, loaded.app, body.name)
        return {**key_view(created.key), "key": created.secret, "app": loaded.app.slug}


@router.delete("/{slug}/keys/{key_id}", summary="Revoke an app key (at once)")
async def delete_key(slug: str, key_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        loaded = await registry.load_app(session, actor, slug, Action.APP_EDIT)
        view = key_view(await revoke_app_key(session, loaded.app, key_id))
    rt.keys.invalidate()
    return view
