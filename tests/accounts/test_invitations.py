"""Invitations by link: who may invite whom, accepting once, expiry, withdrawal."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx
from sqlalchemy import update

from aiport.store.models import utcnow
from aiport.store.people import Invitation
from tests.apps.harness import World


def _email() -> str:
    return f"new-{secrets.token_hex(4)}@example.com"


def _accept(world: World, token: str, password: str = "a fine password") -> httpx.Response:
    with httpx.Client(base_url=world.gateway.url) as c:
        return c.post(f"/api/invitations/{token}/accept", json={"name": "New Person", "password": password})


def test_org_admin_invites_by_link_and_the_invitee_joins_the_team_logged_in(world: World) -> None:
    email = _email()
    with world.client("admin") as c:
        r = c.post("/api/invitations", json={"email": email, "team_id": world.team_a, "team_role": "admin"})
        assert r.status_code == 201, r.text
        invitation = r.json()
    token = invitation["token"]
    assert invitation["state"] == "open" and invitation["link"] == f"/invite/{token}"
    with httpx.Client(base_url=world.gateway.url) as anonymous:
        preview = anonymous.get(f"/api/invitations/{token}")
        assert preview.status_code == 200 and preview.json()["email"] == email and preview.json()["role"] == "member"
    joined = _accept(world, token)
    assert joined.status_code == 201, joined.text
    assert joined.json()["user"]["email"] == email and joined.json()["teams"][0]["role"] == "admin"
    assert "aiport_session" in joined.cookies
    again = _accept(world, token)  # a link works once
    assert again.status_code == 404 and again.json()["error"]["code"] == "invitation_not_found"
    with world.client("admin") as c:
        listed = {i["id"]: i for i in c.get("/api/invitations").json()["data"]}
        assert listed[invitation["id"]]["state"] == "accepted"
        assert "token" not in listed[invitation["id"]]
    with httpx.Client(base_url=world.gateway.url) as c:
        assert c.post("/api/auth/login", json={"email": email, "password": "a fine password"}).status_code == 200


def test_an_expired_link_is_refused_with_a_clear_message(world: World) -> None:
    with world.client("admin") as c:
        r = c.post("/api/invitations", json={"email": _email()})
    token, invitation_id = r.json()["token"], r.json()["id"]

    async def expire() -> None:
        async with world.gateway.runtime.sessions() as session, session.begin():
            await session.execute(
                update(Invitation)
                .where(Invitation.id == invitation_id)
                .values(expires_at=utcnow() - timedelta(minutes=1))
            )

    world.gateway.server.run(expire())
    r = _accept(world, token)
    assert r.status_code == 404 and r.json()["error"]["code"] == "invitation_expired"
    assert "expired" in r.json()["error"]["message"]
    with world.client("admin") as c:
        states = {i["id"]: i["state"] for i in c.get("/api/invitations").json()["data"]}
    assert states[invitation_id] == "expired"


def test_a_withdrawn_link_and_a_made_up_link_are_404(world: World) -> None:
    with world.client("admin") as c:
        r = c.post("/api/invitations", json={"email": _email()})
        assert c.delete(f"/api/invitations/{r.json()['id']}").json()["state"] == "revoked"
    assert _accept(world, r.json()["token"]).status_code == 404
    assert _accept(world, secrets.token_urlsafe(32)).status_code == 404


def test_team_admins_may_invite_members_into_their_own_team_only(world: World) -> None:
    with world.client("a_admin") as c:
        ok = c.post("/api/invitations", json={"email": _email(), "team_id": world.team_a})
        assert ok.status_code == 201
        other_team = c.post("/api/invitations", json={"email": _email(), "team_id": world.team_b})
        assert other_team.status_code == 404  # not their team: not even its existence
        org_wide = c.post("/api/invitations", json={"email": _email()})
        assert org_wide.status_code == 403
        as_admin = c.post("/api/invitations", json={"email": _email(), "team_id": world.team_a, "role": "admin"})
        assert as_admin.status_code == 403
        assert c.get("/api/invitations").status_code == 403


def test_members_may_not_invite_and_only_owners_invite_owners(world: World) -> None:
    with world.client("a_member") as c:
        assert c.post("/api/invitations", json={"email": _email(), "team_id": world.team_a}).status_code == 403
        assert c.post("/api/invitations", json={"email": _email()}).status_code == 403
    with world.client("admin") as c:
        r = c.post("/api/invitations", json={"email": _email(), "role": "owner"})
        assert r.status_code == 403 and "owner" in r.json()["error"]["message"]
        assert c.delete("/api/invitations/inv_doesnotexist").status_code == 404
    with world.client("owner") as c:
        assert c.post("/api/invitations", json={"email": _email(), "role": "owner"}).status_code == 201
    with world.client("admin") as c:
        invitation_id = c.get("/api/invitations").json()["data"][0]["id"]
    with world.client("stranger") as c:  # another org's owner cannot touch this org's invitations
        assert c.delete(f"/api/invitations/{invitation_id}").status_code == 404


def test_bad_invitation_input_names_the_field(world: World) -> None:
    with world.client("admin") as c:
        bad_email = c.post("/api/invitations", json={"email": "not-an-email"})
        assert bad_email.status_code == 422 and bad_email.json()["error"]["param"] == "email"
        bad_role = c.post("/api/invitations", json={"email": _email(), "role": "king"})
        assert bad_role.status_code == 422 and bad_role.json()["error"]["param"] == "role"
        taken = c.post("/api/invitations", json={"email": world.a_member.email})
        assert taken.status_code == 409 and taken.json()["error"]["param"] == "email"
    with world.client("admin") as c:
        token = c.post("/api/invitations", json={"email": _email()}).json()["token"]
    weak = _accept(world, token, password="short")
    assert weak.status_code == 422 and weak.json()["error"]["param"] == "password"
    assert _accept(world, token).status_code == 201  # the failed attempt did not use the link up
