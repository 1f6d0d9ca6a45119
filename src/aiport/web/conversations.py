"""Running apps and the conversations they leave: `POST /api/apps/{slug}/runs` (JSON or, with
`stream`, SSE), continue, regenerate, stop, rename, delete. Streams use the same
chat.completion.chunk events as /v1, framed by an `app.run` header event (where the answer
will be stored, which version) and an `app.run.end` event (how it ended)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.responses import Response

from aiport.accounts.authz import Action, Actor, ConversationAccess, UserAccess, authorize
from aiport.apps import conversations as convs
from aiport.apps.runs import PreparedRun, RunSpec, finish_run, outcome, prepare_run, until_stopped
from aiport.domain.chat import ChatRequest, Delta
from aiport.domain.errors import GatewayError, NotFound
from aiport.gateway.call import Call
from aiport.knowledge.app_runs import Grounded, grounded_run, resumed_run
from aiport.knowledge.assist import chosen, pending_clarification
from aiport.store.apps import App, ConversationMessage
from aiport.web.auth import current_actor
from aiport.web.runtime import Runtime
from aiport.web.sse import SSEResponse
from aiport.web.v1 import runtime, sse_events

router = APIRouter(prefix="/api", tags=["runs and conversations"])

_DONE = b"data: [DONE]\n\n"
_background: set[asyncio.Task[Any]] = set()
Message = Annotated[str, Field(max_length=200_000)]


class RunBody(BaseModel):
    inputs: dict[str, Any] | None = None
    message: Message | None = None
    conversation_id: Annotated[str, Field(max_length=64)] | None = None
    stream: bool = False
    draft: bool = False  # test-run the unpublished draft (editors)


class ContinueBody(BaseModel):
    message: Message
    stream: bool = False
    inputs: dict[str, Any] | None = None  # change the form values from this turn on


class RegenerateBody(BaseModel):
    stream: bool = False


class RenameBody(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200)]


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _events(rt: Runtime, prepared: PreparedRun, deltas: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
    yield _event(prepared.header())
    async for event in sse_events(prepared.call, until_stopped(deltas, prepared.stop)):
        if event == _DONE or event.startswith(b'data: {"error"'):
            await finish_run(rt.sessions, prepared)
            end: dict[str, Any] = {
                "object": "app.run.end",
                "status": outcome(prepared),
                "message_id": prepared.assistant_id,
            }
            if prepared.citations is not None:  # an app with knowledge or tools: the sources the answer may cite
                end["citations"] = prepared.citations
            yield _event(end)
        yield event


def _closer(rt: Runtime, prepared: PreparedRun) -> Any:
    def on_close() -> None:
        rt.pipeline.finalize(prepared.call)
        rt.runs.discard(prepared)
        if not prepared.saved:  # the client left mid-stream: store the partial answer
            task = asyncio.get_running_loop().create_task(finish_run(rt.sessions, prepared))
            _background.add(task)
            task.add_done_callback(_background.discard)

    return on_close


async def _asked_back(rt: Runtime, prepared: PreparedRun, clarification: dict[str, Any], stream: bool) -> Response:
    """The run ends with a question instead of an answer (stored in the answer's place)."""
    await finish_run(rt.sessions, prepared)
    status = outcome(prepared)
    if not stream:
        body = {
            **prepared.header(),
            "status": status,
            "output": clarification["question"],
            "finish_reason": "clarification",
            "clarification": clarification,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        yield _event(prepared.header())
        yield _event({**clarification, "object": "app.run.clarification"})
        yield _event({"object": "app.run.end", "status": status, "message_id": prepared.assistant_id})
        yield _DONE

    return SSEResponse(events(), lambda: None)


async def _execute(request: Request, actor: Actor, spec: RunSpec) -> Response:
    rt = runtime(request)
    state = request.scope["state"]
    call = Call(
        request=ChatRequest(model="", messages=[]),
        principal=actor.principal,
        request_id=state["request_id"],
        client_ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:400] or None,
    )
    prepared = await prepare_run(
        rt.sessions, rt.router, actor, spec, max_prompt_chars=rt.settings.app_template_max_chars, call=call
    )
    try:
        if spec.resolve is not None:  # the answer to a question asked back
            clarification_id, choice, text = spec.resolve
            grounded: Grounded | None = await resumed_run(
                rt, actor, call, clarification_id, choice, text, stream=spec.stream
            )
        else:  # knowledge, tools and ask-back (docs/knowledge.md)
            grounded = await grounded_run(
                rt, actor, call, stream=spec.stream, clarify=not spec.regenerate, inputs=prepared.conversation.inputs
            )
        if grounded is not None and grounded.clarification is not None:
            return await _asked_back(rt, prepared, grounded.clarification, spec.stream)
        prepared.citations = grounded.citations if grounded else None
        if spec.stream:
            deltas = grounded.deltas() if grounded else await rt.pipeline.open_stream(call)
            await rt.runs.add(prepared)
            return SSEResponse(_events(rt, prepared, deltas), _closer(rt, prepared))
        completion = grounded.completion if grounded else await rt.pipeline.complete(call)
    except GatewayError:
        await finish_run(rt.sessions, prepared)
        raise
    await finish_run(rt.sessions, prepared)
    body = {
        **prepared.header(),
        "status": outcome(prepared),
        "model": call.model.name if call.model else call.request.model,
        "output": completion.text or "",
        "finish_reason": completion.finish_reason,
        "usage": completion.usage.to_openai(),
        **({"citations": grounded.citations} if grounded else {}),
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.post("/apps/{slug}/runs", summary="Run an app: form inputs + optional message; `stream` for SSE")
async def run_app(slug: str, body: RunBody, request: Request) -> Response:
    actor = await current_actor(request)
    spec = RunSpec(
        slug=slug,
        inputs=body.inputs,
        message=body.message,
        conversation_id=body.conversation_id,
        stream=body.stream,
        draft=body.draft,
    )
    return await _execute(request, actor, spec)


@router.get("/conversations", summary="My conversations, newest first (org admins: `user_id` for someone else's)")
async def list_conversations(
    request: Request,
    app: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    include_drafts: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    actor = await current_actor(request)
    authorize(actor, Action.SELF)
    async with runtime(request).sessions() as session:
        if user_id is not None and user_id != actor.user_id:
            authorize(actor, Action.CONVERSATION_VIEW, ConversationAccess(actor.org_id, user_id))
            authorize(actor, Action.USER_VIEW, UserAccess(actor.org_id, user_id))
        app_id = None
        if app is not None:
            app_id = (
                await session.execute(select(App.id).where(App.org_id == actor.org_id, App.slug == app))
            ).scalar_one_or_none() or ""
        rows = await convs.list_conversations(
            session, actor, app_id=app_id, user_id=user_id, include_drafts=include_drafts, limit=limit, before=before
        )
    data = [convs.conversation_view(c, slug) for c, slug in rows]
    return {"object": "list", "data": data, "next_before": data[-1]["id"] if len(data) == limit else None}


async def _slug(session: Any, app_id: str) -> str:
    app = await session.get(App, app_id)
    return app.slug if app else ""


@router.get("/conversations/{conversation_id}", summary="A conversation with its messages")
async def get_conversation(conversation_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        conv = await convs.load_conversation(session, actor, conversation_id, Action.CONVERSATION_VIEW)
        messages = await convs.message_views(session, conv.org_id, await convs.messages_of(session, conv.id))
        return convs.conversation_view(conv, await _slug(session, conv.app_id), messages)


@router.post("/conversations/{conversation_id}/messages", summary="Continue a conversation")
async def continue_conversation(conversation_id: str, body: ContinueBody, request: Request) -> Response:
    actor = await current_actor(request)
    spec = RunSpec(conversation_id=conversation_id, message=body.message, stream=body.stream, inputs=body.inputs)
    return await _execute(request, actor, spec)


@router.post("/conversations/{conversation_id}/regenerate", summary="Answer the last message again")
async def regenerate(conversation_id: str, request: Request, body: RegenerateBody | None = None) -> Response:
    actor = await current_actor(request)
    spec = RunSpec(conversation_id=conversation_id, stream=bool(body and body.stream), regenerate=True)
    return await _execute(request, actor, spec)


class AnswerBody(BaseModel):
    choice: str = Field(min_length=1, max_length=20, description="the id of one of the clarification's choices")
    text: str | None = Field(None, max_length=2000, description="what you mean, with the 'something else' choice")
    stream: bool = False


@router.post(
    "/conversations/{conversation_id}/clarifications/{clarification_id}",
    summary="Answer a question the app asked back; the run goes on with that choice",
)
async def answer_clarification(
    conversation_id: str, clarification_id: str, body: AnswerBody, request: Request
) -> Response:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        conv = await convs.load_conversation(session, actor, conversation_id, Action.CONVERSATION_WRITE)
        row = await pending_clarification(session, actor, clarification_id)
        asked_here = await session.execute(
            select(ConversationMessage.id).where(
                ConversationMessage.conversation_id == conv.id,
                ConversationMessage.request_id == row.request_id,
                ConversationMessage.status == "clarification",
            )
        )
        if asked_here.first() is None:
            raise NotFound(
                "This conversation asked no question with that id.",
                param="clarification_id",
                code="clarification_not_found",
            )
        choice = chosen(row, body.choice, body.text)
        inputs = None
        value = choice.get("value")
        if choice.get("kind") == "form_value" and isinstance(value, dict):  # the form takes the choice for later turns
            inputs = {**conv.inputs, value["variable"]: value["value"]}
    said = (body.text or "").strip() if choice.get("kind") == "other" else str(choice.get("label") or body.choice)
    spec = RunSpec(
        conversation_id=conversation_id,
        message=said,
        inputs=inputs,
        stream=body.stream,
        resolve=(clarification_id, body.choice, body.text),
    )
    return await _execute(request, actor, spec)


@router.post("/conversations/{conversation_id}/stop", summary="Stop the answer being streamed")
async def stop(conversation_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        await convs.load_conversation(session, actor, conversation_id, Action.CONVERSATION_WRITE)
    return {"conversation_id": conversation_id, "stopped": await runtime(request).runs.stop(conversation_id)}


@router.patch("/conversations/{conversation_id}", summary="Rename a conversation")
async def rename(conversation_id: str, body: RenameBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        conv = await convs.load_conversation(session, actor, conversation_id, Action.CONVERSATION_WRITE)
        await convs.rename(conv, body.title)
        return convs.conversation_view(conv, await _slug(session, conv.app_id))


@router.delete("/conversations/{conversation_id}", summary="Delete a conversation (the audit log keeps its calls)")
async def delete(conversation_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        conv = await convs.load_conversation(session, actor, conversation_id, Action.CONVERSATION_WRITE)
        await convs.delete_conversation(session, conv)
    return {"id": conversation_id, "deleted": True}
