"""The JSON Schema the natural-language builder constrains the model with.

A subset of the app definition (`definition_json_schema`) with short length bounds and the
essential fields required: grammar-constrained decoding (llama.cpp) then cannot wander into
an endless string or an empty object, and a small model finishes within its token budget.
What it leaves out (icon, model, tools, knowledge, parameters) takes its default and can be
edited in the review; everything is validated against the full definition afterwards.
"""

from __future__ import annotations

from typing import Any

from aiport.apps.definition import AppDefinition, Variable

MAX_VARIABLES = 5
MAX_OPTIONS = 5


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length}


def _variable_schema() -> dict[str, Any]:
    types = list(Variable.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,29}$"},
            "label": _text(50),
            "type": {"type": "string", "enum": types},
            "required": {"type": "boolean"},
            "options": {"type": "array", "items": _text(30), "maxItems": MAX_OPTIONS},
            "help": _text(80),
        },
        "required": ["name", "label", "type", "required"],
        "additionalProperties": False,
    }


def draft_json_schema() -> dict[str, Any]:
    kinds = list(AppDefinition.model_fields["kind"].annotation.__args__)  # type: ignore[union-attr]
    return {
        "type": "object",
        "properties": {
            "name": _text(60),
            "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$"},
            "description": _text(160),
            "kind": {"type": "string", "enum": kinds},
            "variables": {"type": "array", "items": _variable_schema(), "maxItems": MAX_VARIABLES},
            "system_prompt": _text(600),
            "prompt_template": _text(200),
            "opening_message": _text(160),
            "suggested_questions": {"type": "array", "items": _text(80), "maxItems": 3},
        },
        "required": ["name", "slug", "description", "kind", "variables", "system_prompt", "prompt_template"],
        "additionalProperties": False,
    }
