"""People API for the UI and admins: users, teams, memberships, invitations, my API keys,
usage. Every rule lives in accounts.authz; handlers only ask it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.responses import Response

from aiport.accounts import invitations as inv
from aiport.accounts import people
from aiport.accounts.authz import Action, Actor, TeamAccess, UserAccess, authorize
from aiport.accounts.keys import create_key, key_view, list_keys, revoke_key
from aiport.accounts.sessions import create_session
from aiport.accounts.usage import usage_summary
from aiport.domain.errors import NotFound, Unprocessable
from aiport.store.models import ApiKey, Team, TeamMember, User, utcnow
from aiport.store.people import Invitation
from aiport.web.auth import current_actor, json_bytes, me_view, set_session_cookies
from aiport.web.v1 import runtime

router = APIRouter(prefix="/api", tags=["people"])

Name = Annotated[str, Field(min_length=1, max_length=200)]
Id = Annotated[str, Field(min_length=1, max_length=64)]


def _page(data: list[Any]) -> dict[str, Any]:
    return {"object": "list", "data": data}


# ---- users ------------------------------------------------------------------------------


@router.get("/users", summary="Users of the organization (org admins)")
async def get_users(request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.ORG_MANAGE)
    async with runtime(request).sessions() as session:
        users = (await session.execute(select(User).where(User.org_id == actor.org_id).order_by(User.email))).scalars()
        return _page([people.user_view(u) for u in users])


class UserCreate(BaseModel):
    email: Annotated[str, Field(max_length=320)]
    name: Name
    role: Literal["owner", "admin", "member"] = "member"
    password: Annotated[str, Field(max_length=1024)] | None = None


@router.post("/users", status_code=201, summary="Create a user directly (org admins); or invite them by link")
async def post_user(body: UserCreate, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.ORG_MANAGE)
    if body.role == "owner":
        authorize(actor, Action.GRANT_OWNER)
    async with runtime(request).sessions() as session, session.begin():
        user = await people.create_user(
            session, actor.org_id, email=body.email, name=body.name, role=body.role, password=body.password
        )
        return people.user_view(user)


async def _user_for(session: Any, actor: Actor, user_id: str, action: Action) -> User:
    user = await session.get(User, user_id[:64])
    if user is None:
        raise NotFound("No user with that id or slug.", code="user_not_found")
    teams = await people.user_team_ids(session, user.id)
    authorize(actor, action, UserAccess(user.org_id, user.id, teams))
    return user


@router.get("/users/{user_id}", summary="One user (org admins, or yourself)")
async def get_user(user_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        return people.user_view(await _user_for(session, actor, user_id, Action.USER_VIEW))


class UserPatch(BaseModel):
    name: Name | None = None
    role: Literal["owner", "admin", "member"] | None = None


@router.patch("/users/{user_id}", summary="Rename a user or change their org role (org admins)")
async def patch_user(user_id: str, body: UserPatch, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        user = await _user_for(session, actor, user_id, Action.USER_VIEW)
        authorize(actor, Action.ORG_MANAGE)
        if body.role is not None and body.role != user.role:
            if "owner" in (body.role, user.role):
                authorize(actor, Action.GRANT_OWNER)
            await people.set_role(session, user, body.role)
        if body.name is not None:
            user.name = body.name.strip()
        view = people.user_view(user)
    rt.keys.invalidate()  # cached keys carry the role
    return view


@router.post("/users/{user_id}/deactivate", summary="Deactivate: sessions and API keys stop working at once")
async def deactivate(user_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        user = await _user_for(session, actor, user_id, Action.USER_VIEW)
        authorize(actor, Action.ORG_MANAGE)
        if user.role == "owner":
            authorize(actor, Action.GRANT_OWNER)
        if user.id == actor.user_id:
            raise Unprocessable("You cannot deactivate yourself.", param="user_id")
        await people.deactivate_user(session, user)
        view = people.user_view(user)
    rt.keys.invalidate()
    return view


@router.post("/users/{user_id}/reactivate", summary="Let a deactivated user log in again (keys stay revoked)")
async def reactivate(user_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        user = await _user_for(session, actor, user_id, Action.USER_VIEW)
        authorize(actor, Action.ORG_MANAGE)
        user.is_active = True
        return people.user_view(user)


# ---- teams ------------------------------------------------------------------------------


@router.get("/teams", summary="Teams: all of them for org admins, your own for everyone else")
async def get_teams(request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.SELF)
    async with runtime(request).sessions() as session:
        query = select(Team).where(Team.org_id == actor.org_id).order_by(Team.slug)
        if not actor.is_org_admin:
            query = query.where(Team.id.in_(list(actor.teams) or [""]))
        teams = (await session.execute(query)).scalars()
        return _page([{**people.team_view(t), "my_role": actor.teams.get(t.id)} for t in teams])


class TeamCreate(BaseModel):
    name: Name
    slug: Annotated[str, Field(max_length=100)] | None = None


@router.post("/teams", status_code=201, summary="Create a team (org admins)")
async def post_team(body: TeamCreate, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.ORG_MANAGE)
    async with runtime(request).sessions() as session, session.begin():
        return people.team_view(await people.create_team(session, actor.org_id, name=body.name, slug=body.slug))


async def _team_for(session: Any, actor: Actor, team_id: str, action: Action) -> Team:
    team = await session.get(Team, team_id[:64])
    if team is None:
        raise NotFound("No team with that id or slug.", code="team_not_found")
    authorize(actor, action, TeamAccess(team.org_id, team.id))
    return team


@router.get("/teams/{team_id}", summary="A team and its members (its members and org admins)")
async def get_team(team_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        team = await _team_for(session, actor, team_id, Action.TEAM_VIEW)
        members = await people.team_members(session, team.id)
        return {
            **people.team_view(team),
            "members": [{**people.user_view(u), "team_role": role} for u, role in members],
        }


@router.delete("/teams/{team_id}", summary="Delete a team (org admins)")
async def delete_team(team_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        team = await _team_for(session, actor, team_id, Action.TEAM_VIEW)
        authorize(actor, Action.ORG_MANAGE)
        await session.delete(team)
    return {"id": team_id, "deleted": True}


class MemberPut(BaseModel):
    role: Literal["admin", "member"] = "member"


@router.put("/teams/{team_id}/members/{user_id}", summary="Add a member or change their team role")
async def put_member(team_id: str, user_id: str, body: MemberPut, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        team = await _team_for(session, actor, team_id, Action.TEAM_MANAGE)
        user = await people.find_user(session, actor.org_id, user_id[:64])
        member = await people.set_membership(session, team, user, body.role)
        return {"team_id": team.id, "user_id": user.id, "role": member.role}


@router.delete("/teams/{team_id}/members/{user_id}", summary="Remove a member from a team")
async def delete_member(team_id: str, user_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        team = await _team_for(session, actor, team_id, Action.TEAM_MANAGE)
        await people.remove_membership(session, team, user_id[:64])
    return {"team_id": team_id, "user_id": user_id, "removed": True}


# ---- invitations ------------------------------------------------------------------------


class InvitationCreate(BaseModel):
    email: Annotated[str, Field(max_length=320)]
    role: Literal["owner", "admin", "member"] = "member"
    team_id: Id | None = None
    team_role: Literal["admin", "member"] = "member"


@router.post("/invitations", status_code=201, summary="Invite by link (org admins; team admins into their team)")
async def post_invitation(body: InvitationCreate, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        if body.team_id is not None:
            await _team_for(session, actor, body.team_id, Action.TEAM_MANAGE)
        if body.team_id is None or body.role != "member":
            authorize(actor, Action.ORG_MANAGE)
        if body.role == "owner":
            authorize(actor, Action.GRANT_OWNER)
        token, row = await inv.create_invitation(
            session,
            actor.org_id,
            email=body.email,
            role=body.role,
            team_id=body.team_id,
            team_role=body.team_role,
            invited_by=actor.user_id,
            ttl_hours=rt.settings.invitation_ttl_hours,
        )
        view = inv.invitation_view(row)
    return {**view, "token": token, "link": f"/invite/{token}", "accept_url": f"/api/invitations/{token}/accept"}


@router.get("/invitations", summary="Invitations of the organization (org admins)")
async def get_invitations(request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.ORG_MANAGE)
    async with runtime(request).sessions() as session:
        query = select(Invitation).where(Invitation.org_id == actor.org_id).order_by(Invitation.id.desc())
        return _page([inv.invitation_view(i) for i in (await session.execute(query)).scalars()])


@router.delete("/invitations/{invitation_id}", summary="Withdraw an invitation (org admins)")
async def delete_invitation(invitation_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.ORG_MANAGE)
    async with runtime(request).sessions() as session, session.begin():
        row = await session.get(Invitation, invitation_id[:64])
        if row is None or row.org_id != actor.org_id:
            raise NotFound("No invitation with that id.", code="invitation_not_found")
        if row.revoked_at is None and row.accepted_at is None:
            row.revoked_at = utcnow()
        return inv.invitation_view(row)


@router.get("/invitations/{token}", summary="What an invitation link is for (public: the link is the secret)")
async def get_invitation(token: str, request: Request) -> dict[str, Any]:
    async with runtime(request).sessions() as session:
        return await inv.invitation_public_view(session, await inv.find_open_invitation(session, token))


class InvitationAccept(BaseModel):
    name: Name
    password: Annotated[str, Field(max_length=1024)]


@router.post("/invitations/{token}/accept", summary="Join with the invitation: creates the account and logs in")
async def accept_invitation(token: str, body: InvitationAccept, request: Request) -> Response:
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        user = await inv.accept_invitation(session, token, name=body.name, password=body.password)
        cookie, web = await create_session(session, user, ttl_hours=rt.settings.session_ttl_hours)
        out = await me_view(session, user, web, "session")
    response = Response(json_bytes(out), status_code=201, media_type="application/json")
    set_session_cookies(request, response, cookie, web)
    return response


# ---- my API keys --------------------------------------------------------------------------


@router.get("/keys", summary="My API keys (prefixes only)")
async def get_my_keys(request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.SELF)
    async with runtime(request).sessions() as session:
        return _page([key_view(k) for k in await list_keys(session, actor.org_id, actor.user_id)])


class KeyBody(BaseModel):
    name: Name


@router.post("/keys", status_code=201, summary="Create an API key for myself; the secret is shown only here")
async def post_my_key(body: KeyBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.SELF)
    async with runtime(request).sessions() as session, session.begin():
        user = await session.get(User, actor.user_id)
        assert user is not None
        created = await create_key(session, user, name=body.name)
        return {**key_view(created.key), "key": created.secret}


@router.delete("/keys/{key_id}", summary="Revoke one of my API keys (at once)")
async def delete_my_key(key_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.SELF)
    rt = runtime(request)
    async with rt.sessions() as session, session.begin():
        key = await session.get(ApiKey, key_id[:64])
        if key is None or key.user_id != actor.user_id:
            raise NotFound("No API key with that id.", code="key_not_found")
        view = key_view(await revoke_key(session, actor.org_id, key.id))
    rt.keys.invalidate()
    return view


# ---- usage ------------------------------------------------------------------------------


@router.get("/usage", summary="Tokens and cost by user, app and model: yours, your team's (team admins), or all")
async def get_usage(
    request: Request,
    team_id: str | None = None,
    user_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        user_ids: list[str] | None
        if team_id is not None:
            team = await _team_for(session, actor, team_id, Action.TEAM_USAGE)
            members = await session.execute(select(TeamMember.user_id).where(TeamMember.team_id == team.id))
            user_ids = list(members.scalars())
        elif user_id is not None:
            user_ids = [(await _user_for(session, actor, user_id, Action.USER_USAGE)).id]
        elif actor.is_org_admin:
            user_ids = None
        else:
            authorize(actor, Action.SELF)
            user_ids = [actor.user_id]
        summary = await usage_summary(session, actor.org_id, user_ids=user_ids, since=since, until=until)
    return {**summary, "scope": {"team_id": team_id, "user_id": user_id, "org": user_ids is None}}
