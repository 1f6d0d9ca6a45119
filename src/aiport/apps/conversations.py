"""Conversations with apps: each belongs to the person who started it, keeps the form values
it started with, and holds the messages as the model saw them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.authz import Action, Actor, ConversationAccess, authorize
from aiport.apps.clarify import clarification_view
from aiport.domain.chat import Message
from aiport.domain.errors import NotFound, Unprocessable
from aiport.domain.ids import new_id
from aiport.store.apps import App, Conversation, ConversationMessage
from aiport.store.knowledge import Clarification
from aiport.store.models import iso_utc, utcnow

TITLE_LENGTH = 80
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # domain.ids' Crockford base32


def message_id_after(previous: str | None) -> str:
    """A message id that sorts after `previous`. Ids are time-ordered only to the
    millisecond, and a turn's user message and answer are created in the same one."""
    candidate = new_id("msg_")
    if previous is None or candidate > previous:
        return candidate
    chars = list(previous)
    i = len(chars) - 1
    while chars[i] == _ALPHABET[-1]:  # increment with carry; 80 random bits never run out
        chars[i] = _ALPHABET[0]
        i -= 1
    chars[i] = _ALPHABET[_ALPHABET.index(chars[i]) + 1]
    return "".join(chars)


async def load_conversation(session: AsyncSession, actor: Actor, conversation_id: str, action: Action) -> Conversation:
    conversation = await session.get(Conversation, conversation_id[:40])
    if conversation is None:
        raise NotFound("No conversation with that id or slug.", code="conversation_not_found")
    authorize(actor, action, ConversationAccess(conversation.org_id, conversation.user_id))
    return conversation


async def list_conversations(
    session: AsyncSession,
    actor: Actor,
    *,
    app_id: str | None = None,
    user_id: str | None = None,
    include_drafts: bool = False,
    limit: int = 50,
    before: str | None = None,
) -> list[tuple[Conversation, str]]:
    """Newest first, with the app's slug. Only the caller's own, unless an org admin asks
    for another user's (authorized by the caller with USER_VIEW)."""
    query = (
        select(Conversation, App.slug)
        .join(App, App.id == Conversation.app_id)
        .where(Conversation.org_id == actor.org_id, Conversation.user_id == (user_id or actor.user_id))
    )
    if app_id is not None:
        query = query.where(Conversation.app_id == app_id)
    if not include_drafts:
        query = query.where(Conversation.is_draft.is_(False))
    if before:
        query = query.where(Conversation.id < before)
    rows = await session.execute(query.order_by(Conversation.id.desc()).limit(limit))
    return [(c, slug) for c, slug in rows.all()]


async def messages_of(session: AsyncSession, conversation_id: str) -> list[ConversationMessage]:
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.id)
    )
    return list((await session.execute(query)).scalars())


def history(messages: list[ConversationMessage]) -> list[Message]:
    """The turns to send to the model again: user turns and the answers that have text."""
    return [{"role": m.role, "content": m.content} for m in messages if m.role == "user" or m.content]


async def drop_last_answer(session: AsyncSession, messages: list[ConversationMessage]) -> list[ConversationMessage]:
    """For regenerate: remove the answers after the last user turn (the audit log keeps them)."""
    while messages and messages[-1].role == "assistant":
        await session.delete(messages.pop())
    if not messages:
        raise Unprocessable("There is nothing to regenerate in this conversation.", param="conversation_id")
    return messages


def title_from(text: str, fallback: str) -> str:
    line = " ".join(text.split())
    if not line:
        return fallback[:TITLE_LENGTH]
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


async def rename(conversation: Conversation, title: str) -> None:
    title = " ".join(title.split())
    if not title:
        raise Unprocessable("A title needs at least one character.", param="title")
    conversation.title = title[:200]
    conversation.updated_at = utcnow()


async def delete_conversation(session: AsyncSession, conversation: Conversation) -> None:
    await session.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id == conversation.id))
    await session.delete(conversation)


def message_view(message: ConversationMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "app_version_id": message.app_version_id,
        "request_id": message.request_id,
        "log_id": message.log_id,
        "model": message.model,
        "error": message.error,
        "citations": message.citations,
        "created_at": iso_utc(message.created_at),
    }


async def message_views(
    session: AsyncSession, org_id: str, messages: list[ConversationMessage]
) -> list[dict[str, Any]]:
    """Message views; an answer that asked back carries its question's choices."""
    asked = [m.request_id for m in messages if m.status == "clarification" and m.request_id]
    questions: dict[str, dict[str, Any]] = {}
    if asked:
        rows = await session.execute(
            select(Clarification).where(Clarification.org_id == org_id, Clarification.request_id.in_(asked))
        )
        questions = {row.request_id: clarification_view(row) for row in rows.scalars()}
    views = []
    for m in messages:
        view = message_view(m)
        if m.request_id in questions and m.status == "clarification":
            view["clarification"] = questions[m.request_id]
        views.append(view)
    return views


def conversation_view(
    conversation: Conversation, slug: str, messages: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": conversation.id,
        "app_id": conversation.app_id,
        "app_slug": slug,
        "user_id": conversation.user_id,
        "title": conversation.title,
        "inputs": conversation.inputs,
        "is_draft": conversation.is_draft,
        "created_at": iso_utc(conversation.created_at),
        "updated_at": iso_utc(conversation.updated_at),
    }
    if messages is not None:
        view["messages"] = messages
    return view
