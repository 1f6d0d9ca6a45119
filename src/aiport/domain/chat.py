"""The one request shape every entry point builds, and the shapes a provider answers with.

Messages stay in OpenAI's wire format (validated dicts): it is the lingua franca of the
gateway, adapters translate to and from it at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class ChatRequest:
    """A chat call on its way through the pipeline, whatever its entry point.

    `params` holds the generation parameters in OpenAI names (temperature, top_p,
    max_tokens, stop, seed, tools, tool_choice, response_format, ...), already validated.
    """

    model: str
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    entry_point: str = "api"
    app_id: str | None = None
    app_version_id: str | None = None  # the published app version this call runs, for the record
    client_request_id: str | None = None
    cache_ttl: int | None = None  # opt in to the response cache for this many seconds
    cache_mode: str | None = None  # "no-cache": don't read the cache; "no-store": don't touch it
    parent_request_id: str | None = None  # the request that asked back, when this one resumes it

    @property
    def max_tokens(self) -> int | None:
        value = self.params.get("max_tokens")
        return int(value) if value is not None else None

    @property
    def stop(self) -> list[str]:
        stop = self.params.get("stop")
        if stop is None:
            return []
        return [stop] if isinstance(stop, str) else list(stop)


@dataclass(slots=True)
class Completion:
    """A whole answer from a provider, in OpenAI terms."""

    text: str | None
    finish_reason: str
    usage: Usage
    tool_calls: list[dict[str, Any]] | None = None
    upstream_model: str | None = None


@dataclass(slots=True)
class Delta:
    """One streamed piece: some text and/or tool-call fragments, or the end with usage."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    role: str | None = None
