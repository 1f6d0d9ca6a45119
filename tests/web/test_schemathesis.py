"""Property-based run of schemathesis over the /v1 OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Gateway


def test_v1_never_answers_5xx(gateway: Gateway, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(exe),
        "run",
        f"{gateway.url}/openapi.json",
        "--url",
        gateway.url,
        "--include-path-regex",
        "^/v1/",
        "--checks",
        "not_a_server_error",
        "-H",
        f"Authorization: Bearer {gateway.key}",
        "--max-examples",
        os.environ.get("AIPORT_SCHEMATHESIS_EXAMPLES", "150"),
        "--seed",
        "1",
        "--request-timeout",
        "20",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "/v1/chat/completions" in result.stdout
