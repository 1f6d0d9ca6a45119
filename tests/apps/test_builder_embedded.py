"""The natural-language builder with the embedded model (Gemma 3 270M, grammar-constrained
JSON): its drafts are rough, but the answer must be a valid, editable draft or a clear 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aiport.apps.definition import definition_errors
from aiport.config import Settings
from aiport.providers.local_model import MODELS_SUBDIR, ensure_bundled_model
from aiport.web.app import create_app
from tests.apps.harness import World, make_world
from tests.conftest import Gateway
from tests.support.servers import ServerThread

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def embedded_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    cache = request.config.cache
    data = Path(cache.mkdir("aiport-data")) if cache is not None else tmp_path_factory.mktemp("aiport-data")
    model_path = ensure_bundled_model(data / MODELS_SUBDIR)  # assembled once, shared with the provider tests
    tmp = tmp_path_factory.mktemp("embedded-builder")
    catalog = {
        "providers": {"local": {"kind": "local", "timeout_seconds": 600, "options": {"model_path": str(model_path)}}},
        "models": [
            {
                "name": "gemma-3-270m",
                "provider": "local",
                "context_window": 4096,
                "max_output_tokens": 512,  # as the default catalog: bounds the test to ~1 min on 2 cores
                "supports_json_schema": True,
            }
        ],
    }
    (tmp / "models.yaml").write_text(yaml.safe_dump(catalog))
    settings = Settings(
        data_dir=tmp, AIPORT_CONFIG=tmp / "models.yaml", local_threads=2, local_parallel=1, local_context=4096
    )
    server = ServerThread(create_app(settings)).start()
    try:
        yield make_world(Gateway(server=server, key="", backend="sqlite"))
    finally:
        server.stop()


def test_the_embedded_model_gives_a_valid_editable_draft_or_a_clear_error(embedded_world: World) -> None:
    with embedded_world.client("a_admin") as c:
        c.timeout = 1200
        r = c.post(
            "/api/apps/builder/draft",
            json={
                "description": "an app that turns meeting notes into a Korean summary with action items, formal tone"
            },
        )
        if r.status_code == 200:
            body = r.json()
            defn, errors = definition_errors(body["definition"])
            assert defn is not None and errors == []
            assert body["model"] == "gemma-3-270m" and 1 <= body["attempts"] <= 2
            saved = c.post("/api/apps", json={"definition": body["definition"]})  # editable: it saves as it is
            assert saved.status_code == 201, saved.text
            edited = c.patch(f"/api/apps/{defn.slug}", json={"definition": {"name": "Edited by a person"}})
            assert edited.status_code == 200
        else:
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] in ("draft_invalid", "draft_unparseable")
            assert "could not draft a valid app" in error["message"] and "Describe the app" in error["message"]
