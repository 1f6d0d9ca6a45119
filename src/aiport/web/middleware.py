"""Pure ASGI middleware (no per-request task overhead): request ids on every response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiport.domain.ids import new_id


class RequestIdMiddleware:
    """Gives each HTTP request a server-generated id (scope state `request_id`) and returns it
    as `X-Request-Id`. A client-sent X-Request-Id is kept as `client_request_id`, never as our key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_id("req_")
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                state["client_request_id"] = value.decode("latin-1")[:200]
                break
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
