"""Usage from the audit log: members see their own, team admins their team's members, org
admins everyone's; the numbers are the real calls."""

from __future__ import annotations

from typing import Any

from tests.apps.harness import World, simple_app


def _calls(usage: dict[str, Any], user_id: str) -> int:
    return sum(row["calls"] for row in usage["data"] if row["user_id"] == user_id)


def test_usage_is_scoped_by_role(world: World) -> None:
    with world.client("admin") as c:
        r = c.post(
            "/api/apps", json={"definition": simple_app("metered"), "publish": True, "sharing": {"visibility": "org"}}
        )
        app_id = r.json()["id"]
    for who, runs in (("a_member", 2), ("b_member", 1)):
        with world.client(who) as c:
            for _ in range(runs):
                assert c.post("/api/apps/metered/runs", json={"inputs": {"topic": who}}).status_code == 200
    world.gateway.flush()
    with world.client("a_admin") as c:
        team = c.get("/api/usage", params={"team_id": world.team_a}).json()
    assert _calls(team, world.a_member.id) == 2 and _calls(team, world.b_member.id) == 0
    row = next(r for r in team["data"] if r["user_id"] == world.a_member.id)
    assert row["app_id"] == app_id and row["model"] == "echo" and row["total_tokens"] > 0
    assert team["totals"]["calls"] == sum(r["calls"] for r in team["data"])
    with world.client("b_member") as c:
        own = c.get("/api/usage").json()
    assert own["scope"]["org"] is False and {r["user_id"] for r in own["data"]} == {world.b_member.id}
    with world.client("admin") as c:
        everyone = c.get("/api/usage").json()
    assert everyone["scope"]["org"] is True
    assert _calls(everyone, world.a_member.id) == 2 and _calls(everyone, world.b_member.id) == 1
