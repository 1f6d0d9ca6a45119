"""The hot path's own lane: POST /v1/chat/completions goes straight to its handler.

FastAPI's routing, exception and exit-stack middleware, and request/response wrappers
cost ~40 % of a gateway request's CPU in the profile (docs/benchmarks.md), for a route
that needs none of them: the handler parses and validates its own body and raises
GatewayError for every refusal. This ASGI middleware sits inside RequestIdMiddleware,
calls the same handler with a Starlette Request and renders errors exactly as the app's
exception handlers do. Every other path, and the OpenAPI description of this one, stay
with FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aiport.domain.errors import GatewayError
from aiport.web.errors import gateway_error_response, unexpected_error_response

Handler = Callable[[Request], Awaitable[Response]]


class FastLane:
    def __init__(self, app: ASGIApp, *, routes: dict[str, Handler]) -> None:
        self.app = app
        self._routes = routes  # POST path -> handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = gateway_error_response(exc)
        except Exception:
            response = unexpected_error_response(scope.get("state", {}).get("request_id", "?"))
        await response(scope, receive, send)
