"""Who may see and change a collection, in one place (the knowledge side of accounts.authz).

A member retrieves only from collections shared with them: their own private ones, their
teams', and the org's. Hidden collections answer 404 (existence is not leaked); visible
ones the caller may not change answer 403. An app-bound API key sees no collection by
itself: an app's retrieval runs with the caller's access, intersected with the app's list.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_

from aiport.accounts.authz import Actor
from aiport.domain.errors import NotFound, PermissionDenied
from aiport.store.knowledge import Collection

VISIBILITIES = ("private", "team", "org")


def can_view(actor: Actor, col: Collection) -> bool:
    if actor.org_id != col.org_id or actor.app_key_app_id is not None:
        return False
    if actor.is_org_admin or col.owner_id == actor.user_id:
        return True
    if col.visibility == "org":
        return True
    return col.visibility == "team" and col.team_id is not None and col.team_id in actor.teams


def can_upload(actor: Actor, col: Collection) -> bool:
    """Owners and org admins; for a team collection every team member; for the org's, admins."""
    if not can_view(actor, col):
        return False
    if actor.is_org_admin or col.owner_id == actor.user_id:
        return True
    return col.visibility == "team" and col.team_id in actor.teams


def can_manage(actor: Actor, col: Collection) -> bool:
    if not can_view(actor, col):
        return False
    return actor.is_org_admin or col.owner_id == actor.user_id or actor.is_team_admin(col.team_id)


def hidden() -> NotFound:
    return NotFound("No collection with that id.", param="collection_id", code="collection_not_found")


def require(actor: Actor, col: Collection | None, action: str = "view") -> Collection:
    """The collection if `actor` may do `action` ("view" | "upload" | "manage") on it."""
    if col is None or not can_view(actor, col):
        raise hidden()
    if action == "upload" and not can_upload(actor, col):
        raise PermissionDenied("You may read this collection but not add to it.", code="forbidden")
    if action == "manage" and not can_manage(actor, col):
        raise PermissionDenied(
            "Only the collection's owner, its team's admins and org admins may change it.", code="forbidden"
        )
    return col


def visible_clause(actor: Actor) -> ColumnElement[bool]:
    """`can_view` as SQL, for listings and for retrieval across "everything I can see"."""
    if actor.app_key_app_id is not None:
        return false()
    in_org = Collection.org_id == actor.org_id
    if actor.is_org_admin:
        return in_org
    mine = Collection.owner_id == actor.user_id
    org_wide = Collection.visibility == "org"
    teams = and_(Collection.visibility == "team", Collection.team_id.in_(list(actor.teams))) if actor.teams else false()
    return and_(in_org, or_(mine, org_wide, teams))
