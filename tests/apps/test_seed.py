"""The demo organization ships useful apps: valid, published, shared org-wide, runnable by
any demo member, and seeded once (a second seed does not duplicate or resurrect them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiport.accounts.demo import seed_demo
from aiport.apps.definition import definition_errors
from aiport.apps.seed import SEED_APPS
from aiport.config import Settings
from aiport.web.app import create_app
from tests.apps.harness import DEMO_PASSWORD, login
from tests.conftest import Gateway, write_catalog
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import ServerThread, free_port

SAMPLE_INPUTS: dict[str, dict[str, Any]] = {
    "meeting-notes": {"notes": "Mina: ship Friday. Joon owns the release notes.", "language": "Korean"},
    "email-writer": {"situation": "Decline the Tuesday meeting politely.", "tone": "formal", "length": "short"},
    "translator": {"text": "안녕하세요", "direction": "Korean → English"},
    "prompt-builder": {},
    "faq-bot": {},
}


def test_seed_definitions_are_valid_and_cover_the_promised_apps() -> None:
    assert [a["slug"] for a in SEED_APPS] == list(SAMPLE_INPUTS)
    for app in SEED_APPS:
        defn, errors = definition_errors(app)
        assert defn is not None and errors == [], (app["slug"], errors)
    email = next(a for a in SEED_APPS if a["slug"] == "email-writer")
    assert {v["name"] for v in email["variables"]} >= {"tone", "length"}
    translator = next(a for a in SEED_APPS if a["slug"] == "translator")
    assert any("Korean" in o and "English" in o for o in translator["variables"][0]["options"])


@pytest.mark.parametrize("slug", list(SAMPLE_INPUTS))
def test_every_demo_member_can_run_the_seed_apps(apps_gateway: Gateway, slug: str) -> None:
    member = login(apps_gateway, "joon@demo.aiport.local", DEMO_PASSWORD)
    listed = {a["slug"]: a for a in member.get("/api/apps").json()["data"]}
    assert listed[slug]["published_version"]["number"] == 1 and listed[slug]["sharing"]["visibility"] == "org"
    assert listed[slug]["can_edit"] is False
    message = None if SAMPLE_INPUTS[slug] else "How do I get an API key?"
    r = member.post(f"/api/apps/{slug}/runs", json={"inputs": SAMPLE_INPUTS[slug], "message": message})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "complete" and r.json()["output"].startswith("echo: ")
    assert r.json()["model"] in ("echo", "strong-echo")  # `auto` went through the smart router
    member.close()


def test_chat_seed_apps_open_with_a_greeting_and_suggestions(apps_gateway: Gateway) -> None:
    with apps_gateway.client() as c:
        faq = c.get("/api/apps/faq-bot").json()["definition"]
    assert faq["opening_message"] and faq["suggested_questions"] and faq["kind"] == "chat"


def test_seeding_again_creates_nothing_twice(apps_gateway: Gateway) -> None:
    rt = apps_gateway.runtime

    async def again() -> bool:
        async with rt.sessions() as session, session.begin():
            return (await seed_demo(session)).created

    assert apps_gateway.server.run(again()) is False
    with apps_gateway.client() as c:
        slugs = [a["slug"] for a in c.get("/api/apps").json()["data"]]
    assert sorted(s for s in slugs if s in SAMPLE_INPUTS) == sorted(SAMPLE_INPUTS)


def test_the_cli_seed_ships_the_apps_in_a_fresh_install(tmp_path: Path, fake_upstream: FakeOpenAI) -> None:
    """`aiport seed-demo` (what `aiport serve` runs on first start) in its own process."""
    catalog = write_catalog(tmp_path / "m.yaml", fake_upstream.url)  # type: ignore[attr-defined]
    env = {**os.environ, "AIPORT_DATA_DIR": str(tmp_path), "AIPORT_CONFIG": str(catalog),
           "AIPORT_DEMO_PASSWORD": DEMO_PASSWORD}  # fmt: skip
    env.pop("AIPORT_DATABASE_URL", None)
    aiport = str(Path(sys.executable).parent / "aiport")
    done = subprocess.run([aiport, "seed-demo", "--key-file", str(tmp_path / "key")], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = Settings(data_dir=tmp_path, AIPORT_CONFIG=catalog)
    with ServerThread(create_app(settings), port=free_port()) as server:
        gateway = Gateway(server=server, key=(tmp_path / "key").read_text().strip(), backend="sqlite")
        member = login(gateway, "sara@demo.aiport.local", DEMO_PASSWORD)
        slugs = {a["slug"] for a in member.get("/api/apps").json()["data"]}
        member.close()
    assert slugs == set(SAMPLE_INPUTS)
