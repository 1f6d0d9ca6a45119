"""Fixtures for knowledge tests: aiport (SQLite and PostgreSQL) with the echo upstream and
the agent model, and a fresh organization (tests.apps.harness.World) per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.harness import World, make_world
from tests.conftest import Gateway, start_gateway
from tests.knowledge.agent_model import AgentModel
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import create_database, drop_database
from tests.support.servers import ServerThread

FIXTURES = Path(__file__).parent.parent / "fixtures" / "knowledge"


@pytest.fixture(scope="session")
def agent_model() -> Iterator[AgentModel]:
    model = AgentModel()
    server = ServerThread(model.app).start()
    model.url = server.url
    yield model
    server.stop()


def start_knowledge_gateway(
    tmp: Path, upstream: str, agent_url: str, database_url: str | None, backend: str, **overrides: Any
) -> Gateway:
    return start_gateway(
        tmp,
        upstream,
        database_url,
        backend,
        extra_providers={"agentfake": {"kind": "openai_compat", "base_url": agent_url + "/v1", "api_key": "sk-x"}},
        extra_models=[{"name": "agent", "provider": "agentfake", "supports_tools": True, "max_output_tokens": 1000}],
        knowledge_max_upload_bytes=200_000,
        knowledge_max_chars=100_000,
        **overrides,
    )


@pytest.fixture(scope="session")
def kn_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI, agent_model: AgentModel
) -> Iterator[Gateway]:
    gw = start_knowledge_gateway(
        tmp_path_factory.mktemp("kn"),
        fake_upstream.url,
        agent_model.url,
        None,
        "sqlite",  # type: ignore[attr-defined]
    )
    yield gw
    gw.server.stop()


@pytest.fixture(scope="session")
def kn_pg_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI, agent_model: AgentModel
) -> Iterator[Gateway]:
    url, name = create_database()
    gw = start_knowledge_gateway(
        tmp_path_factory.mktemp("kn-pg"),
        fake_upstream.url,
        agent_model.url,
        url,
        "postgres",  # type: ignore[attr-defined]
    )
    yield gw
    gw.server.stop()
    drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def any_kn_gateway(request: pytest.FixtureRequest) -> Gateway:
    return request.getfixturevalue("kn_gateway" if request.param == "sqlite" else "kn_pg_gateway")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(kn_gateway: Gateway) -> World:
    return make_world(kn_gateway)


def upload(client: Any, collection_id: str, filename: str, data: bytes, **params: Any) -> Any:
    return client.post(
        f"/api/knowledge/collections/{collection_id}/documents", params={"filename": filename, **params}, content=data
    )
