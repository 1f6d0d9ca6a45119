"""Authorization, in one place: who may do what to which resource.

Endpoints load an `Actor` once per request and call `authorize(actor, action, resource)`;
list endpoints filter with `visible_apps_clause`, which encodes the same app rules as SQL.
Denials follow one principle: a resource the actor may not even see answers 404 (its
existence is not leaked); a resource they can see but not change answers 403.

Roles: org `owner`/`admin` see and manage everything in their org; a team `admin` manages
their team's members and apps and sees its usage; a `member` sees the apps shared with
them (their own private ones, their teams', the whole org's) and only their own
conversations. An app-bound API key may run its one app and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.domain.errors import NotFound, PermissionDenied
from aiport.domain.principal import Principal
from aiport.store.apps import App, AppKey, AppTeamShare
from aiport.store.models import TeamMember

ORG_ADMIN_ROLES = frozenset({"owner", "admin"})
ORG_ROLES = ("owner", "admin", "member")
TEAM_ROLES = ("admin", "member")
VISIBILITIES = ("private", "teams", "org")


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller as authorization sees them: org role, team roles, app binding."""

    principal: Principal
    teams: Mapping[str, str] = field(default_factory=dict)  # team_id -> "admin" | "member"
    app_key_app_id: str | None = None

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    @property
    def org_id(self) -> str:
        return self.principal.org_id

    @property
    def org_role(self) -> str:
        return self.principal.role

    @property
    def is_org_admin(self) -> bool:
        return self.app_key_app_id is None and self.principal.role in ORG_ADMIN_ROLES

    def is_team_admin(self, team_id: str | None) -> bool:
        return team_id is not None and self.teams.get(team_id) == "admin"

    @property
    def admin_team_ids(self) -> frozenset[str]:
        return frozenset(t for t, role in self.teams.items() if role == "admin")


async def load_actor(session: AsyncSession, principal: Principal) -> Actor:
    """Team roles and app binding of an identified caller (two indexed lookups)."""
    rows = await session.execute(
        select(TeamMember.team_id, TeamMember.role).where(TeamMember.user_id == principal.user_id)
    )
    teams = {team_id: role for team_id, role in rows.all()}
    app_id = None
    if principal.api_key_id is not None:
        app_id = (
            await session.execute(select(AppKey.app_id).where(AppKey.api_key_id == principal.api_key_id))
        ).scalar_one_or_none()
    return Actor(principal=principal, teams=teams, app_key_app_id=app_id)


class Action(StrEnum):
    SELF = "self"  # act as a person on one's own things (keys, password, conversations): not an app key
    APP_CREATE = "app.create"
    APP_RUN = "app.run"  # see and run the published app
    APP_EDIT = "app.edit"  # draft, publish, roll back, share, keys, delete, test runs
    CONVERSATION_VIEW = "conversation.view"
    CONVERSATION_WRITE = "conversation.write"
    TEAM_VIEW = "team.view"
    TEAM_MANAGE = "team.manage"  # members, invitations into the team
    TEAM_USAGE = "team.usage"
    USER_VIEW = "user.view"
    USER_USAGE = "user.usage"
    ORG_MANAGE = "org.manage"  # users, roles, teams, org-wide invitations, every usage
    GRANT_OWNER = "org.grant_owner"


@dataclass(frozen=True, slots=True)
class AppAccess:
    id: str
    org_id: str
    owner_id: str | None
    team_id: str | None
    visibility: str
    shared_team_ids: frozenset[str]
    published: bool

    @classmethod
    def of(cls, app: App, shared_team_ids: frozenset[str]) -> AppAccess:
        return cls(
            app.id,
            app.org_id,
            app.owner_id,
            app.team_id,
            app.visibility,
            shared_team_ids,
            app.published_version_id is not None,
        )


@dataclass(frozen=True, slots=True)
class ConversationAccess:
    org_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class TeamAccess:
    org_id: str
    team_id: str


@dataclass(frozen=True, slots=True)
class UserAccess:
    org_id: str
    user_id: str
    team_ids: frozenset[str] = frozenset()


def _hidden(what: str) -> NotFound:
    return NotFound(f"No {what} with that id or slug.", code=f"{what.replace(' ', '_')}_not_found")


def _denied(message: str) -> PermissionDenied:
    return PermissionDenied(message, code="forbidden")


def can_edit_app(actor: Actor, app: AppAccess) -> bool:
    if actor.app_key_app_id is not None or actor.org_id != app.org_id:
        return False
    return actor.is_org_admin or actor.user_id == app.owner_id or actor.is_team_admin(app.team_id)


def can_run_app(actor: Actor, app: AppAccess) -> bool:
    if actor.org_id != app.org_id:
        return False
    if actor.app_key_app_id is not None:
        return actor.app_key_app_id == app.id and app.published
    if can_edit_app(actor, app):
        return True
    if not app.published:
        return False
    if app.visibility == "org":
        return True
    return app.visibility == "teams" and bool(app.shared_team_ids & actor.teams.keys())


