"""Prompt templates: Jinja2 in a sandbox an app author cannot escape.

App authors are not trusted with the server: a template sees only the form values (plain
strings, numbers and booleans) and may use variables, `if`, `set` and a short list of pure
text filters. Attribute access, calls, loops, macros, includes, imports and inheritance are
refused when the template is saved (with the reason), so there is no path to Python
objects, the file system or the settings; the sandbox with no safe attributes is the
second wall. Multiplication and powers are bounded, and so is the rendered size.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from aiport.domain.errors import Unprocessable

_MAX_REPEAT = 20_000  # characters a `*` may produce
_MAX_EXPONENT = 64

_SAFE_FILTERS = (
    "abs", "capitalize", "default", "d", "first", "float", "int", "last", "length", "count", "lower",
    "upper", "title", "trim", "truncate", "round", "string", "wordcount", "striptags", "min", "max",
    "replace", "tojson",
)  # fmt: skip
_FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.Getattr: "attribute access (x.y) is not allowed; use variables directly",
    nodes.Call: "calling functions is not allowed",
    nodes.For: "loops are not allowed",
    nodes.Macro: "macros are not allowed",
    nodes.CallBlock: "call blocks are not allowed",
    nodes.Include: "include is not allowed: templates cannot read files",
    nodes.Import: "import is not allowed: templates cannot read files",
    nodes.FromImport: "import is not allowed: templates cannot read files",
    nodes.Extends: "extends is not allowed: templates cannot read files",
    nodes.Block: "blocks are not allowed",
}


def _bounded_replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if len(text) + hits * len(new) > _MAX_REPEAT * 10:
        raise SecurityError("replace would produce too much text")
    return text.replace(old, new, -1 if count is None else count)


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    """No attribute is safe and nothing is callable: values are plain data."""

    intercepted_binops = frozenset({"*", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return False

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponents above {_MAX_EXPONENT} are not allowed")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > _MAX_REPEAT:
                raise SecurityError(f"repetition beyond {_MAX_REPEAT} characters is not allowed")
        return operator.mul(left, right)


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _make_env() -> _PromptEnvironment:
    env = _PromptEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=_finalize, keep_trailing_newline=True
    )
    env.globals.clear()
    filters: dict[str, Callable[..., Any]] = {name: env.filters[name] for name in _SAFE_FILTERS}
    filters["replace"] = _bounded_replace
    env.filters = filters
    return env


_ENV = _make_env()


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    message: str


def _walk(node: nodes.Node) -> Iterable[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def check_template(source: str, declared: Iterable[str]) -> TemplateProblem | None:
    """Why `source` may not be saved, or None: syntax, forbidden constructs, unknown names."""
    if not source:
        return None
    try:
        tree = _ENV.parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return TemplateProblem(f"template syntax error{f' on line {line}' if line else ''}: {exc.message or exc}")
    known = set(declared)
    assigned = {n.name for n in _walk(tree) if isinstance(n, nodes.Name) and n.ctx == "store"}
    for node in _walk(tree):
        for kind, reason in _FORBIDDEN_NODES.items():
            if isinstance(node, kind):
                return TemplateProblem(f"{reason} (line {node.lineno})")
        if isinstance(node, nodes.Filter) and node.name not in _ENV.filters:
            return TemplateProblem(
                f"unknown or forbidden filter '{node.name}' (line {node.lineno}); allowed: {', '.join(_SAFE_FILTERS)}"
            )
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and str(node.arg.value)[:1] == "_":
            return TemplateProblem(f"names starting with '_' are not allowed (line {node.lineno})")
        if isinstance(node, nodes.Test) and node.name not in _ENV.tests:
            return TemplateProblem(f"unknown test '{node.name}' (line {node.lineno})")
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in known | assigned:
            have = ", ".join(sorted(known)) or "none"
            return TemplateProblem(
                f"'{node.name}' is not a variable of this app (line {node.lineno}); declared variables: {have}"
            )
    return None


def template_names(source: str) -> set[str] | None:
    """The variable names a template reads (None if it doesn't parse): for the repair step."""
    try:
        return set(meta.find_undeclared_variables(_ENV.parse(source)))
    except TemplateError:
        return None


@lru_cache(maxsize=512)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


def render(source: str, values: Mapping[str, Any], *, field: str, max_chars: int) -> str:
    """Render a template that passed `check_template`; any failure is a 422 naming `field`."""
    if not source:
        return ""
    try:
        text = str(_compiled(source).render(dict(values)))
    except (TemplateError, SecurityError, ArithmeticError, ValueError, TypeError, OverflowError) as exc:
        message = f"The app's {field} could not be rendered: {exc}."
        raise Unprocessable(message, param=field, code="template_error") from exc
    if len(text) > max_chars:
        raise Unprocessable(
            f"The rendered {field} is {len(text)} characters; the limit is {max_chars}.",
            param=field,
            code="prompt_too_long",
        )
    return text
