"""Apps in the database: create, edit the draft, publish versions, roll back, share, list.

Edits go to the app's draft; publishing snapshots the draft as version N+1, which is what
people run from then on. The published version never changes under its users' feet, every
run names the version it used, and rolling back re-publishes an earlier version as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.authz import (
    VISIBILITIES,
    Action,
    Actor,
    AppAccess,
    authorize,
    can_edit_app,
    check_sharing,
    visible_apps_clause,
)
from aiport.accounts.people import Conflict
from aiport.apps.definition import AppDefinition, parse_definition
from aiport.domain.errors import NotFound, Unprocessable
from aiport.store.apps import App, AppTeamShare, AppVersion
from aiport.store.models import Team, iso_utc, utcnow


@dataclass(frozen=True, slots=True)
class Sharing:
    visibility: str = "private"
    team_ids: frozenset[str] = frozenset()
    team_id: str | None = None  # the team that owns (and whose admins may edit) the app


@dataclass(slots=True)
class LoadedApp:
    app: App
    access: AppAccess

    @property
    def draft(self) -> AppDefinition:
        return AppDefinition.model_validate(self.app.draft)


async def _shares(session: AsyncSession, app_id: str) -> frozenset[str]:
    rows = await session.execute(select(AppTeamShare.team_id).where(AppTeamShare.app_id == app_id))
    return frozenset(rows.scalars())


async def load_app(session: AsyncSession, actor: Actor, slug: str, action: Action) -> LoadedApp:
    """The app `slug` if `actor` may do `action` on it: 404 when they can't see it (whether
    or not it exists), 403 when they can see it but not do this."""
    app = (
        await session.execute(select(App).where(App.org_id == actor.org_id, App.slug == slug[:64]))
    ).scalar_one_or_none()
    if app is None:
        raise NotFound("No app with that id or slug.", code="app_not_found")
    access = AppAccess.of(app, await _shares(session, app.id))
    authorize(actor, action, access)
    return LoadedApp(app, access)


async def _validate_sharing(session: AsyncSession, actor: Actor, sharing: Sharing) -> None:
    if sharing.visibility not in VISIBILITIES:
        raise Unprocessable(f"visibility must be one of {', '.join(VISIBILITIES)}.", param="sharing.visibility")
    wanted = set(sharing.team_ids) | ({sharing.team_id} if sharing.team_id else set())
    if wanted:
        found = await session.execute(select(Team.id).where(Team.org_id == actor.org_id, Team.id.in_(wanted)))
        missing = sorted(wanted - set(found.scalars()))
        if missing:
            raise NotFound(
                f"No team {missing[0]} in this organization.", param="sharing.team_ids", code="team_not_found"
            )
    if sharing.visibility == "teams" and not sharing.team_ids:
        raise Unprocessable("Sharing with teams needs at least one team in team_ids.", param="sharing.team_ids")
    check_sharing(actor, sharing.visibility, sharing.team_ids, sharing.team_id)


RESERVED_SLUGS = frozenset({"schema", "builder", "new"})  # path segments of the apps API


async def _slug_free(session: AsyncSession, org_id: str, slug: str, app_id: str | None = None) -> None:
    if slug in RESERVED_SLUGS:
        raise Conflict(f"The slug '{slug}' is reserved; choose another slug.", param="slug")
    query = select(App.id).where(App.org_id == org_id, App.slug == slug)
    existing = (await session.execute(query)).scalar_one_or_none()
    if existing is not None and existing != app_id:
        raise Conflict(f"An app with the slug '{slug}' already exists; choose another slug.", param="slug")


async def create_app(
    session: AsyncSession, actor: Actor, definition: Any, sharing: Sharing, *, publish: bool = False
) -> LoadedApp:
    authorize(actor, Action.APP_CREATE)
    defn = parse_definition(definition)
    await _validate_sharing(session, actor, sharing)
    await _slug_free(session, actor.org_id, defn.slug)
    app = App(
        org_id=actor.org_id,
        slug=defn.slug,
        owner_id=actor.user_id,
        team_id=sharing.team_id,
        visibility=sharing.visibility,
        draft=defn.model_dump(mode="json"),
    )
    session.add(app)
    await session.flush()
    session.add_all(AppTeamShare(app_id=app.id, team_id=t) for t in sharing.team_ids)
    loaded = LoadedApp(app, AppAccess.of(app, sharing.team_ids))
    if publish:
        await publish_draft(session, actor, loaded, note="first version")
    return loaded


async def update_draft(session: AsyncSession, actor: Actor, loaded: LoadedApp, changes: dict[str, Any]) -> None:
    """Apply field changes to the draft (a partial definition), validated as a whole."""
    merged = {**loaded.app.draft, **changes}
    defn = parse_definition(merged)
    if defn.slug != loaded.app.slug:
        await _slug_free(session, actor.org_id, defn.slug, loaded.app.id)
        loaded.app.slug = defn.slug
    loaded.app.draft = defn.model_dump(mode="json")
    loaded.app.updated_at = utcnow()


async def set_sharing(session: AsyncSession, actor: Actor, loaded: LoadedApp, sharing: Sharing) -> None:
    await _validate_sharing(session, actor, sharing)
    app = loaded.app
    app.visibility, app.team_id, app.updated_at = sharing.visibility, sharing.team_id, utcnow()
    await session.execute(delete(AppTeamShare).where(AppTeamShare.app_id == app.id))
    session.add_all(AppTeamShare(app_id=app.id, team_id=t) for t in sharing.team_ids)
    loaded.access = AppAccess.of(app, sharing.team_ids)


async def publish_draft(session: AsyncSession, actor: Actor, loaded: LoadedApp, note: str | None = None) -> AppVersion:
    """Snapshot the draft as the next version and make it the one people run."""
    defn = parse_definition(loaded.app.draft)
    latest = (
        await session.execute(select(func.max(AppVersion.number)).where(AppVersion.app_id == loaded.app.id))
    ).scalar_one_or_none()
    version = AppVersion(
        app_id=loaded.app.id,
        number=(latest or 0) + 1,
        definition=defn.model_dump(mode="json"),
        note=(note or "")[:400] or None,
        created_by=actor.user_id,
    )
    session.add(version)
    await session.flush()
    loaded.app.published_version_id = version.id
    loaded.app.updated_at = utcnow()
    return version


async def get_version(session: AsyncSession, app: App, number: int) -> AppVersion:
    version = (
        await session.execute(select(AppVersion).where(AppVersion.app_id == app.id, AppVersion.number == number))
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"This app has no version {number}.", param="version", code="version_not_found")
    return version


async def rollback(session: AsyncSession, loaded: LoadedApp, number: int) -> AppVersion:
    """Publish an earlier version again, as it was, and reset the draft to it."""
    version = await get_version(session, loaded.app, number)
    loaded.app.published_version_id = version.id
    loaded.app.draft = dict(version.definition, slug=loaded.app.slug)
    loaded.app.updated_at = utcnow()
    return version


async def published(session: AsyncSession, app: App) -> tuple[AppVersion, AppDefinition]:
    """The version people run; 404 for an app that was never published."""
    version = await session.get(AppVersion, app.published_version_id) if app.published_version_id else None
    if version is None:
        raise NotFound("This app has not been published yet.", code="app_not_published")
    return version, AppDefinition.model_validate(version.definition)


async def list_versions(session: AsyncSession, app: App) -> list[AppVersion]:
    query = select(AppVersion).where(AppVersion.app_id == app.id).order_by(AppVersion.number.desc())
    return list((await session.execute(query)).scalars())


async def visible_apps(session: AsyncSession, actor: Actor) -> list[LoadedApp]:
    apps = list((await session.execute(select(App).where(visible_apps_clause(actor)).order_by(App.slug))).scalars())
    shares: dict[str, set[str]] = {}
    if apps:
        rows = await session.execute(select(AppTeamShare).where(AppTeamShare.app_id.in_([a.id for a in apps])))
        for share in rows.scalars():
            shares.setdefault(share.app_id, set()).add(share.team_id)
    return [LoadedApp(a, AppAccess.of(a, frozenset(shares.get(a.id, ())))) for a in apps]


def version_view(version: AppVersion, *, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": version.id,
        "number": version.number,
        "note": version.note,
        "created_by": version.created_by,
        "created_at": iso_utc(version.created_at),
    }
    if full:
        view["definition"] = version.definition
    return view


def app_view(
    loaded: LoadedApp, actor: Actor, version: AppVersion | None, *, with_draft: bool = False
) -> dict[str, Any]:
    """What a caller sees of an app: the published definition; editors also get the draft."""
    app, editable = loaded.app, can_edit_app(actor, loaded.access)
    definition = version.definition if version is not None else (app.draft if editable else None)
    view: dict[str, Any] = {
        "id": app.id,
        "slug": app.slug,
        "owner_id": app.owner_id,
        "sharing": {
            "visibility": app.visibility,
            "team_ids": sorted(loaded.access.shared_team_ids),
            "team_id": app.team_id,
        },
        "published_version": version_view(version) if version is not None else None,
        "definition": definition,
        "can_edit": editable,
        "model_name": f"app:{app.slug}",
        "created_at": iso_utc(app.created_at),
        "updated_at": iso_utc(app.updated_at),
    }
    if editable and with_draft:
        view["draft"] = app.draft
    return view
