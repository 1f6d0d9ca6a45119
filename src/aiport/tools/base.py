"""What a tool is, and the context a run gives it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.accounts.authz import Actor
from aiport.knowledge.embeddings import Embedder
from aiport.knowledge.search import Hit


class ToolError(Exception):
    """A tool failed in a way the model should hear about (bad arguments, refused URL...)."""


@dataclass(slots=True)
class ToolContext:
    """Everything tools may use during one run; retrieval results become citations."""

    actor: Actor | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    collection_ids: list[str] = field(default_factory=list)
    embedder: Embedder | None = None
    http_allowlist: list[str] = field(default_factory=list)
    http_allow_private: bool = False
    citations: list[Hit] = field(default_factory=list)

    def cite(self, hit: Hit) -> int:
        """The citation number of `hit` (the same chunk keeps its number)."""
        for i, seen in enumerate(self.citations, start=1):
            if seen.chunk_id == hit.chunk_id:
                return i
        self.citations.append(hit)
        return len(self.citations)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], ToolContext], Awaitable[str]]

    def spec(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }
