from __future__ import annotations

from typing import Any

from tests.e2e.conftest import login, shot


def test_login_and_catalog(page: Any) -> None:
    page.goto("/ui/")
    assert "/ui/login" in page.url
    shot(page, "login")
    login(page)
    shot(page, "catalog")
    page.goto("/ui/apps/story-teller")
    shot(page, "app")
