"""The one interface every provider adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aiport.config import ModelConfig
from aiport.domain.chat import ChatRequest, Completion, Delta


class Provider(Protocol):
    """An LLM backend. Adapters raise aiport.domain.errors.GatewayError subclasses:
    InvalidRequest for a request the provider refused as malformed, UpstreamError for
    failures (5xx, bad answers, connection errors) and UpstreamTimeout for timeouts."""

    name: str

    async def complete(self, request: ChatRequest, model: ModelConfig) -> Completion:
        """Return the whole answer."""
        ...

    def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[Delta]:
        """Yield deltas as they arrive; the last one carries finish_reason and, when known, usage."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...
