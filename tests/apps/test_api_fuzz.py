"""Property-based run of schemathesis over the apps, conversations and people API: no input
may cause a 5xx. It runs as a fresh organization's owner, so whatever it creates or deletes
stays inside that organization."""

from __future__ import annotations

from pathlib import Path

from tests.apps.harness import World
from tests.support.fuzz import assert_no_server_errors


def test_apps_and_people_api_never_answer_5xx(world: World, tmp_path: Path) -> None:
    paths = "^/api/(apps|conversations|auth/me|users|teams|invitations|keys|usage)"
    output = assert_no_server_errors(world.gateway.url, world.owner.key, paths, tmp_path, examples=25)
    assert "/api/apps" in output
