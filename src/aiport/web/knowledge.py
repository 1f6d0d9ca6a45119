"""Knowledge API: collections, document uploads, search, grounded answers with citations,
clarifications (ask back, then resume), and trace trees. Also the OpenAI API extension
(`"aiport": {...}` in a chat completion body) used by web/v1.py. See docs/knowledge.md."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from aiport.accounts.authz import Actor
from aiport.apps.clarify import clarification_view
from aiport.apps.compose import resolve_model
from aiport.domain.chat import ChatRequest
from aiport.domain.errors import (
    GatewayError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unprocessable,
)
from aiport.gateway.call import Call
from aiport.knowledge import access
from aiport.knowledge.assist import (
    Assist,
    Outcome,
    embedder_for,
    resume,
    run,
    visible_collections,
)
from aiport.knowledge.documents import (
    Limits,
    add_document,
    collection_view,
    delete_collection,
    delete_document,
    document_view,
)
from aiport.knowledge.search import search
from aiport.observe.traces import load_tree
from aiport.store.knowledge import Clarification, Collection, Document
from aiport.store.models import AuditLog
from aiport.web.auth import current_actor
from aiport.web.knowledge_openai import openai_extension
from aiport.web.runtime import Runtime
from aiport.web.v1 import runtime

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])
traces_router = APIRouter(prefix="/api/traces", tags=["knowledge"])

Id = Annotated[str, Field(min_length=1, max_length=64)]


class CollectionBody(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=1000)] = ""
    visibility: Literal["private", "team", "org"] = "private"
    team_id: Id | None = None


class SearchBody(BaseModel):
    query: Annotated[str, Field(min_length=1, max_length=2000)]
    collection_ids: Annotated[list[Id], Field(max_length=50)] | None = None
    k: Annotated[int, Field(ge=1, le=50)] = 5
    mode: Literal["fts", "hybrid"] = "fts"


class AskBody(BaseModel):
    message: Annotated[str, Field(min_length=1, max_length=20_000)]
    history: Annotated[list[dict[str, Any]], Field(max_length=100)] = []
    collection_ids: Annotated[list[Id], Field(max_length=50)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=200)] = "auto"
    tools: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=10)] = []
    clarify: bool = True
    system: Annotated[str, Field(max_length=20_000)] = ""


class ResolveBody(BaseModel):
    choice: Annotated[str, Field(min_length=1, max_length=20)]
    text: Annotated[str, Field(max_length=2000)] | None = None


# ---- collections ------------------------------------------------------------------------------
def _check_sharing(actor: Actor, body: CollectionBody) -> None:
    if actor.app_key_app_id is not None:
        raise PermissionDenied("This API key is bound to one app: it may only run that app.", code="forbidden")
    if body.visibility == "team":
        if body.team_id is None:
            raise Unprocessable("A team collection needs 'team_id'.", param="team_id", code="invalid_collection")
        if not actor.is_org_admin and body.team_id not in actor.teams:
            raise PermissionDenied(
                "You can only create collections for teams you belong to.", param="team_id", code="forbidden"
            )
    elif body.team_id is not None:
        raise Unprocessable("Only a team collection has 'team_id'.", param="team_id", code="invalid_collection")
    if body.visibility == "org" and not (actor.is_org_admin or actor.admin_team_ids):
        raise PermissionDenied(
            "Only org admins and team admins may share a collection with the whole organization.",
            param="visibility",
            code="forbidden",
        )


@router.post("/collections", status_code=201, summary="Create a collection (private, a team's, or the org's)")
async def create_collection(body: CollectionBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    _check_sharing(actor, body)
    async with runtime(request).sessions() as session, session.begin():
        col = Collection(
            org_id=actor.org_id,
            name=body.name,
            description=body.description,
            owner_id=actor.user_id,
            team_id=body.team_id,
            visibility=body.visibility,
        )
        session.add(col)
        await session.flush()
        return collection_view(col, 0)


@router.get("/collections", summary="Collections I can read")
async def list_collections(request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        cols = await visible_collections(session, actor, None)
        counts = dict(
            (
                await session.execute(
                    select(Document.collection_id, func.count())
                    .where(Document.collection_id.in_([c.id for c in cols]))
                    .group_by(Document.collection_id)
                )
            ).all()
        )
    return {"object": "list", "data": [collection_view(c, counts.get(c.id, 0)) for c in cols]}


async def _collection(request: Request, actor: Actor, collection_id: str, action: str = "view") -> Collection:
    async with runtime(request).sessions() as session:
        return access.require(actor, await session.get(Collection, collection_id), action)


@router.get("/collections/{collection_id}", summary="A collection and its documents")
async def get_collection(collection_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    col = await _collection(request, actor, collection_id)
    async with runtime(request).sessions() as session:
        docs = list(
            (
                await session.execute(
                    select(Document).where(Document.collection_id == col.id).order_by(Document.created_at.desc())
                )
            ).scalars()
        )
    return {**collection_view(col, len(docs)), "data": [document_view(d) for d in docs]}


@router.delete("/collections/{collection_id}", summary="Delete a collection with its documents")
async def remove_collection(collection_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        col = access.require(actor, await session.get(Collection, collection_id), "manage")
        await delete_collection(session, col)
    return {"id": collection_id, "deleted": True}


async def _read_upload(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The file is {int(length)} bytes; the upload limit is {limit} bytes.", param="file")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The file is larger than the upload limit of {limit} bytes.", param="file")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise Unprocessable(
            "The upload is empty: send the file's bytes as the request body.", param="file", code="empty_document"
        )
    return data


@router.post(
    "/collections/{collection_id}/documents",
    status_code=201,
    summary="Upload a document: the raw file as the body, ?filename=report.pdf (txt, md, html, pdf, docx)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={
        409: {"description": "Same text already in the collection"},
        413: {"description": "Too large"},
        422: {"description": "Unsupported, unreadable or empty"},
    },
)
async def upload(collection_id: str, request: Request, filename: str, title: str | None = None) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    if not 1 <= len(filename) <= 300:
        raise Unprocessable("'filename' must be 1 to 300 characters.", param="filename", code="invalid_filename")
    if title is not None and len(title) > 300:
        raise Unprocessable("'title' must be at most 300 characters.", param="title", code="invalid_title")
    await _collection(request, actor, collection_id, "upload")
    data = await _read_upload(request, rt.settings.knowledge_max_upload_bytes)
    async with rt.sessions() as session, session.begin():
        col = access.require(actor, await session.get(Collection, collection_id), "upload")
        doc = await add_document(
            session,
            col,
            data=data,
            filename=filename,
            content_type=request.headers.get("content-type"),
            uploaded_by=actor.user_id,
            title=title,
            limits=Limits(rt.settings.knowledge_max_chars),
            embedder=embedder_for(rt),
        )
        return document_view(doc)


@router.delete("/documents/{document_id}", summary="Delete a document")
async def remove_document(document_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session, session.begin():
        doc = await session.get(Document, document_id)
        col = await session.get(Collection, doc.collection_id) if doc else None
        if doc is None or col is None or not access.can_view(actor, col):
            raise NotFound("No document with that id.", param="document_id", code="document_not_found")
        access.require(actor, col, "upload")
        await delete_document(session, doc)
    return {"id": document_id, "deleted": True}


# ---- search and answers -----------------------------------------------------------------------
@router.post("/search", summary="Full-text (or hybrid) search over collections I can read, with scores")
async def search_endpoint(body: SearchBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    embedder = None
    if body.mode == "hybrid":
        embedder = embedder_for(rt)
        if embedder is None:
            raise Unprocessable(
                "Hybrid search needs embeddings: set AIPORT_KNOWLEDGE_EMBEDDINGS=minilm.",
                param="mode",
                code="embeddings_off",
            )
    async with rt.sessions() as session:
        cols = await visible_collections(session, actor, body.collection_ids)
        hits = await search(session, body.query, [c.id for c in cols], k=body.k, embedder=embedder)
    return {
        "object": "list",
        "mode": body.mode,
        "data": [{**h.citation(i), "text": h.text, "ranks": h.ranks} for i, h in enumerate(hits, start=1)],
    }


def answer_view(outcome: Outcome) -> dict[str, Any]:
    call = outcome.call
    if outcome.clarification is not None:
        return {"object": "clarification", "request_id": call.request_id, "clarification": outcome.clarification}
    assert outcome.completion is not None
    return {
        "object": "knowledge.answer",
        "request_id": call.request_id,
        "parent_request_id": call.request.parent_request_id,
        "model": call.model.name if call.model else call.request.model,
        "answer": outcome.completion.text,
        "finish_reason": outcome.completion.finish_reason,
        "citations": outcome.citations,
        "usage": outcome.completion.usage.to_openai(),
        "agent": outcome.agent,
    }


def _new_call(request: Request, actor: Actor) -> Call:
    return Call(
        request=ChatRequest(model="", messages=[]),
        principal=actor.principal,
        request_id=request.scope["state"]["request_id"],
        client_ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:400] or None,
    )


async def _guarded(rt: Runtime, call: Call, coro: Any) -> Outcome:
    """A request refused before the model is still one audit record."""
    try:
        outcome: Outcome = await coro
        return outcome
    except GatewayError as exc:
        if not call.recorded:
            call.fail(exc)
            rt.pipeline.finalize(call)
        raise


@router.post("/ask", summary="Ask with knowledge: clarify if ambiguous, else answer with numbered citations")
async def ask(body: AskBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    call = _new_call(request, actor)
    messages: list[dict[str, Any]] = [{"role": "system", "content": body.system}] if body.system else []
    for i, m in enumerate(body.history):
        if m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            raise Unprocessable(
                "Each history item needs role user|assistant and string content.",
                param=f"history[{i}]",
                code="invalid_history",
            )
        messages.append({"role": m["role"], "content": m["content"]})
    messages.append({"role": "user", "content": body.message})
    call.request = ChatRequest(
        model=resolve_model(body.model, rt.router, actor.principal), messages=messages, entry_point="knowledge"
    )
    assist = Assist(collection_ids=body.collection_ids, tools=body.tools, clarify=body.clarify)
    return answer_view(await _guarded(rt, call, run(rt, actor, call, assist)))


@router.get("/clarifications/{clarification_id}", summary="A clarification I was asked, and how it was answered")
async def get_clarification(clarification_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    async with runtime(request).sessions() as session:
        row = await session.get(Clarification, clarification_id)
    if row is None or row.user_id != actor.user_id or row.org_id != actor.org_id:
        raise NotFound("No clarification with that id.", param="clarification_id", code="clarification_not_found")
    return clarification_view(row)


@router.post("/clarifications/{clarification_id}/resolve", summary="Pick a choice: the request resumes with it")
async def resolve(clarification_id: str, body: ResolveBody, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    call = _new_call(request, actor)
    call.request.entry_point = "knowledge"
    outcome = await _guarded(rt, call, resume(rt, actor, clarification_id, body.choice, body.text, call))
    return answer_view(outcome)


# ---- traces ---------------------------------------------------------------------------------
@traces_router.get("/{request_id}", summary="The process of a request as a span tree (retrieval, tools, steps)")
async def get_trace(request_id: str, request: Request) -> dict[str, Any]:
    actor = await current_actor(request)
    rt = runtime(request)
    await rt.audit.flush()
    async with rt.sessions() as session:
        if not actor.is_org_admin:
            owner = (
                await session.execute(select(AuditLog.user_id).where(AuditLog.request_id == request_id).limit(1))
            ).scalar_one_or_none()
            if owner != actor.user_id:
                raise NotFound("No trace with that request id.", param="request_id", code="trace_not_found")
        tree = await load_tree(session, request_id, actor.org_id)
    if not tree:
        raise NotFound("No trace with that request id.", param="request_id", code="trace_not_found")
    return {"object": "trace", "request_id": request_id, "spans": tree}


__all__ = ["openai_extension", "router", "traces_router"]  # web/v1.py imports openai_extension from here
