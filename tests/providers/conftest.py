"""The embedded model for tests: assembled once into pytest's cache, loaded once per session.

`local_provider` is the real LocalProvider; `llama_http_base_url` serves the same GGUF from
an independent llama-server on loopback, so an OpenAI-compatible adapter can be tested
against a real server. Both use one llama.cpp thread: the test machines are small and
shared, and a single thread degrades gracefully when other work competes for the cores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from aiport.config import ModelConfig, ProviderConfig
from aiport.providers.local import LocalProvider
from aiport.providers.local_model import MODELS_SUBDIR, ensure_bundled_model, start_server

TEST_PARALLEL = 2
TEST_CONTEXT = 2048
TEST_THREADS = 1
LLAMA_HTTP_MODEL = "gemma-3-270m"  # the model id the loopback llama-server reports


@pytest.fixture(scope="session")
def local_data_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir that outlives the session (pytest's cache), so only the first run assembles the GGUF."""
    cache = request.config.cache
    if cache is None:  # -p no:cacheprovider
        return tmp_path_factory.mktemp("aiport-data")
    return Path(cache.mkdir("aiport-data"))


@pytest.fixture(scope="session")
def local_model_path(local_data_dir: Path) -> Path:
    """The bundled Gemma 3 270M GGUF, assembled and verified."""
    return ensure_bundled_model(local_data_dir / MODELS_SUBDIR)


@pytest.fixture(scope="session")
def local_model_config() -> ModelConfig:
    return ModelConfig(
        name="gemma-3-270m",
        provider="local",
        context_window=TEST_CONTEXT,
        max_output_tokens=512,
        supports_json_schema=True,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_provider(local_data_dir: Path, local_model_path: Path) -> AsyncIterator[LocalProvider]:
    """The real embedded provider, warmed once for the whole session."""
    provider = LocalProvider(
        "local",
        ProviderConfig(kind="local", timeout_seconds=120),
        data_dir=local_data_dir,
        parallel=TEST_PARALLEL,
        context=TEST_CONTEXT,
        threads=TEST_THREADS,
    )
    await provider.warm()
    yield provider
    await provider.aclose()


@pytest.fixture(scope="session")
def llama_http_base_url(local_model_path: Path) -> Iterator[str]:
    """An independent llama-server on the same GGUF; yields its OpenAI-compatible base URL (".../v1").

    No API key; the model id is LLAMA_HTTP_MODEL (llama-server answers to any model name).
    Prefer /v1/completions-style prompts: the base model has no usable chat template, so
    /v1/chat/completions answers are junk (but well-formed, which is enough for an adapter).
    """
    server = start_server(
        local_model_path,
        parallel=TEST_PARALLEL,
        context=TEST_CONTEXT,
        threads=TEST_THREADS,
        private=False,
        alias=LLAMA_HTTP_MODEL,
    )
    yield str(server.listening_address) + "/v1"
    del server  # llama.cpp stops its HTTP server and unloads the model
