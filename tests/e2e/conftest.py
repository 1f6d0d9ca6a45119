"""Browser tests: Debian's Chromium driven by Playwright for Python against aiport served by
uvicorn in a thread, with the fake OpenAI upstream (its `fake-slowstream` model types 50
words 100 ms apart, so a test can watch an answer grow and stop it).

Chromium comes from Debian (`apt-get install -y chromium fonts-noto-cjk`); nothing is ever
downloaded. Without /usr/bin/chromium the tests skip locally and fail under CI=true."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, start_gateway
from tests.support.fake_openai import FakeOpenAI

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DEMO_PASSWORD = "demo-password-e2e"
ADMIN_EMAIL = "admin@demo.aiport.local"

GUIDED_APP: dict[str, Any] = {
    "name": "Story teller",
    "slug": "story-teller",
    "description": "Writes a story in the tone and length you pick.",
    "icon": "📖",
    "kind": "generator",
    "model": "slowstream",
    "variables": [
        {"name": "topic", "label": "Topic", "type": "short_text", "required": True, "help": "What the story is about."},
        {"name": "tone", "label": "Tone", "type": "select", "options": ["cheerful", "formal"], "default": "cheerful"},
        {"name": "length", "label": "Length", "type": "number", "min": 1, "max": 10, "integer": True, "default": 3},
        {"name": "moral", "label": "End with a moral", "type": "toggle", "default": False},
    ],
    "system_prompt": "Tell a {{ tone }} story of {{ length }} paragraphs.",
    "prompt_template": "A story about {{ topic }}.",
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        reason = "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium fonts-noto-cjk)"
        if _in_ci():
            pytest.fail(reason + " — CI=true: the browser tests must run")
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def ui_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI, chromium_path: str
) -> Iterator[Gateway]:
    from aiport.accounts.demo import seed_demo

    gw = start_gateway(tmp_path_factory.mktemp("ui"), fake_upstream.url, None, "sqlite")  # type: ignore[attr-defined]

    async def set_password() -> None:
        async with gw.runtime.sessions() as session, session.begin():
            await seed_demo(session, password=DEMO_PASSWORD, reset_password=True)

    gw.server.run(set_password())
    with gw.client() as c:
        r = c.post("/api/apps", json={"definition": GUIDED_APP, "sharing": {"visibility": "org"}, "publish": True})
        assert r.status_code == 201, r.text
    yield gw
    gw.server.stop()


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Any]:
    """Package scope: Playwright's sync API keeps an event loop running in this thread while
    it is alive, so it must be gone before the suite's asyncio tests run again."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, ui_gateway: Gateway) -> Iterator[Any]:
    context = browser.new_context(
        base_url=ui_gateway.url, viewport={"width": 1360, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(20_000)  # a shared 2-core CI machine can be slow
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def login(page: Any, email: str = ADMIN_EMAIL, password: str = DEMO_PASSWORD) -> None:
    page.goto("/ui/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/")


def publish_app(client: httpx.Client, definition: dict[str, Any]) -> None:
    """Publish an app for the whole organization, once per test session."""
    if client.get(f"/api/apps/{definition['slug']}").status_code == 404:
        r = client.post("/api/apps", json={"definition": definition, "sharing": {"visibility": "org"}, "publish": True})
        assert r.status_code == 201, r.text


def send_message(page: Any, slug: str, text: str) -> None:
    """Open the app's chat and send `text` from the keyboard."""
    page.goto(f"/ui/apps/{slug}")
    page.get_by_label("Message").fill(text)
    page.keyboard.press("Enter")


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def api(gw: Gateway) -> httpx.Client:
    return gw.client()
