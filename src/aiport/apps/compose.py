"""The compose stage: app version + form values + conversation -> the messages and the
ChatRequest handed to the pipeline. Every app entry point (runs, the OpenAI API with
`model="app:<slug>"`, test runs of drafts) composes here, so they can't drift apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiport.apps.definition import AppDefinition
from aiport.apps.templates import render
from aiport.domain.chat import ChatRequest, Message
from aiport.domain.errors import Unprocessable
from aiport.domain.principal import Principal

AUTO = "auto"


class ModelDirectory(Protocol):
    """What compose needs from the router: which models and aliases a caller may use."""

    def models_for(self, principal: Principal) -> Sequence[Any]: ...


def resolve_model(policy: str, router: ModelDirectory, principal: Principal) -> str:
    """The model an app's policy names. `auto` goes to the router's `auto` alias when the
    catalog defines one (the smart router picks per request); otherwise, the first model of
    the catalog the caller may use. This is the one place to change that choice."""
    if policy != AUTO:
        return policy
    aliases = getattr(router, "aliases_for", None)
    if aliases is not None and AUTO in aliases(principal):
        return AUTO
    models = router.models_for(principal)
    if not models:
        raise Unprocessable("No model is available for this app's 'auto' policy.", param="model", code="no_model")
    return str(models[0].name)


def render_prompts(defn: AppDefinition, values: Mapping[str, Any], max_chars: int) -> tuple[str, str]:
    """(system prompt, first-turn prompt) rendered from the form values."""
    system = render(defn.system_prompt, values, field="system_prompt", max_chars=max_chars)
    prompt = render(defn.prompt_template, values, field="prompt_template", max_chars=max_chars)
    return system.strip(), prompt.strip()


def first_turn(prompt: str, message: str | None) -> str:
    """The first user message: the rendered form prompt, then what the user typed."""
    text = "\n\n".join(part for part in (prompt, (message or "").strip()) if part)
    if not text:
        raise Unprocessable(
            "Write a message: this app has no form prompt to send on its own.", param="message", code="invalid_input"
        )
    return text


def compose_messages(system: str, history: Sequence[Message]) -> list[Message]:
    """System prompt first, then the conversation in order."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.extend(history)
    return messages


def compose_for_api(system: str, prompt: str, caller_messages: Sequence[Message]) -> list[Message]:
    """For OpenAI clients calling `app:<slug>`: the app's system prompt, then the caller's
    messages, with the rendered form prompt in front of their first user message."""
    messages: list[Message] = [dict(m) for m in caller_messages]
    if prompt:
        index = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        if index is None:
            messages.append({"role": "user", "content": prompt})
        else:
            content = messages[index].get("content")
            if isinstance(content, str):
                messages[index]["content"] = first_turn(prompt, content)
            else:
                messages[index]["content"] = [{"type": "text", "text": prompt}, *(content or [])]
    return compose_messages(system, messages)


def build_request(
    defn: AppDefinition,
    messages: list[Message],
    *,
    model: str,
    app_id: str,
    app_version_id: str | None,
    entry_point: str,
    stream: bool,
    caller_params: Mapping[str, Any] | None = None,
    include_usage: bool = False,
    client_request_id: str | None = None,
) -> ChatRequest:
    """The app's generation parameters, overridden by what an API caller set explicitly."""
    params = {**defn.params.to_request_params(), **(caller_params or {})}
    return ChatRequest(
        model=model,
        messages=messages,
        params=params,
        stream=stream,
        include_usage=include_usage,
        entry_point=entry_point,
        app_id=app_id,
        app_version_id=app_version_id,
        client_request_id=client_request_id,
    )
