"""Guided prompting: an app's variables as a form any client can render (JSON Schema), and
the validation of what was filled in (a 422 naming the field, e.g. `inputs.tone`)."""

from __future__ import annotations

from typing import Any

from aiport.apps.definition import AppDefinition, Variable
from aiport.domain.errors import Unprocessable

_JSON_TYPES = {
    "short_text": "string",
    "long_text": "string",
    "select": "string",
    "number": "number",
    "toggle": "boolean",
}


def _property(var: Variable) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": _JSON_TYPES[var.type], "title": var.label or var.name, "x-aiport-widget": var.type}
    if var.help:
        prop["description"] = var.help
    if var.type == "select":
        prop["enum"] = list(var.options)
    elif var.type == "number":
        if var.integer:
            prop["type"] = "integer"
        if var.min is not None:
            prop["minimum"] = var.min
        if var.max is not None:
            prop["maximum"] = var.max
    elif var.type in ("short_text", "long_text"):
        prop["maxLength"] = var.text_limit()
        if var.required:
            prop["minLength"] = 1
    if var.default is not None:
        prop["default"] = var.default
    return prop


def form_schema(defn: AppDefinition) -> dict[str, Any]:
    """JSON Schema (2020-12) of the app's inputs; `x-aiport-order` keeps the author's order."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": defn.name,
        "description": defn.description,
        "type": "object",
        "properties": {v.name: _property(v) for v in defn.variables},
        "required": [v.name for v in defn.variables if v.required and v.default is None],
        "additionalProperties": False,
        "x-aiport-order": [v.name for v in defn.variables],
    }


def _empty(var: Variable) -> Any:
    return "" if var.type in ("short_text", "long_text") else (False if var.type == "toggle" else None)


def _invalid(name: str, message: str) -> Unprocessable:
    return Unprocessable(f"Invalid value for 'inputs.{name}': {message}.", param=f"inputs.{name}", code="invalid_input")


def _coerce(var: Variable, value: Any) -> Any:
    label = var.label or var.name
    if var.type in ("short_text", "long_text", "select"):
        if not isinstance(value, str):
            return _raise(var, f"{label} must be text")
        if var.type == "select":
            if value not in var.options:
                return _raise(var, f"{label} must be one of {', '.join(repr(o) for o in var.options)}")
            return value
        if len(value) > var.text_limit():
            return _raise(var, f"{label} is {len(value)} characters; at most {var.text_limit()} are allowed")
        if var.required and not value.strip():
            return _raise(var, f"{label} is required")
        return value
    if var.type == "toggle":
        if not isinstance(value, bool):
            return _raise(var, f"{label} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _raise(var, f"{label} must be a number")
    if var.integer and value != int(value):
        return _raise(var, f"{label} must be a whole number")
    if var.min is not None and value < var.min:
        return _raise(var, f"{label} must be at least {var.min:g}")
    if var.max is not None and value > var.max:
        return _raise(var, f"{label} must be at most {var.max:g}")
    return int(value) if var.integer else value


def _raise(var: Variable, message: str) -> Any:
    raise _invalid(var.name, message)


def validate_inputs(defn: AppDefinition, inputs: Any) -> dict[str, Any]:
    """Check inputs against the form: unknown fields, types, options, ranges, required ones.
    Returns every variable's value (defaults filled in) for the templates."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise Unprocessable("'inputs' must be an object of form values.", param="inputs", code="invalid_input")
    unknown = sorted(set(inputs) - {v.name for v in defn.variables})
    if unknown:
        known = ", ".join(v.name for v in defn.variables) or "none"
        raise _invalid(unknown[0], f"this app has no field '{unknown[0]}' (fields: {known})")
    values: dict[str, Any] = {}
    for var in defn.variables:
        value = inputs.get(var.name)
        if value is None:
            if var.default is not None:
                values[var.name] = var.default
                continue
            if var.required:
                raise _invalid(var.name, f"{var.label or var.name} is required")
            values[var.name] = _empty(var)
            continue
        values[var.name] = _coerce(var, value)
    return values
