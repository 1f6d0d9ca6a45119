"""Run the schemathesis CLI over part of aiport's OpenAPI schema: no generated input may cause a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def assert_no_server_errors(
    base_url: str, key: str, path_regex: str, report_dir: Path, *, examples: int, timeout: int = 900
) -> str:
    """Fuzz the operations whose path matches `path_regex` as the holder of `key`; return the CLI output.

    AIPORT_SCHEMATHESIS_EXAMPLES overrides `examples` (more for a deep local run)."""
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{base_url}/openapi.json",
        "--url",
        base_url,
        "--include-path-regex",
        path_regex,
        "--checks",
        "not_a_server_error",
        "-H",
        f"Authorization: Bearer {key}",
        "--max-examples",
        os.environ.get("AIPORT_SCHEMATHESIS_EXAMPLES", str(examples)),
        "--seed",
        "1",
        "--request-timeout",
        "20",
        "--report-junit-path",
        str(report_dir / "junit.xml"),
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout
