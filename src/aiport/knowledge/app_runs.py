"""App runs (`POST /api/apps/{slug}/runs`, continue, regenerate) with the app's knowledge,
tools and ask-back: the hook web/conversations.py calls before the model. None when the
app has no knowledge, no tools and no select field to check the message against, so plain
apps run exactly as before.

A new message may be asked back ("which document?", "formal or casual?"): the run then
ends with the question and its choices instead of an answer, and the chosen answer comes
back through `resumed_run` (`POST /api/conversations/{id}/clarifications/{cid}`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiport.accounts.authz import Actor
from aiport.apps.clarify import form_fields
from aiport.domain.chat import Completion, Delta
from aiport.gateway.call import Call
from aiport.knowledge.assist import Assist, Outcome, check_form_or_ask, resume, run, visible_collections
from aiport.store.apps import App, AppVersion

if TYPE_CHECKING:
    from aiport.web.runtime import Runtime


@dataclass(slots=True)
class Grounded:
    outcome: Outcome

    @property
    def completion(self) -> Completion:
        assert self.outcome.completion is not None
        return self.outcome.completion

    @property
    def citations(self) -> list[dict[str, Any]]:
        return self.outcome.citations

    @property
    def clarification(self) -> dict[str, Any] | None:
        """The question asked back instead of an answer, with its choices."""
        return self.outcome.clarification

    def deltas(self) -> AsyncIterator[Delta]:
        """The answer as a stream, for runs that asked for one: the model's own stream with
        knowledge alone; the finished answer in one piece after an agent's tool steps."""
        if self.outcome.deltas is not None:
            return self.outcome.deltas
        return self._whole()

    async def _whole(self) -> AsyncIterator[Delta]:
        if self.completion.text:
            yield Delta(text=self.completion.text)
        yield Delta(finish_reason=self.completion.finish_reason, usage=self.completion.usage)


async def _definition(rt: Runtime, call: Call) -> dict[str, Any]:
    async with rt.sessions() as session:
        if call.request.app_version_id is not None:
            version = await session.get(AppVersion, call.request.app_version_id)
            return dict(version.definition) if version is not None else {}
        app = await session.get(App, call.request.app_id) if call.request.app_id else None
        return dict(app.draft) if app is not None else {}  # a builder's test run of the draft


async def grounded_run(
    rt: Runtime,
    actor: Actor,
    call: Call,
    *,
    stream: bool = False,
    clarify: bool = False,
    inputs: dict[str, Any] | None = None,
) -> Grounded | None:
    """Run `call` (composed by prepare_run) with the app's knowledge and tools, asking back
    first when `clarify` and the message is ambiguous or contradicts the form `inputs`."""
    definition = await _definition(rt, call)
    knowledge = list(definition.get("knowledge") or [])
    tools = list(definition.get("tools") or [])
    form = form_fields(definition, inputs) if clarify and rt.settings.clarify_enabled else []
    if not knowledge and not tools:
        asked = await check_form_or_ask(rt, call, form) if form else None
        return None if asked is None else Grounded(asked)
    async with rt.sessions() as session:
        visible = {c.id for c in await visible_collections(session, actor, None)} if knowledge else set()
    assist = Assist(
        collection_ids=[c for c in knowledge if c in visible],  # the caller's access decides
        tools=tools,
        clarify=clarify,
        form=form or None,
        use_knowledge=bool(knowledge),
        stream=stream and not tools,
    )
    return _grounded(call, await run(rt, actor, call, assist))


async def resumed_run(
    rt: Runtime, actor: Actor, call: Call, clarification_id: str, choice: str, text: str | None, *, stream: bool
) -> Grounded:
    """The run that answers a clarification: the asking request again, the choice explicit."""
    return _grounded(call, await resume(rt, actor, clarification_id, choice, text, call, stream=stream))


def _grounded(call: Call, outcome: Outcome) -> Grounded:
    if outcome.agent is not None and outcome.completion is not None:
        call.text_parts = [outcome.completion.text or ""]  # the run stores the final answer, not step 1's
    return Grounded(outcome)
