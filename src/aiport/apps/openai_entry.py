"""`model="app:<slug>"` on the OpenAI-compatible API: the caller's messages run through the
app's published version (system prompt, form values from the `inputs` body field, model
policy, parameters), then through the normal pipeline like any other call."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport.accounts.authz import Action, load_actor
from aiport.apps.compose import ModelDirectory, build_request, compose_for_api, render_prompts, resolve_model
from aiport.apps.forms import validate_inputs
from aiport.apps.registry import load_app, published
from aiport.apps.runs import run_principal
from aiport.domain.errors import InvalidRequest, Unprocessable
from aiport.gateway.call import Call

APP_MODEL_PREFIX = "app:"


def is_app_model(model: str) -> bool:
    return model.startswith(APP_MODEL_PREFIX)


async def compose_app_call(
    sessions: async_sessionmaker[AsyncSession],
    router: ModelDirectory,
    call: Call,
    body: dict[str, Any],
    *,
    max_prompt_chars: int,
) -> None:
    """Turn `call` (parsed from the wire, model `app:<slug>`) into the app's request."""
    assert call.principal is not None
    request = call.request
    async with sessions() as session:
        actor = await load_actor(session, call.principal)
        loaded = await load_app(session, actor, request.model[len(APP_MODEL_PREFIX) :], Action.APP_RUN)
        version, defn = await published(session, loaded.app)
    try:
        values = validate_inputs(defn, body.get("inputs"))
        system, prompt = render_prompts(defn, values, max_prompt_chars)
    except Unprocessable as exc:  # the OpenAI API answers bad input with 400, as OpenAI does
        raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from exc
    principal = run_principal(actor)
    call.principal = principal
    call.request = build_request(
        defn,
        compose_for_api(system, prompt, request.messages),
        model=resolve_model(defn.model, router, principal),
        app_id=loaded.app.id,
        app_version_id=version.id,
        entry_point=request.entry_point,
        stream=request.stream,
        caller_params=request.params,
        include_usage=request.include_usage,
        client_request_id=request.client_request_id,
    )
    # keep whatever else the entry point set on the request (cache control and the like)
    for name in ("cache_ttl", "cache_mode"):
        if hasattr(request, name):
            setattr(call.request, name, getattr(request, name))
