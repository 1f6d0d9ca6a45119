"""The hot path's own lane: POST /v1/chat/completions goes straight to its handler.

FastAPI's middleware stack (error, telemetry and body-limit middleware, routing, exception
and exit-stack wrappers) cost ~40 % of a gateway request's CPU in the profile
(docs/benchmarks.md), for a route that needs none of it: the handler reads its body with
its own size limit, validates it, and raises GatewayError for every refusal. GatewayApp
answers that route before the stack, with the same RequestIdMiddleware, the same handler
and errors rendered by the app's own functions. Every other path, and the OpenAPI
description of this one, stay with FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from aiport.domain.errors import GatewayError
from aiport.web.errors import gateway_error_response, unexpected_error_response
from aiport.web.middleware import RequestIdMiddleware

Handler = Callable[[Request], Awaitable[Any]]


class GatewayApp(FastAPI):
    """FastAPI, with the gateway's hot POST routes answered before its middleware stack."""

    def __init__(self, *, fast_routes: dict[str, Handler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_routes = fast_routes
        self._fast = RequestIdMiddleware(self._serve_fast)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self._fast_routes:
            scope["app"] = self
            await self._fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _serve_fast(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._fast_routes[scope["path"]]
        try:
            response = await handler(Request(scope, receive))
        except GatewayError as exc:
            response = gateway_error_response(exc)
        except Exception:
            response = unexpected_error_response(scope["state"]["request_id"])
        await response(scope, receive, send)
