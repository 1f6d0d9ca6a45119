"""A fake OpenAI-compatible model that drives the agent loop, for tests.

With tools offered and a user message last, it calls the tool the message names:
"use calculator {"expression": "2+3"}" -> a tool call to calculator with those arguments.
After a tool result it answers "final: <tool result>". "loop forever" keeps calling tools
(for the step limit). It keeps every request so tests can see what the model was shown."""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_USE = re.compile(r"use (\w+) (\{.*\})", re.S)


class AgentModel:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.url = ""

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        messages = body["messages"]
        last = messages[-1]
        first_user = next((m for m in messages if m["role"] == "user"), {"content": ""})
        usage = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "tool_calls"
        if body.get("tools") and "loop forever" in str(first_user["content"]):
            message["tool_calls"] = [_call(len(messages), "current_time", "{}")]
        elif body.get("tools") and last["role"] == "user" and (m := _USE.search(str(last["content"]))):
            message["tool_calls"] = [_call(len(messages), m.group(1), m.group(2))]
        elif last["role"] == "tool":
            message["content"] = f"final: {last['content']}"
            finish = "stop"
        else:
            message["content"] = "plain: " + str(last.get("content"))[:200]
            finish = "stop"
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [choice], "usage": usage})  # fmt: skip


def _call(n: int, name: str, arguments: str) -> dict[str, Any]:
    return {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": arguments}}
