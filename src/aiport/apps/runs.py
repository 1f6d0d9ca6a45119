"""Running an app: prepare (authorize, validate the form, compose, persist the turn), hand
the Call to the one pipeline, then persist the answer. Entry points only deliver it.

Stopping: a streaming run registers a stop event under its conversation; `stop` sets it
and the stream ends at once (the upstream request is closed, so the provider stops too).
The registry is per process: with several replicas, a stop reaches the run only on the
replica serving it (the client can always stop by disconnecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.accounts.authz import Action, Actor
from aiport.apps.compose import (
    ModelDirectory,
    build_request,
    compose_messages,
    first_turn,
    render_prompts,
    resolve_model,
)
from aiport.apps.conversations import (
    drop_last_answer,
    history,
    load_conversation,
    message_id_after,
    messages_of,
    title_from,
)
from aiport.apps.definition import AppDefinition
from aiport.apps.forms import validate_inputs
from aiport.apps.registry import load_app, published
from aiport.domain.chat import Delta
from aiport.domain.errors import Unprocessable
from aiport.domain.principal import Principal
from aiport.gateway.call import Call
from aiport.store.apps import App, AppVersion, Conversation, ConversationMessage
from aiport.store.models import utcnow


@dataclass(slots=True)
class RunSpec:
    slug: str | None = None
    inputs: dict[str, Any] | None = None
    message: str | None = None
    conversation_id: str | None = None
    stream: bool = False
    draft: bool = False  # a builder's test run of the unpublished draft
    regenerate: bool = False
    resolve: tuple[str, str, str | None] | None = None  # answers (clarification id, choice id, free text)


@dataclass(slots=True)
class PreparedRun:
    call: Call
    conversation: Conversation
    app_slug: str
    version: AppVersion | None
    assistant_id: str
    user_message_id: str | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    saved: bool = False
    citations: list[dict[str, Any]] | None = None  # the sources of a grounded answer, stored with it

    def header(self) -> dict[str, Any]:
        """What the client learns before the answer: where it will be stored, which version."""
        return {
            "object": "app.run",
            "conversation_id": self.conversation.id,
            "app": self.app_slug,
            "app_version": {"id": self.version.id, "number": self.version.number} if self.version else None,
            "draft": self.version is None,
            "user_message_id": self.user_message_id,
            "assistant_message_id": self.assistant_id,
            "request_id": self.call.request_id,
        }


def run_principal(actor: Actor) -> Principal:
    """An app-bound key may use whatever model its app uses (its own model list is empty)."""
    if actor.app_key_app_id is not None:
        return dataclasses.replace(actor.principal, allowed_models=None)
    return actor.principal


async def _target(
    session: AsyncSession, actor: Actor, spec: RunSpec
) -> tuple[App, AppVersion | None, AppDefinition, Conversation | None]:
    conversation = None
    slug = spec.slug
    if spec.conversation_id:
        conversation = await load_conversation(session, actor, spec.conversation_id, Action.CONVERSATION_WRITE)
        app = await session.get(App, conversation.app_id)
        assert app is not None
        if slug is not None and slug != app.slug:
            raise Unprocessable("This conversation belongs to another app.", param="conversation_id")
        slug, spec.draft = app.slug, conversation.is_draft
    if slug is None:
        raise Unprocessable("Name the app or the conversation to continue.", param="conversation_id")
    loaded = await load_app(session, actor, slug, Action.APP_EDIT if spec.draft else Action.APP_RUN)
    if spec.draft:
        return loaded.app, None, loaded.draft, conversation
    version, defn = await published(session, loaded.app)
    return loaded.app, version, defn, conversation


async def prepare_run(
    sessions: async_sessionmaker[AsyncSession],
    router: ModelDirectory,
    actor: Actor,
    spec: RunSpec,
    *,
    max_prompt_chars: int,
    call: Call,
) -> PreparedRun:
    """Everything before the model: checks, compose, the user's turn and the answer's
    placeholder, committed, so the conversation is whole even if the model fails."""
    async with sessions() as session, session.begin():
        app, version, defn, conversation = await _target(session, actor, spec)
        if conversation is None:
            values = validate_inputs(defn, spec.inputs)
            conversation = Conversation(
                org_id=actor.org_id,
                app_id=app.id,
                user_id=actor.user_id,
                title=title_from(spec.message or "", defn.name),
                inputs=values,
                is_draft=spec.draft,
            )
            session.add(conversation)
            await session.flush()
            earlier: list[ConversationMessage] = []
        else:
            values = validate_inputs(defn, spec.inputs if spec.inputs is not None else _still_known(defn, conversation))
            conversation.inputs = values
            earlier = await messages_of(session, conversation.id)
        system, prompt = render_prompts(defn, values, max_prompt_chars)
        user_message = None
        if spec.regenerate:
            earlier = await drop_last_answer(session, earlier)
        else:
            has_turns = any(m.role == "user" for m in earlier)
            if has_turns and not (spec.message or "").strip():
                raise Unprocessable("Write a message to continue the conversation.", param="message")
            text = spec.message.strip() if has_turns and spec.message else first_turn(prompt, spec.message)
            user_message = ConversationMessage(
                id=message_id_after(earlier[-1].id if earlier else None),
                conversation_id=conversation.id,
                role="user",
                content=text,
            )
            session.add(user_message)
            earlier.append(user_message)
        version_id = version.id if version else None
        assistant = ConversationMessage(
            id=message_id_after(earlier[-1].id if earlier else None),
            conversation_id=conversation.id,
            role="assistant",
            content="",
            status="pending",
            app_version_id=version_id,
        )
        session.add(assistant)
        conversation.updated_at = utcnow()
        await session.flush()
        principal = run_principal(actor)
        call.principal = principal
        call.request = build_request(
            defn,
            compose_messages(system, history(earlier)),
            model=resolve_model(defn.model, router, principal),
            app_id=app.id,
            app_version_id=version_id,
            entry_point="app_test" if spec.draft else "app",
            stream=spec.stream,
        )
        if user_message is not None:
            user_message.app_version_id = version_id
            user_message.request_id = call.request_id
        assistant.request_id = call.request_id
    return PreparedRun(
        call=call,
        conversation=conversation,
        app_slug=app.slug,
        version=version,
        assistant_id=assistant.id,
        user_message_id=user_message.id if user_message else None,
    )


def _still_known(defn: AppDefinition, conversation: Conversation) -> dict[str, Any]:
    """The conversation's form values for the fields the (maybe newer) version still has."""
    known = {v.name for v in defn.variables}
    return {k: v for k, v in conversation.inputs.items() if k in known and v is not None}


def outcome(prepared: PreparedRun) -> str:
    call = prepared.call
    if call.finish_reason == "clarification":
        return "clarification"  # asked back: the answer's place holds the question
    if prepared.stop.is_set() or call.status == "client_closed":
        return "stopped"
    return "complete" if call.status == "ok" else "error"


async def finish_run(sessions: async_sessionmaker[AsyncSession], prepared: PreparedRun) -> ConversationMessage | None:
    """Store the answer (whole, partial or failed) in the assistant placeholder, once."""
    if prepared.saved:
        return None
    prepared.saved = True
    call = prepared.call
    async with sessions() as session, session.begin():
        message = await session.get(ConversationMessage, prepared.assistant_id)
        if message is None:  # the conversation was deleted meanwhile
            return None
        message.content = call.output_text
        message.status = outcome(prepared)
        message.model = call.model.name if call.model else None
        message.log_id = call.log_id
        message.error = call.error if message.status == "error" else None
        message.citations = prepared.citations
    return message


async def until_stopped(deltas: AsyncIterator[Delta], stop: asyncio.Event) -> AsyncIterator[Delta]:
    """Pass deltas through until `stop` is set; then cancel the pending read, which closes
    the upstream request (the pipeline records the call with its partial answer)."""
    stopper = asyncio.ensure_future(stop.wait())
    pending: asyncio.Future[Delta] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(anext(deltas))
            await asyncio.wait((pending, stopper), return_when=asyncio.FIRST_COMPLETED)
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
                return
            try:
                delta = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield delta
    finally:
        stopper.cancel()
        if pending is not None and not pending.done():
            pending.cancel()  # the client left: let the pipeline record the partial call before we go on
            await asyncio.wait((pending,))
        aclose = getattr(deltas, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await aclose()
