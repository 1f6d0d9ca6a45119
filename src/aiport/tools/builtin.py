"""The other built-in tools: knowledge search, HTTP GET to an allowlist, current time;
and the registry of every tool by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from aiport.jobs.ssrf import UnsafeTarget, parse_url, vet
from aiport.knowledge.search import search
from aiport.tools import TOOL_NAMES
from aiport.tools.base import Tool, ToolContext, ToolError
from aiport.tools.calculator import CALCULATOR

HTTP_MAX_BYTES = 100_000
HTTP_TIMEOUT = 10.0


async def _knowledge_search(args: dict[str, Any], ctx: ToolContext) -> str:
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolError("Pass what to look for as a string in 'query'.")
    if ctx.sessions is None or not ctx.collection_ids:
        raise ToolError("No knowledge collection is attached to this app.")
    k = args.get("k", 5)
    k = k if isinstance(k, int) and 1 <= k <= 10 else 5
    async with ctx.sessions() as session:
        hits = await search(session, query, ctx.collection_ids, k=k, embedder=ctx.embedder)
    if not hits:
        return "No matching passages."
    results = [{"citation": ctx.cite(h), "title": h.title, "heading": h.heading, "text": h.text[:1500]} for h in hits]
    return json.dumps({"results": results, "cite_as": "[n] with n the citation number"}, ensure_ascii=False)


def host_allowed(host: str, port: int, allowlist: list[str]) -> bool:
    host = host.lower()
    return any(entry.lower() in (host, f"{host}:{port}") for entry in allowlist)


async def _http_get(args: dict[str, Any], ctx: ToolContext) -> str:
    url = args.get("url")
    if not isinstance(url, str):
        raise ToolError("Pass the URL as a string in 'url'.")
    try:
        _, host, port = parse_url(url)
        if not host_allowed(host, port, ctx.http_allowlist):
            allowed = ", ".join(ctx.http_allowlist) or "none"
            raise ToolError(f"The host {host!r} is not on the admin's allowlist (allowed: {allowed}).")
        target = await vet(url, allow_private=ctx.http_allow_private)
    except UnsafeTarget as exc:
        raise ToolError(str(exc)) from exc
    # connect to the vetted address (no DNS rebinding), never follow redirects
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False, trust_env=False) as client:
        try:
            async with client.stream(
                "GET", target.pinned_url(), headers={"host": target.host_header, "user-agent": "aiport-tool"}
            ) as response:
                body = b""
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) >= HTTP_MAX_BYTES:
                        break
        except httpx.HTTPError as exc:
            raise ToolError(f"The request failed: {type(exc).__name__}: {exc}.") from exc
    if 300 <= response.status_code < 400:
        raise ToolError(f"The server answered with a redirect ({response.status_code}); redirects are not followed.")
    text = body[:HTTP_MAX_BYTES].decode("utf-8", "replace")
    return json.dumps({"status": response.status_code, "body": text}, ensure_ascii=False)


async def _current_time(args: dict[str, Any], ctx: ToolContext) -> str:
    zone_name = args.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"Unknown time zone {zone_name!r}; use an IANA name like 'Asia/Seoul'.") from exc
    now = datetime.now(UTC).astimezone(zone)
    return json.dumps({"iso": now.isoformat(), "weekday": now.strftime("%A"), "timezone": str(zone_name)})


KNOWLEDGE_SEARCH = Tool(
    name="knowledge_search",
    description="Search the documents attached to this app. Returns passages with citation numbers.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "k": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["query"],
    },
    run=_knowledge_search,
)
HTTP_GET = Tool(
    name="http_get",
    description="Fetch a URL with HTTP GET (only hosts an admin allowed). Returns status and body text.",
    parameters={"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
    run=_http_get,
)
CURRENT_TIME = Tool(
    name="current_time",
    description="The current date and time, optionally in an IANA time zone such as 'Asia/Seoul'.",
    parameters={"type": "object", "properties": {"timezone": {"type": "string"}}},
    run=_current_time,
)

TOOLS: dict[str, Tool] = {t.name: t for t in (KNOWLEDGE_SEARCH, CALCULATOR, HTTP_GET, CURRENT_TIME)}
assert set(TOOLS) == TOOL_NAMES, "aiport.tools.TOOL_NAMES must name every built-in tool"
