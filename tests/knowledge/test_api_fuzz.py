"""Property-based run of schemathesis over the knowledge and traces API: no input may cause
a 5xx. It runs as a fresh organization's member, so whatever it creates stays there."""

from __future__ import annotations

from pathlib import Path

from tests.apps.harness import World
from tests.support.fuzz import assert_no_server_errors


def test_knowledge_api_never_answers_5xx(world: World, tmp_path: Path) -> None:
    paths = "^/api/(knowledge|traces)"
    output = assert_no_server_errors(world.gateway.url, world.a_member.key, paths, tmp_path, examples=25)
    assert "/api/knowledge" in output
