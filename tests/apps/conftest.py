"""Fixtures for apps tests: `apps_gateway` (SQLite), `apps_pg_gateway`, the scripted model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.apps.harness import World, make_world, start_apps_gateway
from tests.apps.scripted_model import ScriptedModel
from tests.conftest import Gateway
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import create_database, drop_database
from tests.support.servers import ServerThread


@pytest.fixture(scope="session")
def scripted() -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    server = ServerThread(model.app).start()
    model.url = server.url
    yield model
    server.stop()


@pytest.fixture(scope="session")
def apps_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI, scripted: ScriptedModel
) -> Iterator[Gateway]:
    gw = start_apps_gateway(tmp_path_factory.mktemp("apps"), fake_upstream.url, scripted.url, None, "sqlite")  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()


@pytest.fixture(scope="session")
def apps_pg_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI, scripted: ScriptedModel
) -> Iterator[Gateway]:
    url, name = create_database()
    gw = start_apps_gateway(tmp_path_factory.mktemp("apps-pg"), fake_upstream.url, scripted.url, url, "postgres")  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()
    drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def any_apps_gateway(request: pytest.FixtureRequest) -> Gateway:
    return request.getfixturevalue("apps_gateway" if request.param == "sqlite" else "apps_pg_gateway")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(apps_gateway: Gateway) -> World:
    return make_world(apps_gateway)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def any_world(request: pytest.FixtureRequest) -> World:
    """A fresh organization on each database: authorization and runs must agree on both."""
    gateway = request.getfixturevalue("apps_gateway" if request.param == "sqlite" else "apps_pg_gateway")
    return make_world(gateway)
