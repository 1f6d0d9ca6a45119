"""The openai_compat adapter against a real, independent OpenAI-compatible server: llama.cpp's
own HTTP server (xllamacpp) serving the bundled GGUF on loopback."""

from __future__ import annotations

import pytest

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest, Delta
from aiport.domain.errors import GatewayError
from aiport.providers.openai_compat import OpenAICompatProvider
from tests.providers.conftest import LLAMA_HTTP_MODEL

pytestmark = pytest.mark.model

MODEL = ModelConfig(name="llama-http", provider="llama", upstream_model=LLAMA_HTTP_MODEL, max_output_tokens=64)


def chat(**params: object) -> ChatRequest:
    return ChatRequest(
        model="llama-http", messages=[{"role": "user", "content": "Say hello."}], params={"max_tokens": 8, **params}
    )


async def test_complete_returns_text_usage_and_finish_reason(llama_http_base_url: str) -> None:
    provider = OpenAICompatProvider("llama", ProviderConfig(kind="openai_compat", base_url=llama_http_base_url))
    try:
        completion = await provider.complete(chat(), MODEL)
    finally:
        await provider.aclose()
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
    assert completion.finish_reason in {"stop", "length"}
    assert isinstance(completion.text, str)


async def test_stream_yields_text_deltas_then_usage(llama_http_base_url: str) -> None:
    provider = OpenAICompatProvider("llama", ProviderConfig(kind="openai_compat", base_url=llama_http_base_url))
    deltas: list[Delta] = []
    try:
        async for delta in provider.stream(chat(), MODEL):
            deltas.append(delta)
    finally:
        await provider.aclose()
    assert sum(1 for d in deltas if d.text) >= 1
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens > 0
    assert any(d.finish_reason in {"stop", "length"} for d in deltas)


async def test_server_side_errors_become_gateway_errors(llama_http_base_url: str) -> None:
    provider = OpenAICompatProvider("llama", ProviderConfig(kind="openai_compat", base_url=llama_http_base_url))
    try:
        with pytest.raises(GatewayError):
            await provider.complete(chat(max_tokens="many"), MODEL)
    finally:
        await provider.aclose()
