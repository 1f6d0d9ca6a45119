"""Property-based run of schemathesis over the knowledge and traces API: no input may cause
a 5xx. It runs as a fresh organization's member, so whatever it creates stays there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.apps.harness import World


def test_knowledge_api_never_answers_5xx(world: World, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(exe),
        "run",
        f"{world.gateway.url}/openapi.json",
        "--url",
        world.gateway.url,
        "--include-path-regex",
        "^/api/(knowledge|traces)",
        "--checks",
        "not_a_server_error",
        "-H",
        f"Authorization: Bearer {world.a_member.key}",
        "--max-examples",
        os.environ.get("AIPORT_SCHEMATHESIS_EXAMPLES", "25"),
        "--seed",
        "1",
        "--request-timeout",
        "20",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "/api/knowledge" in result.stdout
