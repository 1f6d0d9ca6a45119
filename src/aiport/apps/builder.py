"""The natural-language builder: "an app that turns meeting notes into a Korean summary…"
-> a complete, valid app definition the person reviews, edits and saves.

The model is called through the one pipeline (entry point `builder`, so it is metered and
audited like any call) with a JSON Schema as `response_format` where the model supports
structured output (plain JSON mode elsewhere): a bounded subset of the definition's schema
(`draft_schema`), so a small model finishes its draft. Its answer is parsed, repaired
(see `repair`) and validated against the whole definition; when it still fails, the model
gets the precise errors and another try, and after the last one the caller gets them as a 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiport.apps.compose import ModelDirectory, resolve_model
from aiport.apps.definition import AppDefinition, FieldError, definition_errors
from aiport.apps.draft_schema import draft_json_schema
from aiport.apps.repair import repair_definition
from aiport.domain.chat import ChatRequest, Message
from aiport.domain.errors import Unprocessable
from aiport.domain.principal import Principal
from aiport.gateway.call import Call
from aiport.gateway.pipeline import Pipeline

SYSTEM_PROMPT = """You design AI apps for aiport, a platform where teams share AI tools.
Answer with ONE JSON object: an app definition. No prose, no markdown fences.

Fields:
- name: short human name; slug: lowercase-with-dashes; description: one sentence; icon: one emoji
- kind: "generator" (a form in, a text out), "chat" (a conversation) or "agent"
- variables: the form fields, each {"name": snake_case, "label", "type", "required", "default", "help"}
  type is one of short_text, long_text, select (with "options": [...]), number (with "min"/"max"), toggle
- system_prompt: instructions for the model; use the variables as {{ name }} (Jinja); {% if x %}...{% endif %} allowed
- prompt_template: the first user message, usually containing the main input, e.g. "{{ notes }}"
- model: "auto"; params: {"temperature": 0.3}
- opening_message, suggested_questions: for chat apps
- tools, knowledge: []

Example for "turn a product description into a tweet":
{"name": "Tweet writer", "slug": "tweet-writer", "description": "Turns a product description into a tweet.",
 "icon": "🐦", "kind": "generator",
 "variables": [{"name": "product", "label": "Product description", "type": "long_text", "required": true},
  {"name": "tone", "label": "Tone", "type": "select", "options": ["playful", "professional"], "default": "playful"}],
 "system_prompt": "You write one tweet (max 280 characters) in a {{ tone }} tone.",
 "prompt_template": "{{ product }}", "model": "auto", "params": {"temperature": 0.7},
 "opening_message": "", "suggested_questions": [], "tools": [], "knowledge": []}"""


@dataclass(slots=True)
class BuilderResult:
    definition: AppDefinition
    repairs: list[str]
    attempts: int
    model: str
    request_ids: list[str] = field(default_factory=list)


def extract_json(text: str) -> Any:
    """The JSON object in a model's answer: bare, fenced in ```json, or amid prose."""
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [text]
    if fenced:
        candidates.append(fenced.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    error: json.JSONDecodeError | None = None
    for candidate in candidates:
        for attempt in (candidate, re.sub(r",\s*([}\]])", r"\1", candidate)):  # trailing commas
            try:
                return json.loads(attempt)
            except json.JSONDecodeError as exc:
                error = error or exc
    raise ValueError(f"not JSON ({error.msg} at line {error.lineno} column {error.colno})" if error else "empty")


def _response_format(model: str, router: ModelDirectory, principal: Principal) -> dict[str, Any]:
    config = next((m for m in router.models_for(principal) if m.name == model), None)
    if config is not None and getattr(config, "supports_json_schema", False):
        schema = {"name": "app_definition", "schema": draft_json_schema(), "strict": False}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "json_object"}


def _max_tokens(model: str, router: ModelDirectory, principal: Principal) -> int | None:
    config = next((m for m in router.models_for(principal) if m.name == model), None)
    return min(1536, int(config.max_output_tokens)) if config is not None else None


def _feedback(problem: str) -> Message:
    return {
        "role": "user",
        "content": f"Your last answer could not be used: {problem}\nAnswer again with one corrected JSON object only.",
    }


async def draft_app(
    pipeline: Pipeline,
    router: ModelDirectory,
    principal: Principal,
    description: str,
    *,
    model: str | None,
    attempts: int,
    taken_slugs: set[str],
    new_call: Callable[[ChatRequest], Call],
) -> BuilderResult:
    """Ask the model for an app definition until one validates (after repair) or tries run out."""
    model = resolve_model(model or "auto", router, principal)
    params: dict[str, Any] = {"response_format": _response_format(model, router, principal), "temperature": 0.2}
    max_tokens = _max_tokens(model, router, principal)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": description}]
    models = {m.name for m in router.models_for(principal)}
    request_ids: list[str] = []
    errors: Sequence[FieldError] = []
    problem = ""
    for attempt in range(1, attempts + 1):
        call = new_call(ChatRequest(model=model, messages=list(messages), params=dict(params), entry_point="builder"))
        request_ids.append(call.request_id)
        completion = await pipeline.complete(call)
        answer = completion.text or ""
        try:
            data = extract_json(answer)
        except ValueError as exc:
            problem, errors = f"the answer is {exc}.", []
        else:
            repaired, notes = repair_definition(data, description=description, models=models, taken_slugs=taken_slugs)
            defn, errors = definition_errors(repaired)
            if defn is not None and not errors:
                return BuilderResult(defn, notes, attempt, model, request_ids)
            problem = "; ".join(str(e) for e in errors[:20])
        messages += [{"role": "assistant", "content": answer[:8000]}, _feedback(problem)]
    raise draft_rejected(problem, errors, attempts, request_ids)


def draft_rejected(problem: str, errors: Sequence[FieldError], attempts: int, request_ids: list[str]) -> Unprocessable:
    where = errors[0].path if errors else None
    code = "draft_invalid" if errors else "draft_unparseable"
    message = (
        f"The model could not draft a valid app in {attempts} tr{'y' if attempts == 1 else 'ies'}: {problem} "
        "Describe the app in more detail, try a stronger model, or start from an empty app in the builder."
    )
    exc = Unprocessable(message, param=f"draft.{where}" if where else None, code=code)
    exc.headers = {"x-aiport-builder-requests": ",".join(request_ids)}
    return exc
