"""Shared fixtures: a fake upstream, and aiport itself served over real HTTP on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aiport.config import Settings
from aiport.web.app import create_app
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import create_database, drop_database
from tests.support.servers import ServerThread

FAKE_MODELS = {
    # aiport model name: (upstream model, extra config)
    "echo": (
        "fake-echo",
        {"price": {"input_per_million": 1.0, "output_per_million": 2.0}, "supports_json_schema": True},
    ),
    "tools": ("fake-tools", {"supports_tools": True}),
    "broken": ("fake-500", {}),
    "limited": ("fake-429", {}),
    "rejecting": ("fake-400", {}),
    "badkey": ("fake-401", {}),
    "slow": ("fake-slow", {}),
    "drop": ("fake-drop", {}),
    "garbage": ("fake-garbage", {}),
    "slowstream": ("fake-slowstream", {}),
    "flaky": ("fake-flaky", {}),
    "strong-echo": (
        "fake-echo",
        {
            "price": {"input_per_million": 3.0, "output_per_million": 15.0},
            "supports_tools": True,
            "supports_json_schema": True,
        },
    ),
    "primary-broken": ("fake-500", {"fallbacks": ["echo"]}),
    "primary-limited": ("fake-429", {"fallbacks": ["echo"]}),
    "primary-slow": ("fake-slow", {"fallbacks": ["echo"]}),
    "primary-drop0": ("fake-drop0", {"fallbacks": ["echo"]}),
    "primary-flaky": ("fake-flaky", {"fallbacks": ["echo"]}),
    "breaker-test": ("fake-500", {"fallbacks": ["echo"]}),
    "cached-echo": (
        "fake-echo",
        {"cache_ttl_seconds": 60, "price": {"input_per_million": 1.0, "output_per_million": 2.0}},
    ),
}

ROUTES = {"auto": {"cheap": "echo", "strong": "strong-echo", "threshold": 0.5}}


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = ServerThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


def write_catalog(
    path: Path,
    upstream_url: str,
    *,
    extra_providers: dict[str, Any] | None = None,
    extra_models: list[dict[str, Any]] | None = None,
) -> Path:
    """The test catalog: every FAKE_MODELS entry on the fake upstream, plus any extra providers/models."""
    catalog: dict[str, Any] = {
        "providers": {
            "fake": {
                "kind": "openai_compat",
                "base_url": upstream_url + "/v1",
                "api_key": "sk-test",
                "timeout_seconds": 1.5,
            },
            **(extra_providers or {}),
        },
        "models": [
            {"name": name, "provider": "fake", "upstream_model": upstream, "max_output_tokens": 1000, **extra}
            for name, (upstream, extra) in FAKE_MODELS.items()
        ]
        + list(extra_models or []),
        "routes": ROUTES,
    }
    path.write_text(yaml.safe_dump(catalog))
    return path


@dataclass
class Gateway:
    """A running aiport: base URL, the demo admin key, and a handle on its runtime."""

    server: ServerThread
    key: str
    backend: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def runtime(self) -> Any:
        return self.server.config.app.state.runtime  # type: ignore[union-attr]

    def flush(self) -> None:
        self.server.run(self.runtime.audit.flush())

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {key or self.key}"}, timeout=30)

    def logs(self, **params: Any) -> list[dict[str, Any]]:
        self.flush()
        with self.client() as c:
            r = c.get("/api/admin/logs", params={"limit": 500, **params})
            r.raise_for_status()
            return list(r.json()["data"])

    def log(self, log_id: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/api/admin/logs/{log_id}")
            r.raise_for_status()
            return dict(r.json())


def start_gateway(
    tmp: Path,
    upstream_url: str,
    database_url: str | None,
    backend: str,
    *,
    extra_providers: dict[str, Any] | None = None,
    extra_models: list[dict[str, Any]] | None = None,
    demo_password: str | None = None,
    **overrides: Any,
) -> Gateway:
    """aiport in a thread on `tmp`, with the test catalog and the demo org seeded; `overrides` are Settings."""
    from aiport.accounts.demo import seed_demo

    catalog = write_catalog(
        tmp / "models.yaml", upstream_url, extra_providers=extra_providers, extra_models=extra_models
    )
    fast: dict[str, Any] = {
        "audit_flush_interval": 0.05,
        "revocation_poll_seconds": 0.2,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "rules_refresh_seconds": 0.2,
    }
    settings = Settings(data_dir=tmp, database_url=database_url, AIPORT_CONFIG=catalog, **{**fast, **overrides})
    server = ServerThread(create_app(settings)).start()
    rt = server.config.app.state.runtime  # type: ignore[union-attr]

    async def seed() -> str:
        async with rt.sessions() as session, session.begin():
            result = await seed_demo(session, new_key=True, password=demo_password)
            assert result.api_key
            return result.api_key

    return Gateway(server=server, key=server.run(seed()), backend=backend)


@pytest.fixture(scope="session")
def embedded_gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI) -> Iterator[Gateway]:
    """aiport on SQLite (the embedded default)."""
    gw = start_gateway(tmp_path_factory.mktemp("gw"), fake_upstream.url, None, "sqlite")  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()


@pytest.fixture(scope="session")
def gateway(embedded_gateway: Gateway) -> Gateway:
    """The gateway most tests use (tests/gateway runs its tests on Redis too)."""
    return embedded_gateway


@pytest.fixture(scope="session")
def pg_gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI) -> Iterator[Gateway]:
    """aiport on the real PostgreSQL server."""
    url, name = create_database()
    gw = start_gateway(tmp_path_factory.mktemp("pg"), fake_upstream.url, url, "postgres")  # type: ignore[attr-defined]
    yield gw
    gw.server.stop()
    drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def any_gateway(request: pytest.FixtureRequest) -> Gateway:
    """Run a storage/audit test against both databases."""
    return request.getfixturevalue("gateway" if request.param == "sqlite" else "pg_gateway")  # type: ignore[no-any-return]


def pytest_report_header() -> str:
    return f"aiport tests; CI={os.environ.get('CI', '')!r} (with CI=true, PostgreSQL tests must run)"
