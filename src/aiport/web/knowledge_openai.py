"""The OpenAI API extension of issue 7: `"aiport": {...}` in a /v1/chat/completions body
(collections, tools, clarify, resume), and apps with knowledge, tools or a form. The answer
stays a chat.completion: a clarification is `message.clarification` with finish_reason
"clarification"; a grounded answer carries `message.citations`. See docs/knowledge.md."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from aiport.accounts.authz import load_actor
from aiport.apps.clarify import form_fields
from aiport.domain.errors import GatewayError, InvalidRequest
from aiport.gateway.call import Call
from aiport.knowledge.assist import (
    Assist,
    Outcome,
    check_form_or_ask,
    resume,
    run,
    visible_collections,
)
from aiport.store.apps import AppVersion
from aiport.web.runtime import Runtime
from aiport.web.sse import SSEResponse
from aiport.web.v1 import raw_headers, sse_events

Id = Annotated[str, Field(min_length=1, max_length=64)]


class OpenAIExtension(BaseModel):
    """`"aiport": {...}` in a /v1/chat/completions body (docs/knowledge.md)."""

    collections: Annotated[list[Id], Field(max_length=50)] | None = None
    tools: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=10)] = []
    clarify: bool = True
    resume: dict[str, str] | None = None  # {"clarification_id": ..., "choice": ..., "text": ...}


async def _app_definition(rt: Runtime, call: Call) -> dict[str, Any]:
    if call.request.app_version_id is None:
        return {}
    async with rt.sessions() as session:
        version = await session.get(AppVersion, call.request.app_version_id)
    return dict(version.definition) if version is not None else {}


async def openai_extension(rt: Runtime, call: Call, data: dict[str, Any]) -> Response | None:
    """For web/v1.py: clarification, knowledge and tools on a chat completion, when the body
    carries `aiport` or the app it runs has knowledge, tools or a form the message contradicts;
    otherwise None and the call goes on as usual (cost: one lookup for app calls)."""
    raw = data.get("aiport")
    stream = call.request.stream  # asked by the caller (an agent's steps run without streaming)
    definition = await _app_definition(rt, call)
    app_collections, app_tools = list(definition.get("knowledge") or []), list(definition.get("tools") or [])
    form = form_fields(definition, data.get("inputs")) or None
    if raw is None and not app_collections and not app_tools:
        if form is None or not rt.settings.clarify_enabled:
            return None
        asked = await check_form_or_ask(rt, call, form)
        return None if asked is None else _openai_response(call, asked, stream)
    try:
        ext = OpenAIExtension.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = ".".join(str(p) for p in err["loc"])
        raise InvalidRequest(f"Invalid value for 'aiport.{path}': {err['msg']}.", param=f"aiport.{path}") from exc
    assert call.principal is not None
    async with rt.sessions() as session:
        actor = await load_actor(session, call.principal)
        if app_collections and ext.collections is None:
            visible = {c.id for c in await visible_collections(session, actor, None)}
            ext.collections = [c for c in app_collections if c in visible]  # the caller's access decides
    try:
        if ext.resume is not None:
            r = ext.resume
            if not r.get("clarification_id") or not r.get("choice"):
                raise InvalidRequest("'aiport.resume' needs clarification_id and choice.", param="aiport.resume")
            outcome = await resume(rt, actor, r["clarification_id"], r["choice"], r.get("text"), call)
        else:
            use = ext.collections is not None or raw is not None
            tools = ext.tools or app_tools
            assist = Assist(
                collection_ids=ext.collections,
                tools=tools,
                clarify=ext.clarify,
                form=form,
                use_knowledge=use,
                stream=stream and not tools,  # an agent's steps are not streamed
            )
            outcome = await run(rt, actor, call, assist)
    except GatewayError as exc:
        if not call.recorded:
            call.fail(exc)
            rt.pipeline.finalize(call)
        raise
    if outcome.deltas is not None:
        return SSEResponse(
            sse_events(call, outcome.deltas, {"citations": outcome.citations}),
            lambda: rt.pipeline.finalize(call),
            headers=raw_headers({**call.response_headers, "x-aiport-request-id": call.request_id}),
        )
    return _openai_response(call, outcome, stream)


def _openai_response(call: Call, outcome: Outcome, stream: bool) -> Response:
    created = int(time.time())
    model = call.model.name if call.model else call.request.model
    base = {"id": "chatcmpl-" + call.request_id[4:], "created": created, "model": model, "system_fingerprint": None}
    if outcome.clarification is not None:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": outcome.clarification["question"],
            "clarification": outcome.clarification,
        }
        finish, usage = "clarification", {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    else:
        assert outcome.completion is not None
        message = {"role": "assistant", "content": outcome.completion.text, "citations": outcome.citations}
        if outcome.agent is not None:
            message["agent"] = outcome.agent
        finish, usage = outcome.completion.finish_reason, outcome.completion.usage.to_openai()
    headers = {**call.response_headers, "x-aiport-request-id": call.request_id}
    if stream:
        chunk = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": message, "logprobs": None, "finish_reason": finish}],
        }
        body = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
        return Response(body, media_type="text/event-stream", headers=headers)
    completion = {
        **base,
        "object": "chat.completion",
        "usage": usage,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    return Response(orjson.dumps(completion), media_type="application/json", headers=headers)
