"""Test doubles for jobs: a slower fake upstream, and a webhook receiver that can fail on purpose."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiport.jobs.signing import verify
from tests.support.fake_openai import FakeOpenAI

SLEEP_SECONDS = 0.4


class JobsUpstream(FakeOpenAI):
    """FakeOpenAI plus `fake-sleep` (answers like echo after SLEEP_SECONDS), counting calls
    per last user message so tests can tell which work was redone."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
        self.calls[str(last.get("content"))] += 1
        if body["model"] == "fake-sleep":
            await asyncio.sleep(SLEEP_SECONDS)
        return await super().chat(request)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    valid_signature: bool


@dataclass
class Hook:
    """One receiving endpoint: answers `plan` in order, then 200; checks signatures with `secret`."""

    plan: list[int] = field(default_factory=list)
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    redirect_to: str | None = None


class WebhookReceiver:
    """A Starlette app with one endpoint per name: POST /hook/<name>."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook/{name}", self.receive, methods=["POST"])])
        self.url = ""

    def hook(self, name: str, *, plan: list[int] | None = None, redirect_to: str | None = None) -> str:
        with self.lock:
            self.hooks[name] = Hook(plan=list(plan or []), redirect_to=redirect_to)
        return f"{self.url}/hook/{name}"

    def set_secret(self, name: str, secret: str) -> None:
        self.hooks[name].secret = secret

    def received(self, name: str) -> list[Received]:
        with self.lock:
            return list(self.hooks[name].received)

    async def receive(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        hook = self.hooks.get(name)
        if hook is None:
            return JSONResponse({"error": "unknown hook"}, status_code=404)
        ok = hook.secret is not None and verify(
            hook.secret,
            body,
            request.headers.get("x-aiport-timestamp"),
            request.headers.get("x-aiport-signature"),
        )
        with self.lock:
            status = hook.plan.pop(0) if hook.plan else 200
            if hook.secret is not None and not ok:
                status = 401
            if hook.redirect_to:
                status = 302
            hook.received.append(Received(dict(request.headers), body, status, ok))
        headers: dict[str, Any] = {"location": hook.redirect_to} if hook.redirect_to else {}
        return JSONResponse({"status": status, "signature_ok": ok}, status_code=status, headers=headers)
