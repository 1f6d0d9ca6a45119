"""Every error leaves in OpenAI's shape, with the request id, never as a bare 500 page."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from aiport.domain.errors import GatewayError

log = logging.getLogger("aiport.web")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_response(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "message": message,
            "type": type_ or _TYPES.get(status, "api_error"),
            "param": param,
            "code": code,
        }
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def gateway_error_response(exc: GatewayError) -> Response:
    return Response(
        orjson.dumps(exc.to_body()),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers or None,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> Response:
        return gateway_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        """400 on the OpenAI-compatible /v1 (as OpenAI answers), 422 on aiport's own /api."""
        errors = exc.errors()
        first = next((e for e in errors if not str(e.get("type", "")).endswith("_type")), errors[0]) if errors else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        status = 400 if request.url.path.startswith("/v1/") else 422
        where = f"'{param}'" if param else "the request"
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return error_response(
            status, f"Invalid value for {where}: {message}", param=param or None, code="invalid_request"
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            message = "Not found. The OpenAI-compatible API lives under /v1 (see /docs)."
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_error_response(getattr(request.state, "request_id", "?"))


def unexpected_error_response(request_id: str) -> Response:
    """A bug: logged with its traceback (call from an except block), answered as a 500 with the request id."""
    log.exception("unhandled error in request %s", request_id)
    return error_response(
        500,
        f"Internal error; quote request id {request_id} to your admin.",
        type_="api_error",
        code="internal_error",
    )
