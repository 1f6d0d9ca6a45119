"""An aiport for apps and people tests: the shared fake upstream plus the scripted model in
its catalog, and `World`, a fresh organization per test module with one person per role."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aiport.accounts.keys import create_key
from aiport.accounts.people import create_team, create_user, set_membership
from aiport.store.models import Org
from tests.conftest import Gateway, start_gateway

PASSWORD = "correct horse battery"
DEMO_PASSWORD = "demo-password-123"


def start_apps_gateway(
    tmp: Path, upstream_url: str, scripted_url: str, database_url: str | None, backend: str
) -> Gateway:
    return start_gateway(
        tmp,
        upstream_url,
        database_url,
        backend,
        extra_providers={"scripted": {"kind": "openai_compat", "base_url": scripted_url + "/v1", "api_key": "sk-x"}},
        extra_models=[
            {"name": "scripted", "provider": "scripted", "supports_json_schema": True, "max_output_tokens": 4000},
            {"name": "scripted-plain", "provider": "scripted", "max_output_tokens": 1000},
        ],
        demo_password=DEMO_PASSWORD,
        login_max_failures=3,
    )


@dataclass
class Person:
    id: str
    email: str
    key: str
    password: str = PASSWORD


@dataclass
class World:
    """A fresh org: owner, admin, team A (admin + member), team B (admin + member), a member
    in no team; and a stranger in another org."""

    gateway: Gateway
    org_id: str
    team_a: str
    team_b: str
    people: dict[str, Person] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Person:
        people = self.__dict__.get("people", {})
        if name in people:
            return people[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    def client(self, who: str) -> httpx.Client:
        return self.gateway.client(self.people[who].key)

    def as_(self, who: str) -> httpx.Client:
        return self.client(who)


_ROLES = {
    # name: (org role, team, team role)
    "owner": ("owner", None, None),
    "admin": ("admin", None, None),
    "a_admin": ("member", "a", "admin"),
    "a_member": ("member", "a", "member"),
    "b_admin": ("member", "b", "admin"),
    "b_member": ("member", "b", "member"),
    "loner": ("member", None, None),
}


def make_world(gateway: Gateway) -> World:
    rt = gateway.runtime
    tag = secrets.token_hex(3)

    async def build() -> World:
        async with rt.sessions() as session, session.begin():
            org = Org(name=f"Org {tag}", slug=f"org-{tag}")
            other = Org(name=f"Other {tag}", slug=f"other-{tag}")
            session.add_all([org, other])
            await session.flush()
            teams = {t: await create_team(session, org.id, name=f"Team {t} {tag}") for t in ("a", "b")}
            world = World(gateway=gateway, org_id=org.id, team_a=teams["a"].id, team_b=teams["b"].id)
            members = {**_ROLES, "stranger": ("owner", None, None)}
            for name, (role, team, team_role) in members.items():
                user = await create_user(
                    session,
                    other.id if name == "stranger" else org.id,
                    email=f"{name}-{tag}@example.com",
                    name=name,
                    role=role,
                    password=PASSWORD,
                )
                if team is not None and team_role is not None:
                    await set_membership(session, teams[team], user, team_role)
                key = (await create_key(session, user, name="test")).secret
                world.people[name] = Person(user.id, user.email, key)
            return world

    return gateway.server.run(build())  # type: ignore[no-any-return]


def simple_app(slug: str, **overrides: Any) -> dict[str, Any]:
    """A small generator app with a select, a number and a toggle, on the echo model."""
    definition: dict[str, Any] = {
        "name": f"App {slug}",
        "slug": slug,
        "kind": "generator",
        "model": "echo",
        "variables": [
            {"name": "topic", "label": "Topic", "type": "short_text", "required": True},
            {"name": "tone", "label": "Tone", "type": "select", "options": ["formal", "casual"], "default": "formal"},
            {"name": "words", "label": "Words", "type": "number", "min": 10, "max": 500, "integer": True},
            {"name": "emoji", "label": "Emoji", "type": "toggle", "default": False},
        ],
        "system_prompt": "Write in a {{ tone }} tone{% if words %}, about {{ words }} words{% endif %}.",
        "prompt_template": "Topic: {{ topic }}{% if emoji %} (with emoji){% endif %}",
    }
    definition.update(overrides)
    return definition


def login(gateway: Gateway, email: str, password: str = PASSWORD) -> httpx.Client:
    """A browser-like client: logged in with the session cookie, sending the CSRF header."""
    client = httpx.Client(base_url=gateway.url, timeout=30)
    r = client.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    client.headers["x-csrf-token"] = r.json()["csrf_token"]
    return client


def audit_record(world: World, request_id: str) -> dict[str, Any]:
    """The one audit row of a request, read as the org's owner through the admin API."""
    world.gateway.flush()
    with world.client("owner") as c:
        rows = [
            r for r in c.get("/api/admin/logs", params={"limit": 500}).json()["data"] if r["request_id"] == request_id
        ]
        assert len(rows) == 1, rows
        return dict(c.get(f"/api/admin/logs/{rows[0]['id']}").json())
