"""A scripted OpenAI-compatible model for builder tests: it answers with the texts queued in
`script`, in order (then echoes), and keeps every request so tests can see what was asked."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class ScriptedModel:
    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.url = ""

    def queue(self, *answers: str | dict[str, Any]) -> None:
        self.script.clear()
        self.requests.clear()
        self.script.extend(a if isinstance(a, str) else json.dumps(a, ensure_ascii=False) for a in answers)

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        text = self.script.popleft() if self.script else "echo: " + str(body["messages"][-1]["content"])
        usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [choice], "usage": usage})  # fmt: skip

        async def events() -> Any:
            for i in range(0, len(text), 8):
                delta = {"content": text[i : i + 8]}
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            end = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
            yield b"data: " + json.dumps(end).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
