"""A fake OpenAI-compatible upstream for tests. Its behaviour is chosen by the upstream
model name, so a catalog can point models at each behaviour:

  fake-echo     answers "echo: <last user text>", usage from word counts
  fake-tools    answers with one tool call
  fake-500      HTTP 500          fake-429   HTTP 429 with Retry-After: 7
  fake-400      HTTP 400          fake-401   HTTP 401
  fake-slow     sleeps 3 s before answering (for timeouts)
  fake-drop     streams two chunks then drops the connection
  fake-garbage  200 with a non-JSON body
  fake-slowstream  streams 50 chunks 100 ms apart (for disconnects)
  fake-drop0    stream: HTTP 200, then the connection drops before any token
  fake-flaky    the first request for each distinct prompt fails with 503, the next succeeds
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.cancelled_streams = 0
        self.seen_prompts: dict[str, int] = {}

    def calls_with(self, text: str) -> int:
        """How many requests reached the upstream whose last user message contained `text`."""
        count = 0
        for body in self.requests:
            last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
            if text in str(last["content"]):
                count += 1
        return count

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        model = body["model"]
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
        text = (
            last["content"]
            if isinstance(last["content"], str)
            else " ".join(p.get("text", "") for p in last["content"])
        )
        answer = f"echo: {text}"
        if model == "fake-500":
            return JSONResponse({"error": {"message": "upstream exploded"}}, status_code=500)
        if model == "fake-429":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"retry-after": "7"})
        if model == "fake-400":
            return JSONResponse({"error": {"message": "bad temperature for this model"}}, status_code=400)
        if model == "fake-401":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if model == "fake-garbage":
            return Response(b"<html>oops</html>", media_type="text/html")
        if model == "fake-slow":
            await asyncio.sleep(3)
        if model == "fake-flaky":
            seen = self.seen_prompts.get(text, 0)
            self.seen_prompts[text] = seen + 1
            if seen == 0:
                return JSONResponse({"error": {"message": "temporarily overloaded"}}, status_code=503)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(answer.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        tool_calls = None
        if model == "fake-tools":
            tool_calls = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Seoul"})},
                }
            ]
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else answer}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
                    ],
                    "usage": usage,
                }
            )
        return StreamingResponse(self._stream(body, model, answer, usage, tool_calls), media_type="text/event-stream")

    async def _stream(
        self,
        body: dict[str, Any],
        model: str,
        answer: str,
        usage: dict[str, int],
        tool_calls: list[dict[str, Any]] | None,
    ) -> Any:
        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        if model == "fake-drop0":
            raise RuntimeError("connection dropped before the first token")
        yield event({"role": "assistant", "content": ""})
        if tool_calls:
            call = tool_calls[0]
            yield event(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            args = call["function"]["arguments"]
            for i in range(0, len(args), 5):
                yield event({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 5]}}]})
            yield event({}, "tool_calls")
        else:
            words = answer.split(" ")
            if model == "fake-slowstream":
                words = [f"w{i}" for i in range(50)]
            for i, word in enumerate(words):
                if model == "fake-drop" and i == 2:
                    raise RuntimeError("connection dropped on purpose")
                if model == "fake-slowstream":
                    try:
                        await asyncio.sleep(0.1)
                    except asyncio.CancelledError:
                        self.cancelled_streams += 1
                        raise
                yield event({"content": word if i == 0 else " " + word})
            yield event({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            final = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            yield b"data: " + json.dumps(final).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
