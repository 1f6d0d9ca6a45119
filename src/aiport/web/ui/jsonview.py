"""Raw JSON for the record viewer, syntax-highlighted on the server: every token is escaped
and wrapped in a span with a class, so the page needs no script to show it."""

from __future__ import annotations

import re
from typing import Any

import orjson
from markupsafe import escape

_TOKEN = re.compile(
    r'(?P<key>"(?:[^"\\]|\\.)*"(?=\s*:))|(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
    r"|(?P<lit>\btrue\b|\bfalse\b|\bnull\b)|(?P<punct>[{}\[\],:])|(?P<ws>\s+)"
)


def highlight_json(value: Any) -> str:
    """Pretty-printed JSON as HTML spans (classes j-key, j-str, j-num, j-lit)."""
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() != pos:  # anything unexpected is still shown, escaped
            out.append(str(escape(text[pos : match.start()])))
        kind = match.lastgroup
        token = str(escape(match.group()))
        out.append(token if kind in ("ws", "punct") else f'<span class="j-{kind}">{token}</span>')
        pos = match.end()
    out.append(str(escape(text[pos:])))
    return "".join(out)
