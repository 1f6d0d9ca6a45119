"""Repairing a model's draft of an app definition into something valid and editable.

Small models get the shape roughly right and the details wrong: camelCase keys, wrapped
objects, "dropdown" for select, options as one comma-separated string, numbers as text,
`{tone}` instead of `{{ tone }}`, variables used but never declared. Each fix is cheap,
safe and reported, so the person reviewing the draft sees what was changed. What can't be
fixed safely (a broken template, nonsense types) is left for validation to reject.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiport.accounts.people import slugify
from aiport.apps.definition import (
    AVAILABLE_TOOLS,
    KNOWLEDGE_ID_PATTERN,
    TEXT_LIMITS,
    AppDefinition,
    GenerationParams,
    Variable,
)
from aiport.apps.templates import template_names

_KINDS = {
    "chat": "chat", "chatbot": "chat", "assistant": "chat", "conversation": "chat", "conversational": "chat",
    "generator": "generator", "form": "generator", "generate": "generator", "generation": "generator",
    "writer": "generator", "completion": "generator", "agent": "agent", "tool": "agent", "tools": "agent",
}  # fmt: skip
_TYPES = {
    "shorttext": "short_text", "text": "short_text", "string": "short_text", "short": "short_text",
    "input": "short_text", "line": "short_text", "str": "short_text",
    "longtext": "long_text", "long": "long_text", "textarea": "long_text", "paragraph": "long_text",
    "multiline": "long_text", "document": "long_text",
    "select": "select", "enum": "select", "choice": "select", "choices": "select", "dropdown": "select",
    "radio": "select", "options": "select", "list": "select",
    "toggle": "toggle", "boolean": "toggle", "bool": "toggle", "checkbox": "toggle", "switch": "toggle",
    "number": "number", "integer": "number", "int": "number", "float": "number", "numeric": "number",
    "range": "number", "slider": "number",
}  # fmt: skip
_TOP_ALIASES = {
    "title": "name", "appname": "name", "id": "slug", "emoji": "icon", "type": "kind", "apptype": "kind",
    "systemprompt": "system_prompt", "system": "system_prompt", "instructions": "system_prompt",
    "prompt": "prompt_template", "template": "prompt_template", "prompttemplate": "prompt_template",
    "usertemplate": "prompt_template", "userprompt": "prompt_template",
    "inputs": "variables", "fields": "variables", "form": "variables", "formfields": "variables",
    "parameters": "params", "generationparams": "params", "settings": "params", "modelpolicy": "model",
    "openingmessage": "opening_message", "greeting": "opening_message", "welcome": "opening_message",
    "welcomemessage": "opening_message", "suggestedquestions": "suggested_questions",
    "suggestions": "suggested_questions", "examples": "suggested_questions", "starters": "suggested_questions",
}  # fmt: skip
_VAR_ALIASES = {
    "key": "name", "id": "name", "variable": "name", "title": "label", "description": "help",
    "hint": "help", "helptext": "help", "choices": "options", "values": "options", "enum": "options",
    "minimum": "min", "maximum": "max", "defaultvalue": "default", "maxlength": "max_length",
    "kind": "type", "widget": "type", "isrequired": "required",
}  # fmt: skip
_WRAPPERS = ("app", "definition", "app_definition", "appdefinition", "draft", "result")
_TRUE = {"true", "yes", "1", "on", "required"}
_FALSE = {"false", "no", "0", "off", "optional", ""}


def _norm(key: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def _rename_keys(data: dict[str, Any], allowed: set[str], aliases: dict[str, str], where: str,
                 notes: list[str]) -> dict[str, Any]:  # fmt: skip
    by_norm = {_norm(k): k for k in allowed}
    out: dict[str, Any] = {}
    for key, value in data.items():
        target = key if key in allowed else by_norm.get(_norm(key)) or aliases.get(_norm(key))
        if target is None:
            notes.append(f"dropped unknown field {where}{key}")
        elif target in out:
            notes.append(f"dropped duplicate field {where}{key}")
        else:
            if target != key:
                notes.append(f"renamed {where}{key} to {where}{target}")
            out[target] = value
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    return value if isinstance(value, str) else str(value)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    return True if text in _TRUE else (False if text in _FALSE else None)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = float(_text(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _identifier(text: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()).strip("_")
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "v_" + name
    return name[:40].rstrip("_") or "v"


def _list_of_text(value: Any) -> list[str]:
    if isinstance(value, str):
        sep = "\n" if "\n" in value else ","
        return [part.strip() for part in value.split(sep) if part.strip()]
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return []
    return [_text(v).strip() for v in value if _text(v).strip()]


def _repair_variable(raw: Any, index: int, taken: set[str], notes: list[str]) -> dict[str, Any] | None:
    at = f"variables[{index}]."
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        notes.append(f"dropped variables[{index}]: not an object")
        return None
    var = _rename_keys(raw, set(Variable.model_fields), _VAR_ALIASES, at, notes)
    original = _text(var.get("name") or var.get("label") or f"field_{index + 1}")
    name = _identifier(original)
    while name in taken:
        name = f"{name[:37]}_{len(taken) + 1}"
    if name != original:
        notes.append(f"renamed variable '{original}' to '{name}'")
    taken.add(name)
    var["name"] = name
    var["label"] = _text(var.get("label")).strip()[:100] or name.replace("_", " ").capitalize()
    kind = _TYPES.get(_norm(var.get("type", "short_text")))
    if kind is None:
        notes.append(f"{at}type '{var.get('type')}' is unknown; made it short_text")
        kind = "short_text"
    options = _list_of_text(var.get("options")) if "options" in var else []
    if options and kind != "select":
        notes.append(f"{at}type: has options, so it became a select")
        kind = "select"
    if kind == "select" and not options:
        notes.append(f"{at}type: a select without options became short_text")
        kind = "short_text"
    var["type"] = kind
    var["options"] = list(dict.fromkeys(o[:200] for o in options))[:50] if kind == "select" else []
    if "required" in var:
        var["required"] = bool(_bool(var["required"]))
    var["help"] = _text(var.get("help")).strip()[:500]
    for bound in ("min", "max"):
        var[bound] = _number(var.get(bound)) if kind == "number" else None
    if var["min"] is not None and var["max"] is not None and var["min"] > var["max"]:
        var["min"], var["max"] = var["max"], var["min"]
        notes.append(f"{at}min and max were swapped")
    length = _number(var.get("max_length"))
    var["max_length"] = int(length) if kind in TEXT_LIMITS and length and 1 <= length <= 20_000 else None
    var["integer"] = bool(_bool(var.get("integer"))) if kind == "number" else False
    var["default"] = _repair_default(var, kind, at, notes)
    return var


def _repair_default(var: dict[str, Any], kind: str, at: str, notes: list[str]) -> Any:
    default = var.get("default")
    if default is None or default == "":
        return None
    fixed: Any
    if kind == "toggle":
        fixed = _bool(default)
    elif kind == "number":
        fixed = _number(default)
        low, high = var.get("min"), var.get("max")
        if fixed is not None and ((low is not None and fixed < low) or (high is not None and fixed > high)):
            fixed = None
    elif kind == "select":
        text = _text(default).strip()
        fixed = next((o for o in var["options"] if o.lower() == text.lower()), None)
    else:
        fixed = _text(default)[: var.get("max_length") or TEXT_LIMITS[kind]]
    if fixed is None:
        notes.append(f"{at}default {default!r} did not fit the field and was removed")
    return fixed


_SINGLE_BRACES = re.compile(r"(?<!\{)\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}(?!\})")


def _repair_template(field: str, text: str, variables: list[dict[str, Any]], notes: list[str]) -> str:
    names = {v["name"] for v in variables}

    def to_jinja(match: re.Match[str]) -> str:
        name = _identifier(match.group(1))
        return "{{ " + name + " }}" if name in names or match.group(1) in names else match.group(0)

    fixed = _SINGLE_BRACES.sub(to_jinja, text)
    if fixed != text:
        notes.append(f"{field}: turned {{name}} placeholders into {{{{ name }}}}")
    used = template_names(fixed)
    for name in sorted((used or set()) - names):
        if re.fullmatch(r"[a-z_][a-z0-9_]{0,39}", name) and len(variables) < 30:
            variables.append({"name": name, "label": name.replace("_", " ").capitalize(), "type": "short_text"})
            names.add(name)
            notes.append(f"{field} uses '{name}', so a short_text variable '{name}' was added")
    return fixed


def _repair_params(raw: Any, notes: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        if raw not in (None, {}):
            notes.append("params was not an object and was reset")
        return {}
    params = _rename_keys(raw, set(GenerationParams.model_fields), {"maxoutputtokens": "max_tokens"}, "params.", notes)
    ranges = {"temperature": (0, 2), "top_p": (0, 1), "max_tokens": (1, 100_000), "presence_penalty": (-2, 2),
              "frequency_penalty": (-2, 2)}  # fmt: skip
    for key, (low, high) in ranges.items():
        if key in params:
            number = _number(params[key])
            if number is None:
                notes.append(f"params.{key} was not a number and was removed")
                del params[key]
            else:
                clamped = min(max(number, low), high)
                if clamped != number:
                    notes.append(f"params.{key} {number} was clamped to {clamped}")
                params[key] = int(clamped) if key == "max_tokens" else clamped
    if "stop" in params:
        params["stop"] = [s[:100] for s in _list_of_text(params["stop"])][:4] or None
    if "seed" in params:
        seed = _number(params["seed"])
        params["seed"] = int(seed) if seed is not None else None
    return params


def repair_definition(data: Any, *, description: str, models: set[str], taken_slugs: set[str]) -> tuple[Any, list[str]]:
    """Return (repaired data, what was changed). Non-objects come back as they are."""
    notes: list[str] = []
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
        notes.append("unwrapped a one-element list")
    if isinstance(data, dict) and len(data) == 1 and _norm(next(iter(data))) in _WRAPPERS:
        inner = next(iter(data.values()))
        if isinstance(inner, dict):
            notes.append(f"unwrapped the '{next(iter(data))}' object")
            data = inner
    if not isinstance(data, dict):
        return data, notes
    app = _rename_keys(data, set(AppDefinition.model_fields), _TOP_ALIASES, "", notes)
    name = _text(app.get("name")).strip()
    if not name:
        name = " ".join(description.split()[:6]).strip().capitalize() or "New app"
        notes.append(f"name was missing; used '{name[:100]}'")
    app["name"] = name[:100]
    slug = slugify(_text(app.get("slug")) or name) or "app"
    base, n = slug, 2
    while slug in taken_slugs or slug in ("schema", "builder", "new"):
        slug, n = f"{base[:60]}-{n}", n + 1
    if slug != app.get("slug"):
        notes.append(f"slug set to '{slug}'")
    app["slug"] = slug
    for field in ("description", "icon", "opening_message"):
        if field in app:
            app[field] = _text(app[field]).strip()[: {"description": 1000, "icon": 16, "opening_message": 2000}[field]]
    if "kind" in app:
        kind = _KINDS.get(_norm(app["kind"]))
        if kind is None:
            notes.append(f"kind '{app['kind']}' is unknown; made it chat")
        app["kind"] = kind or "chat"
    raw_vars = app.get("variables") or []
    if isinstance(raw_vars, dict):
        raw_vars = [{"name": k, **(v if isinstance(v, dict) else {"default": v})} for k, v in raw_vars.items()]
    taken: set[str] = set()
    variables = [v for i, raw in enumerate(raw_vars if isinstance(raw_vars, list) else []) if
                 (v := _repair_variable(raw, i, taken, notes)) is not None][:30]  # fmt: skip
    for field in ("system_prompt", "prompt_template"):
        app[field] = _repair_template(field, _text(app.get(field))[:20_000], variables, notes)
    app["variables"] = variables
    model = app.get("model")
    if not isinstance(model, str) or (model != "auto" and model not in models):
        if model not in (None, "auto"):
            notes.append(f"model '{model}' is not available here; set to 'auto'")
        app["model"] = "auto"
    app["params"] = _repair_params(app.get("params"), notes)
    if "suggested_questions" in app:
        app["suggested_questions"] = [q[:300] for q in _list_of_text(app["suggested_questions"])][:10]
    app["tools"] = _keep(app.get("tools"), lambda t: t in AVAILABLE_TOOLS, "tools", "is not an available tool", notes)
    app["knowledge"] = _keep(
        app.get("knowledge"), lambda k: re.match(KNOWLEDGE_ID_PATTERN, k) is not None, "knowledge",
        "is not a knowledge collection id", notes,
    )  # fmt: skip
    return app, notes


def _keep(raw: Any, known: Callable[[str], bool], field: str, why: str, notes: list[str]) -> list[str]:
    """Keep the entries that exist here; a model inventing a tool or a source loses it, with a note."""
    kept: list[str] = []
    for item in _list_of_text(raw):
        if known(item) and item not in kept:
            kept.append(item)
        else:
            notes.append(f"{field}: removed '{item[:100]}', which {why}")
    return kept[:20]
