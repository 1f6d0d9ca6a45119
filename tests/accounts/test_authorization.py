"""Every denial, on SQLite and PostgreSQL: a resource you may not see is 404 (its existence
is not leaked: the answer equals the one for an id that does not exist), a resource you
may see but not change is 403. Rules live in accounts.authz; these tests go through HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.apps.harness import World, simple_app


@dataclass
class Scene:
    world: World
    ids: dict[str, str]


@pytest.fixture(scope="module")
def scene(any_world: World) -> Scene:
    w = any_world
    ids: dict[str, str] = {"team_a": w.team_a, "team_b": w.team_b}
    apps = [
        ("a_member", "private-app", {"visibility": "private"}, True),
        ("a_admin", "team-a-app", {"visibility": "teams", "team_ids": [w.team_a], "team_id": w.team_a}, True),
        ("admin", "org-app", {"visibility": "org"}, True),
        ("a_admin", "unpublished-app", {"visibility": "org", "team_id": w.team_a}, False),
    ]
    for who, slug, sharing, publish in apps:
        with w.client(who) as c:
            r = c.post("/api/apps", json={"definition": simple_app(slug), "sharing": sharing, "publish": publish})
            assert r.status_code == 201, r.text
    with w.client("a_member") as c:
        run = c.post("/api/apps/org-app/runs", json={"inputs": {"topic": "mine"}})
        assert run.status_code == 200, run.text
        ids["conv"] = run.json()["conversation_id"]
    with w.client("admin") as c:
        key = c.post("/api/apps/org-app/keys", json={"name": "bot"})
        assert key.status_code == 201
        ids["app_key"] = key.json()["key"]
        ids["app_key_id"] = key.json()["id"]
    with w.client("stranger") as c:
        r = c.post("/api/apps", json={"definition": simple_app("foreign-app"), "sharing": {"visibility": "org"},
                                      "publish": True})  # fmt: skip
        assert r.status_code == 201
        run = c.post("/api/apps/foreign-app/runs", json={"inputs": {"topic": "theirs"}})
        ids["foreign_conv"] = run.json()["conversation_id"]
        ids["foreign_team"] = c.post("/api/teams", json={"name": "Foreign team"}).json()["id"]
    with w.client("b_member") as c:
        ids["b_member_key_id"] = c.get("/api/keys").json()["data"][0]["id"]
    for name, person in w.people.items():
        ids[name] = person.id
    return Scene(w, ids)


def _call(scene: Scene, who: str, method: str, path: str, body: Any = None) -> Any:
    path = path.format(**scene.ids)
    key = scene.ids["app_key"] if who == "app_key" else scene.world.people[who].key
    with scene.world.gateway.client(key) as c:
        return c.request(method, path, json=body)


HIDDEN = [
    # who, method, path, body: each must be 404, like a resource that does not exist
    ("b_member", "GET", "/api/apps/private-app", None),
    ("a_admin", "GET", "/api/apps/private-app", None),  # a team admin does not see a member's private app
    ("b_member", "GET", "/api/apps/team-a-app", None),
    ("b_admin", "POST", "/api/apps/team-a-app/runs", {"inputs": {"topic": "x"}}),
    ("loner", "GET", "/api/apps/team-a-app/form", None),
    ("a_member", "GET", "/api/apps/unpublished-app", None),  # not published: only its editors see it
    ("b_member", "POST", "/api/apps/unpublished-app/runs", {"inputs": {"topic": "x"}}),
    ("stranger", "GET", "/api/apps/org-app", None),  # another organization's owner
    ("stranger", "PATCH", "/api/apps/org-app", {"definition": {"name": "mine"}}),
    ("app_key", "POST", "/api/apps/team-a-app/runs", {"inputs": {"topic": "x"}}),  # bound to org-app only
    ("a_member", "GET", "/api/apps/foreign-app", None),
    ("app_key", "PATCH", "/api/apps/team-a-app", {"definition": {"name": "x"}}),  # other apps: as if missing
    ("app_key", "GET", "/api/apps/team-a-app/versions", None),
    ("b_member", "GET", "/api/conversations/{conv}", None),  # someone else's conversation
    ("a_admin", "GET", "/api/conversations/{conv}", None),  # team admins don't read their members' chats
    ("b_member", "POST", "/api/conversations/{conv}/messages", {"message": "hi"}),
    ("b_member", "PATCH", "/api/conversations/{conv}", {"title": "mine now"}),
    ("b_member", "DELETE", "/api/conversations/{conv}", None),
    ("b_member", "POST", "/api/conversations/{conv}/stop", None),
    ("b_member", "POST", "/api/conversations/{conv}/clarifications/clr_x", {"choice": "c1"}),
    ("owner", "GET", "/api/conversations/{foreign_conv}", None),  # another org's conversation
    ("b_member", "GET", "/api/teams/{team_a}", None),  # not a member of that team
    ("loner", "GET", "/api/teams/{team_a}", None),
    ("owner", "GET", "/api/teams/{foreign_team}", None),
    ("owner", "PUT", "/api/teams/{foreign_team}/members/{owner}", {"role": "member"}),
    ("a_member", "GET", "/api/users/{b_member}", None),
    ("a_admin", "GET", "/api/users/{b_member}", None),
    ("owner", "GET", "/api/users/{stranger}", None),
    ("a_admin", "GET", "/api/usage?user_id={b_member}", None),  # not in a team they administer
    ("a_member", "GET", "/api/usage?user_id={a_admin}", None),
    ("b_admin", "GET", "/api/usage?team_id={team_a}", None),
    ("a_member", "GET", "/api/conversations?user_id={b_member}", None),
    ("a_admin", "PUT", "/api/teams/{team_b}/members/{a_member}", {"role": "member"}),
    ("a_admin", "DELETE", "/api/teams/{team_b}/members/{b_member}", None),
    ("b_member", "POST", "/api/conversations/{conv}/regenerate", {}),
    ("a_member", "DELETE", "/api/keys/{b_member_key_id}", None),  # someone else's personal key
    ("owner", "DELETE", "/api/keys/{b_member_key_id}", None),  # /api/keys is "my keys", even for owners
]

FORBIDDEN = [
    # visible, but not the caller's to change: 403
    ("a_member", "PATCH", "/api/apps/team-a-app", {"definition": {"name": "x"}}),  # runs it, may not edit
    ("a_member", "POST", "/api/apps/team-a-app/publish", None),
    ("b_member", "PATCH", "/api/apps/org-app", {"definition": {"name": "x"}}),
    ("b_admin", "DELETE", "/api/apps/org-app", None),
    ("a_member", "GET", "/api/apps/org-app/versions", None),
    ("a_member", "POST", "/api/apps/org-app/rollback", {"version": 1}),
    ("a_member", "POST", "/api/apps/org-app/keys", {"name": "mine"}),
    ("a_member", "POST", "/api/apps/org-app/runs", {"inputs": {"topic": "x"}, "draft": True}),  # test runs: editors
    ("a_member", "GET", "/api/apps/org-app/form?draft=true", None),
    ("admin", "PATCH", "/api/conversations/{conv}", {"title": "admin's now"}),  # admins read, never write
    ("admin", "DELETE", "/api/conversations/{conv}", None),
    ("admin", "POST", "/api/conversations/{conv}/messages", {"message": "hi"}),
    ("a_member", "PUT", "/api/teams/{team_a}/members/{loner}", {"role": "member"}),
    ("a_member", "DELETE", "/api/teams/{team_a}/members/{a_admin}", None),
    ("a_member", "GET", "/api/usage?team_id={team_a}", None),
    ("a_admin", "DELETE", "/api/teams/{team_a}", None),
    ("a_admin", "POST", "/api/teams", {"name": "New team"}),
    ("a_member", "GET", "/api/users", None),
    ("a_member", "POST", "/api/users", {"email": "x@example.com", "name": "x"}),
    ("a_member", "PATCH", "/api/users/{a_member}", {"role": "admin"}),  # no self-promotion
    ("a_admin", "POST", "/api/users/{a_member}/deactivate", None),
    ("admin", "PATCH", "/api/users/{a_member}", {"role": "owner"}),  # only owners make owners
    ("admin", "PATCH", "/api/users/{owner}", {"role": "member"}),
    ("admin", "POST", "/api/users/{owner}/deactivate", None),
    ("admin", "POST", "/api/users", {"email": "y@example.com", "name": "y", "role": "owner"}),
    ("a_member", "GET", "/api/admin/logs", None),
    ("app_key", "GET", "/api/admin/logs", None),  # an admin's app key carries no admin rights
    ("app_key", "GET", "/api/keys", None),
    ("app_key", "POST", "/api/apps", {"definition": simple_app("by-key")}),
    ("app_key", "GET", "/api/conversations", None),
    ("app_key", "GET", "/api/users", None),
    ("app_key", "POST", "/api/auth/password", {"current_password": "x", "new_password": "y" * 10}),
    ("app_key", "PATCH", "/api/apps/org-app", {"definition": {"name": "x"}}),
    ("app_key", "GET", "/api/usage", None),
    ("app_key", "GET", "/api/teams", None),
    ("app_key", "POST", "/api/apps/builder/draft", {"description": "a tweet writer"}),
    ("a_member", "GET", "/api/apps/org-app/keys", None),
    ("a_member", "DELETE", "/api/apps/org-app/keys/{app_key_id}", None),
    ("a_member", "GET", "/api/apps/org-app/versions/1", None),
    ("a_admin", "POST", "/api/users/{a_member}/reactivate", None),
    ("a_admin", "PATCH", "/api/users/{a_member}", {"name": "renamed"}),
    ("app_key", "POST", "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
    # sharing: only with your own teams; the whole org only as an org or team admin
    ("a_member", "POST", "/api/apps", {"definition": simple_app("share-b"), "sharing": {"visibility": "teams", "team_ids": ["{team_b}"]}}),
    ("a_member", "POST", "/api/apps", {"definition": simple_app("share-org"), "sharing": {"visibility": "org"}}),
    ("a_member", "POST", "/api/apps", {"definition": simple_app("own-b"), "sharing": {"team_id": "{team_b}"}}),
    ("loner", "PATCH", "/api/apps/private-app", {"definition": {"name": "x"}}),  # hidden first: see HIDDEN
]  # fmt: skip
FORBIDDEN.pop()  # (kept above as a reminder: hidden wins over forbidden)


def _fill(body: Any, ids: dict[str, str]) -> Any:
    if isinstance(body, dict):
        return {k: _fill(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill(v, ids) for v in body]
    return body.format(**ids) if isinstance(body, str) and "{" in body and "{{" not in body else body


@pytest.mark.parametrize(("who", "method", "path", "body"), HIDDEN, ids=lambda v: str(v)[:40])
def test_hidden_resources_are_404_like_missing_ones(scene: Scene, who: str, method: str, path: str, body: Any) -> None:
    r = _call(scene, who, method, path, _fill(body, scene.ids))
    assert r.status_code == 404, (who, method, path, r.status_code, r.text)
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"].endswith("not_found")
    # the same answer as for something that does not exist at all
    twin = re.sub(r"\{\w+\}", "zz_doesnotexist", re.sub(r"[a-z-]+-app\b", "no-such-app", path))
    missing = _call(scene, who, method, twin, _fill(body, scene.ids))
    assert (missing.status_code, missing.json()["error"]["message"]) == (404, error["message"]), twin


@pytest.mark.parametrize(("who", "method", "path", "body"), FORBIDDEN, ids=lambda v: str(v)[:40])
def test_visible_but_not_yours_to_change_is_403(scene: Scene, who: str, method: str, path: str, body: Any) -> None:
    r = _call(scene, who, method, path, _fill(body, scene.ids))
    assert r.status_code == 403, (who, method, path, r.status_code, r.text)
    assert r.json()["error"]["type"] == "permission_error"


def test_allowed_counterparts_succeed(scene: Scene) -> None:
    """The denials above are about who asks, not broken endpoints: the right person gets 200."""
    allowed = [
        ("a_member", "GET", "/api/apps/private-app"),
        ("admin", "GET", "/api/apps/private-app"),  # org admins see everything
        ("a_member", "GET", "/api/apps/team-a-app"),
        ("a_admin", "GET", "/api/apps/unpublished-app"),
        ("b_member", "GET", "/api/apps/org-app"),
        ("admin", "GET", "/api/conversations/{conv}"),  # org admins may read (audit), not write
        ("a_member", "GET", "/api/conversations/{conv}"),
        ("a_member", "GET", "/api/teams/{team_a}"),
        ("a_admin", "GET", "/api/usage?team_id={team_a}"),
        ("a_admin", "GET", "/api/usage?user_id={a_member}"),  # team admins see their team's usage
        ("admin", "GET", "/api/usage"),
        ("a_member", "GET", "/api/users/{a_member}"),
        ("admin", "GET", "/api/apps/team-a-app/versions"),
        ("a_admin", "GET", "/api/apps/team-a-app/versions"),
        ("app_key", "GET", "/api/apps/org-app"),
        ("admin", "GET", "/api/admin/logs"),
    ]
    for who, method, path in allowed:
        r = _call(scene, who, method, path)
        assert r.status_code == 200, (who, path, r.text)
    r = _call(scene, "app_key", "POST", "/api/apps/org-app/runs", {"inputs": {"topic": "bot"}})
    assert r.status_code == 200, r.text


def test_listings_agree_with_the_rules(scene: Scene) -> None:
    def slugs(who: str) -> set[str]:
        return {a["slug"] for a in _call(scene, who, "GET", "/api/apps").json()["data"]}

    assert slugs("a_member") >= {"private-app", "team-a-app", "org-app"}
    assert "unpublished-app" not in slugs("a_member")
    assert {"private-app", "team-a-app", "unpublished-app", "foreign-app"}.isdisjoint(slugs("b_member"))
    assert "org-app" in slugs("b_member")
    assert {"team-a-app", "unpublished-app", "org-app"} <= slugs("a_admin") and "private-app" not in slugs("a_admin")
    assert {"private-app", "team-a-app", "org-app", "unpublished-app"} <= slugs("admin")
    assert slugs("app_key") == {"org-app"}
    assert "foreign-app" not in slugs("owner")
    teams = {t["id"] for t in _call(scene, "a_member", "GET", "/api/teams").json()["data"]}
    assert teams == {scene.ids["team_a"]}
    mine = _call(scene, "b_member", "GET", "/api/conversations").json()["data"]
    assert scene.ids["conv"] not in {c["id"] for c in mine}
    audited = _call(scene, "admin", "GET", "/api/conversations?user_id={a_member}").json()["data"]
    assert scene.ids["conv"] in {c["id"] for c in audited}


def test_an_app_key_cannot_be_revoked_through_another_app(scene: Scene) -> None:
    """An editor of one app cannot reach another app's keys through it (404 for that app)."""
    r = _call(scene, "a_admin", "DELETE", "/api/apps/team-a-app/keys/{app_key_id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "key_not_found"
    assert _call(scene, "app_key", "GET", "/api/apps/org-app").status_code == 200  # still valid
