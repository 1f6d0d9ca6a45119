"""Job kinds: a name, an input schema, a preparation step and the code that runs it.

A kind is registered once and used by every backend, so the in-process workers and the
Celery workers run the same code. New kinds (e.g. `app_run` from aiport.apps) plug in
with `KINDS.register(JobKind(...))`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from aiport.domain.chat import ChatRequest
from aiport.domain.errors import Unprocessable
from aiport.domain.principal import Principal

if TYPE_CHECKING:
    from aiport.jobs.context import JobContext


@dataclass(frozen=True, slots=True)
class SubmitEnv:
    """What a kind may consult while checking an input at submit time."""

    principal: Principal
    parse_chat: Callable[[Any], ChatRequest]  # the /v1 parser: same rules, same messages
    check_route: Callable[[ChatRequest], None]  # the route stage's checks: model exists, allowed, capable
    sessions: Any = None  # async_sessionmaker, for kinds that look things up (app_run)
    router: Any = None  # the gateway's Router (which models the caller may use)
    max_prompt_chars: int = 20_000


Prepare = Callable[[Any, SubmitEnv], dict[str, Any] | Awaitable[dict[str, Any]]]
Run = Callable[["JobContext", dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """`prepare` validates and normalizes the input once, at submit time (errors become a
    422 naming the field); `run` gets the stored, normalized input and returns the result."""

    name: str
    description: str
    input_model: type[BaseModel]
    prepare: Prepare
    run: Run

    async def check(self, raw: Any, env: SubmitEnv) -> dict[str, Any]:
        try:
            self.input_model.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            param = field_path("input", err["loc"])
            raise Unprocessable(f"Invalid value for '{param}': {err['msg']}.", param=param) from exc
        prepared = self.prepare(raw, env)
        return await prepared if inspect.isawaitable(prepared) else prepared


def field_path(prefix: str, loc: tuple[Any, ...] | list[Any]) -> str:
    """('requests', 2, 'model') -> 'input.requests[2].model'."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class KindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}

    def register(self, kind: JobKind) -> JobKind:
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def all(self) -> list[JobKind]:
        return sorted(self._kinds.values(), key=lambda k: k.name)


def default_kinds() -> KindRegistry:
    """The built-in kinds: chat_batch, summarize, noop, and app_run when the apps service is here."""
    from aiport.jobs.kinds import chat_batch, noop, summarize

    registry = KindRegistry()
    registry.register(chat_batch.KIND)
    registry.register(summarize.KIND)
    registry.register(noop.KIND)
    try:
        from aiport.jobs.kinds import app_run
    except ImportError:  # a build without aiport.apps: jobs work without app runs
        return registry
    registry.register(app_run.KIND)
    return registry


KINDS = default_kinds()
