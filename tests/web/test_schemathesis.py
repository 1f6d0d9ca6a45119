"""Property-based run of schemathesis over the /v1 OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Gateway
from tests.support.fuzz import assert_no_server_errors


def test_v1_never_answers_5xx(gateway: Gateway, tmp_path: Path) -> None:
    output = assert_no_server_errors(gateway.url, gateway.key, "^/v1/", tmp_path, examples=150, timeout=600)
    assert "/v1/chat/completions" in output