def authorize(actor: Actor, action: Action, resource: Any = None) -> None:
    """Return if `actor` may do `action` on `resource`; raise 404 (hidden) or 403 otherwise."""
    if actor.app_key_app_id is not None and action is not Action.APP_RUN:
        if isinstance(resource, AppAccess) and resource.id != actor.app_key_app_id:
            raise _hidden("app")  # other apps don't exist for an app key, whatever is asked
        raise _denied("This API key is bound to one app: it may only run that app.")
    if action in (Action.SELF, Action.APP_CREATE):
        return
    if action in (Action.APP_RUN, Action.APP_EDIT):
        assert isinstance(resource, AppAccess)
        if not can_run_app(actor, resource):
            raise _hidden("app")
        if action is Action.APP_EDIT and not can_edit_app(actor, resource):
            raise _denied("Only the app's owner, its team's admins and org admins may change this app.")
        return
    if action in (Action.CONVERSATION_VIEW, Action.CONVERSATION_WRITE):
        assert isinstance(resource, ConversationAccess)
        own = resource.org_id == actor.org_id and resource.user_id == actor.user_id
        if not own and not (actor.is_org_admin and resource.org_id == actor.org_id):
            raise _hidden("conversation")
        if action is Action.CONVERSATION_WRITE and not own:
            raise _denied("Only the person who started a conversation may change it.")
        return
    if action in (Action.TEAM_VIEW, Action.TEAM_MANAGE, Action.TEAM_USAGE):
        assert isinstance(resource, TeamAccess)
        if resource.org_id != actor.org_id or not (actor.is_org_admin or resource.team_id in actor.teams):
            raise _hidden("team")
        if action is not Action.TEAM_VIEW and not (actor.is_org_admin or actor.is_team_admin(resource.team_id)):
            raise _denied("Only the team's admins and org admins may do this.")
        return
    if action in (Action.USER_VIEW, Action.USER_USAGE):
        assert isinstance(resource, UserAccess)
        if resource.org_id != actor.org_id:
            raise _hidden("user")
        if actor.is_org_admin or resource.user_id == actor.user_id:
            return
        if action is Action.USER_VIEW and resource.team_ids & actor.teams.keys():
            return  # teammates see each other (the team's member list shows them anyway)
        if action is Action.USER_USAGE and resource.team_ids & actor.admin_team_ids:
            return
        raise _hidden("user")
    if action is Action.ORG_MANAGE:
        if not actor.is_org_admin:
            raise _denied("Only organization owners and admins may do this.")
        return
    if action is Action.GRANT_OWNER:
        if actor.org_role != "owner":
            raise _denied("Only an organization owner may make or change an owner.")
        return
    raise AssertionError(f"unhandled action {action}")  # pragma: no cover


def check_sharing(actor: Actor, visibility: str, team_ids: frozenset[str], owning_team: str | None) -> None:
    """Who may share with whom: teams you belong to (org admins: any), the whole org only as
    an org admin or a team admin; an owning team you belong to."""
    if actor.is_org_admin:
        return
    if owning_team is not None and owning_team not in actor.teams:
        raise PermissionDenied("You can only assign an app to a team you belong to.", param="team_id", code="forbidden")
    foreign = sorted(team_ids - actor.teams.keys())
    if foreign:
        raise PermissionDenied(
            f"You can only share with teams you belong to; not a member of: {', '.join(foreign)}.",
            param="sharing.team_ids",
            code="forbidden",
        )
    if visibility == "org" and not actor.admin_team_ids:
        raise PermissionDenied(
            "Only org admins and team admins may share an app with the whole organization.",
            param="sharing.visibility",
            code="forbidden",
        )


def visible_apps_clause(actor: Actor) -> ColumnElement[bool]:
    """`can_run_app` as SQL over the apps table, for listings that agree with `authorize`."""
    in_org = App.org_id == actor.org_id
    if actor.app_key_app_id is not None:
        return and_(in_org, App.id == actor.app_key_app_id, App.published_version_id.is_not(None))
    if actor.is_org_admin:
        return in_org
    editable = or_(
        App.owner_id == actor.user_id,
        App.team_id.in_(actor.admin_team_ids) if actor.admin_team_ids else false(),
    )
    shared_with_my_teams = (
        App.id.in_(select(AppTeamShare.app_id).where(AppTeamShare.team_id.in_(list(actor.teams))))
        if actor.teams
        else false()
    )
    shared = and_(
        App.published_version_id.is_not(None),
        or_(App.visibility == "org", and_(App.visibility == "teams", shared_with_my_teams)),
    )
    return and_(in_org, or_(editable, shared))
