"""The OpenAI-compatible API: /v1/chat/completions and /v1/models.

Handlers parse and validate the wire format themselves (orjson + a strict Pydantic model)
so bad input always becomes a precise 400, and hand a Call to the one pipeline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from aiport.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, authenticate_session
from aiport.apps.openai_entry import compose_app_call, is_app_model
from aiport.domain.chat import ChatRequest, Completion, Delta
from aiport.domain.errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge
from aiport.domain.principal import Principal
from aiport.gateway.call import Call
from aiport.gateway.identify import bearer_token
from aiport.web.openai_schema import FORWARDED_PARAMS, ChatCompletionRequest
from aiport.web.runtime import Runtime
from aiport.web.sse import SSEResponse

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

_DONE = b"data: [DONE]\n\n"


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def identify(request: Request) -> Principal:
    """identify: who is calling (API key; for browsers without one, the session cookie)."""
    headers = request.headers
    cookie = request.cookies.get(SESSION_COOKIE) if "cookie" in headers else None
    if cookie and not (headers.get("authorization") or headers.get("x-api-key")):
        csrf = headers.get(CSRF_HEADER)
        return await authenticate_session(runtime(request).sessions, cookie, method=request.method, csrf=csrf)
    token = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
    return await runtime(request).keys.authenticate(token)


async def read_json_body(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The request body is {int(length)} bytes; the limit is {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}.") from exc


_DISCRIMINATOR_TAGS = {
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "text",
    "image_url",
    "input_audio",
    "file",
    "json_object",
    "json_schema",
    "str",
}


def _param_path(loc: tuple[Any, ...]) -> str:
    """('messages', 0, 'user', 'content', 'constrained-str') -> 'messages[0].content'.

    Pydantic puts union member names and discriminator tags in the location; callers
    want the JSON path of the field they sent."""
    out = ""
    prev: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            is_tag = text in _DISCRIMINATOR_TAGS and (isinstance(prev, int) or prev in ("content", "response_format"))
            if not (is_tag or "[" in text or "-" in text or text[:1].isupper()):
                out += ("." if out else "") + text
        prev = part
    return out


def parse_chat_request(data: Any, client_request_id: str | None) -> ChatRequest:
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        body = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # In a union, the first member's type mismatch hides the real problem: prefer a value error.
        err = next((e for e in errors if not e["type"].endswith("_type")), errors[0])
        param = _param_path(tuple(err["loc"])) or None
        where = f"'{param}'" if param else "the request"
        raise InvalidRequest(f"Invalid value for {where}: {err['msg']}.", param=param) from exc
    params: dict[str, Any] = {}
    for name in FORWARDED_PARAMS:
        value = data.get(name)
        if value is not None:
            params[name] = value
    if body.max_completion_tokens is not None:
        params["max_tokens"] = body.max_completion_tokens
    return ChatRequest(
        model=body.model,
        messages=data["messages"],
        params=params,
        stream=bool(body.stream),
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        entry_point="api",
        client_request_id=client_request_id,
    )


def _completion_body(call: Call, completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if completion.tool_calls:
        message["tool_calls"] = completion.tool_calls
    return {
        "id": call.completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model.name if call.model else call.request.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": completion.finish_reason}],
        "usage": completion.usage.to_openai(),
        "system_fingerprint": None,
    }


async def _sse_events(
    call: Call, deltas: AsyncIterator[Delta], first_extra: dict[str, Any] | None = None
) -> AsyncIterator[bytes]:
    """Render deltas as OpenAI chat.completion.chunk events; `first_extra` goes into the first
    chunk's delta (a grounded answer's `citations`)."""
    base = {
        "id": call.completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.model.name if call.model else call.request.model,
        "system_fingerprint": None,
    }
    dumps = orjson.dumps
    first = True
    try:
        async for delta in deltas:
            piece: dict[str, Any] = {}
            if first:
                piece["role"] = "assistant"
                piece["content"] = ""
                if first_extra:
                    piece.update(first_extra)
                first = False
            if delta.text:
                piece["content"] = delta.text
            if delta.tool_calls:
                piece["tool_calls"] = delta.tool_calls
            if piece or delta.finish_reason:
                chunk = {
                    **base,
                    "choices": [{"index": 0, "delta": piece, "logprobs": None, "finish_reason": delta.finish_reason}],
                }
                yield b"data: " + dumps(chunk) + b"\n\n"
        if call.request.include_usage and call.usage is not None:
            yield b"data: " + dumps({**base, "choices": [], "usage": call.usage.to_openai()}) + b"\n\n"
        yield _DONE
    except GatewayError as exc:
        yield b"data: " + dumps(exc.to_body()) + b"\n\n"
    finally:
        aclose = getattr(deltas, "aclose", None)
        if aclose is not None:
            await aclose()


sse_events = _sse_events  # public: app runs stream the same chat.completion.chunk events


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible; stream=true for SSE)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
        }
    },
    responses={
        200: {"description": "A chat.completion object, or an SSE stream of chat.completion.chunk"},
        400: {"description": "Invalid request"},
        401: {"description": "Missing or unknown API key"},
        403: {"description": "Model not allowed"},
        404: {"description": "Unknown model"},
        413: {"description": "Body too large"},
        502: {"description": "Upstream failure"},
        504: {"description": "Upstream timeout"},
    },
)
async def chat_completions(request: Request) -> Response:
    rt = runtime(request)
    principal = await identify(request)
    state = request.scope["state"]
    headers = request.headers
    call = Call(
        request=ChatRequest(model="", messages=[]),
        principal=principal,
        request_id=state["request_id"],
        client_ip=request.client.host if request.client else None,
        user_agent=(headers.get("user-agent") or "")[:400] or None,
        idempotency_key=_idempotency_key(headers.get("idempotency-key")),
    )
    data: Any = None
    try:
        data = await read_json_body(request, rt.settings.max_body_bytes)
        call.request = parse_chat_request(data, state.get("client_request_id"))
        apply_cache_control(call.request, headers.get("cache-control"))
        if is_app_model(call.request.model):  # compose: app version + inputs + the caller's messages
            await compose_app_call(
                rt.sessions, rt.router, call, data, max_prompt_chars=rt.settings.app_template_max_chars
            )
    except GatewayError as exc:  # refused before the pipeline: still one audit record
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            call.request.model = data["model"][:200]
        call.fail(exc)
        rt.pipeline.finalize(call)
        raise
    try:
        extended = isinstance(data, dict) and ("aiport" in data or call.request.app_version_id is not None)
        if extended and (answered := await _knowledge_extension(rt, call, data)) is not None:
            return answered  # clarification, knowledge, tools: docs/knowledge.md
        if call.request.stream:
            deltas = await rt.pipeline.open_stream(call)
            return SSEResponse(
                _sse_events(call, deltas),
                lambda: rt.pipeline.finalize(call),
                headers=raw_headers(call.response_headers),
            )
        completion = await rt.pipeline.complete(call)
    except GatewayError as exc:
        exc.headers = {**call.response_headers, **exc.headers}
        raise
    return Response(
        orjson.dumps(_completion_body(call, completion)), media_type="application/json", headers=call.response_headers
    )


async def _knowledge_extension(rt: Runtime, call: Call, data: dict[str, Any]) -> Response | None:
    from aiport.web.knowledge import openai_extension  # late: web.knowledge imports this module

    return await openai_extension(rt, call, data)


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 200:
        raise InvalidRequest("The Idempotency-Key header must be 1 to 200 characters.", param="Idempotency-Key")
    return value


def apply_cache_control(request: ChatRequest, value: str | None) -> None:
    """`Cache-Control: max-age=N` opts in to the response cache for N seconds;
    `no-cache` skips the lookup (the fresh answer is still stored); `no-store` skips both."""
    if not value:
        return
    for directive in value.lower().split(","):
        name, _, arg = directive.strip().partition("=")
        if name == "max-age":
            if not arg.isdigit() or not 0 < int(arg) <= 30 * 86400:
                raise InvalidRequest("Cache-Control max-age must be 1 to 2592000 seconds.", param="Cache-Control")
            request.cache_ttl = int(arg)
        elif name in ("no-cache", "no-store"):
            request.cache_mode = name


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]


def _model_card(name: str, provider: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": provider}


@router.get("/models", summary="List the models this API key may use")
async def list_models(request: Request) -> Response:
    principal = await identify(request)
    router = runtime(request).router
    cards = [_model_card(m.name, m.provider) for m in router.models_for(principal)]
    cards += [_model_card(alias, "aiport-router") for alias in router.aliases_for(principal)]
    body = {"object": "list", "data": cards}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/models/{model_id:path}", summary="Describe one model")
async def get_model(model_id: str, request: Request) -> Response:
    principal = await identify(request)
    router = runtime(request).router
    for m in router.models_for(principal):
        if m.name == model_id:
            return Response(orjson.dumps(_model_card(m.name, m.provider)), media_type="application/json")
    if model_id in router.aliases_for(principal):
        return Response(orjson.dumps(_model_card(model_id, "aiport-router")), media_type="application/json")
    raise NotFound(f"The model '{model_id}' does not exist or this key may not use it.", param="model")
