"""What an app is: a typed, validated definition (the same shape for the no-code builder,
the natural-language builder's JSON Schema, versions and seed apps).

Pydantic checks types and ranges; `check_definition` adds the rules that span fields
(select options, number ranges, templates that only use declared variables, known tools)
so every problem comes back with the exact path of the field to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiport.apps.templates import TemplateProblem, check_template
from aiport.domain.errors import Unprocessable
from aiport.tools import TOOL_NAMES

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
VARIABLE_NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,39}$"
VariableType = Literal["short_text", "long_text", "select", "number", "toggle"]
AppKind = Literal["chat", "generator", "agent"]
AVAILABLE_TOOLS: frozenset[str] = TOOL_NAMES  # aiport.tools (issue 7)
KNOWLEDGE_ID_PATTERN = r"^kc_[0-9a-z]{4,36}$"  # a knowledge collection id; access is checked per caller at run time
TEXT_LIMITS = {"short_text": 500, "long_text": 20_000}

_closed = ConfigDict(extra="forbid")
ShortStr = Annotated[str, Field(max_length=300)]


class Variable(BaseModel):
    """One form field: its value is validated against the form schema and reaches the
    templates as `{{ name }}`."""

    model_config = _closed
    name: Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN, description="identifier used in templates")]
    label: Annotated[str, Field(max_length=100)] = ""
    type: VariableType = "short_text"
    required: bool = False
    default: str | bool | int | float | None = None
    help: Annotated[str, Field(max_length=500)] = ""
    options: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=50)] = []
    min: float | None = None
    max: float | None = None
    integer: bool = False
    max_length: Annotated[int, Field(ge=1, le=20_000)] | None = None

    def text_limit(self) -> int:
        return self.max_length or TEXT_LIMITS.get(self.type, 500)


class GenerationParams(BaseModel):
    model_config = _closed
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=100_000)] | None = None
    stop: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None

    def to_request_params(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AppDefinition(BaseModel):
    """Everything that makes an app, versioned as a whole. Sharing is not part of it: who
    may run an app is access control, not content."""

    model_config = _closed
    name: Annotated[str, Field(min_length=1, max_length=100)]
    slug: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64, description="lowercase-with-dashes; app:<slug>")]
    description: Annotated[str, Field(max_length=1000)] = ""
    icon: Annotated[str, Field(max_length=16, description="an emoji")] = "✨"
    kind: AppKind = "chat"
    system_prompt: Annotated[str, Field(max_length=20_000, description="Jinja template over the variables")] = ""
    prompt_template: Annotated[
        str, Field(max_length=20_000, description="template of the first user message (generators: the form)")
    ] = ""
    variables: Annotated[list[Variable], Field(max_length=30)] = []
    model: Annotated[str, Field(min_length=1, max_length=200, description="a model name, or 'auto'")] = "auto"
    params: GenerationParams = GenerationParams()
    opening_message: Annotated[str, Field(max_length=2000)] = ""
    suggested_questions: Annotated[list[ShortStr], Field(max_length=10)] = []
    tools: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] = []
    knowledge: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] = []

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str  # e.g. "variables[1].options"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def loc_path(loc: tuple[Any, ...]) -> str:
    """('variables', 0, 'options') -> 'variables[0].options'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _variable_errors(i: int, var: Variable) -> list[FieldError]:
    at = f"variables[{i}]"
    errors: list[FieldError] = []
    if var.type == "select":
        if not var.options:
            errors.append(FieldError(f"{at}.options", "a select needs at least one option"))
        elif len(set(var.options)) != len(var.options):
            errors.append(FieldError(f"{at}.options", "options must be unique"))
        if var.default is not None and var.default not in var.options:
            errors.append(FieldError(f"{at}.default", f"the default must be one of the options {var.options}"))
    elif var.options:
        errors.append(FieldError(f"{at}.options", "only a select has options"))
    if var.type == "number":
        if var.min is not None and var.max is not None and var.min > var.max:
            errors.append(FieldError(f"{at}.min", "min must not be greater than max"))
        if var.default is not None:
            if isinstance(var.default, bool) or not isinstance(var.default, int | float):
                errors.append(FieldError(f"{at}.default", "the default of a number must be a number"))
            elif (var.min is not None and var.default < var.min) or (var.max is not None and var.default > var.max):
                errors.append(FieldError(f"{at}.default", "the default is outside min..max"))
    elif var.min is not None or var.max is not None:
        errors.append(FieldError(f"{at}.min", "only a number has min and max"))
    if var.type == "toggle" and var.default is not None and not isinstance(var.default, bool):
        errors.append(FieldError(f"{at}.default", "the default of a toggle must be true or false"))
    if var.type in TEXT_LIMITS and var.default is not None:
        if not isinstance(var.default, str):
            errors.append(FieldError(f"{at}.default", "the default of a text field must be a string"))
        elif len(var.default) > var.text_limit():
            errors.append(FieldError(f"{at}.default", "the default is longer than max_length"))
    return errors


def check_definition(defn: AppDefinition) -> list[FieldError]:
    """The cross-field rules Pydantic alone can't express, each with its field path."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, var in enumerate(defn.variables):
        if var.name in seen:
            errors.append(FieldError(f"variables[{i}].name", f"'{var.name}' is used by two variables"))
        seen.add(var.name)
        errors.extend(_variable_errors(i, var))
    for field in ("system_prompt", "prompt_template"):
        problem: TemplateProblem | None = check_template(getattr(defn, field), seen)
        if problem is not None:
            errors.append(FieldError(field, problem.message))
    for i, tool in enumerate(defn.tools):
        if tool not in AVAILABLE_TOOLS:
            have = ", ".join(sorted(AVAILABLE_TOOLS)) or "none yet"
            errors.append(FieldError(f"tools[{i}]", f"unknown tool '{tool}' (available: {have})"))
    for i, source in enumerate(defn.knowledge):
        if not re.match(KNOWLEDGE_ID_PATTERN, source):
            errors.append(FieldError(f"knowledge[{i}]", f"'{source}' is not a knowledge collection id (kc_...)"))
    return errors


def definition_errors(data: Any) -> tuple[AppDefinition | None, list[FieldError]]:
    """Validate a definition as a whole: (definition, []) or (None or partial, every problem)."""
    if not isinstance(data, dict):
        return None, [FieldError("", "an app definition must be a JSON object")]
    try:
        defn = AppDefinition.model_validate(data)
    except ValidationError as exc:
        return None, [FieldError(loc_path(tuple(e["loc"])), e["msg"]) for e in exc.errors(include_url=False)]
    return defn, check_definition(defn)


def parse_definition(data: Any, *, prefix: str = "") -> AppDefinition:
    """A valid definition, or a 422 naming the first bad field and listing every problem."""
    defn, errors = definition_errors(data)
    if errors or defn is None:
        first = errors[0]
        listing = "; ".join(str(e) for e in errors[:20])
        raise Unprocessable(
            f"The app definition is not valid: {listing}.",
            param=(prefix + first.path) if first.path else (prefix.rstrip(".") or None),
            code="invalid_app",
        )
    return defn


def definition_json_schema() -> dict[str, Any]:
    """JSON Schema of an app definition: the natural-language builder constrains the model with it."""
    return AppDefinition.model_json_schema()
