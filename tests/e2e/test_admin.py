"""Admin screens in the browser: an API key is shown once and works; quotas and teams are
set through the forms (which call the admin API)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Gateway
from tests.e2e.conftest import login, shot


def test_create_key_shows_it_once_and_it_works(page: Any, ui_gateway: Gateway) -> None:
    login(page)
    page.goto("/ui/admin/keys")
    page.get_by_label("Name").fill("ci robot")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    secret = page.locator("#secret-value").inner_text()
    assert secret.startswith("aip_")
    shot(page, "15-key-once")
    r = httpx.get(f"{ui_gateway.url}/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    dialog.get_by_role("button", name="Close").click()
    page.wait_for_load_state()
    page.get_by_role("cell", name="ci robot").wait_for()
    assert secret not in page.content()


def test_set_a_quota_and_create_a_team(page: Any) -> None:
    login(page)
    page.goto("/ui/admin/quotas")
    page.get_by_label("Scope").first.select_option("user")
    page.locator("#q-subject").select_option(label="Joon Kim")
    page.get_by_label("Limit").fill("12345")
    page.get_by_role("button", name="Set quota").click()
    page.get_by_role("cell", name="12345").wait_for()
    page.goto("/ui/admin/people")
    page.locator("#nt-name").fill("Research")
    page.get_by_role("button", name="Create team").click()
    page.get_by_role("cell", name="Research (research)").wait_for()
