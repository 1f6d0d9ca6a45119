"""chat_batch: many OpenAI chat requests, answered in the background.

Each request is checked at submit time with the same parser and route checks as
/v1/chat/completions (errors name the field, e.g. `input.requests[3].messages`). Answers
are kept in the checkpoint as they arrive, so a resumed job only runs what is missing.
One request failing is reported in its slot; the job fails only when all of them do.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from aiport.domain.chat import ChatRequest, Usage
from aiport.domain.errors import GatewayError, Unprocessable
from aiport.jobs.context import Answer, JobContext, run_together
from aiport.jobs.errors import JobFailed
from aiport.jobs.registry import JobKind, SubmitEnv

MAX_REQUESTS = 1000


class ChatBatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_REQUESTS)] = Field(
        description="OpenAI chat.completions request bodies (stream must be false or absent)"
    )
    concurrency: int = Field(4, ge=1, le=16, description="how many requests run at once")


def prepare(raw: Any, env: SubmitEnv) -> dict[str, Any]:
    body = ChatBatchInput.model_validate(raw)
    items = []
    for i, data in enumerate(body.requests):
        where = f"input.requests[{i}]"
        if data.get("stream"):
            raise Unprocessable(
                f"'{where}.stream' must be false in a batch: answers are stored, not streamed.", param=f"{where}.stream"
            )
        try:
            request = env.parse_chat(data)
            env.check_route(request)
        except GatewayError as exc:
            param = f"{where}.{exc.param}" if exc.param else where
            raise Unprocessable(f"{where}: {exc.message}", param=param, code=exc.code) from exc
        items.append({"model": request.model, "messages": request.messages, "params": request.params})
    return {"requests": items, "concurrency": body.concurrency}


def completion_body(answer: Answer) -> dict[str, Any]:
    """The same chat.completion object /v1/chat/completions returns."""
    c = answer.completion
    message: dict[str, Any] = {"role": "assistant", "content": c.text}
    if c.tool_calls:
        message["tool_calls"] = c.tool_calls
    return {
        "id": "chatcmpl-" + answer.request_id.removeprefix("req_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}],
        "usage": c.usage.to_openai(),
    }


async def answer_each(ctx: JobContext, items: list[dict[str, Any]], concurrency: int) -> list[dict[str, Any]]:
    """Answer stored requests ({model, messages, params, app_id?, app_version_id?}) in
    order, `concurrency` at a time; finished answers live in the checkpoint, so a resumed
    job asks only for what is missing. Each slot is {"status": "ok", "response": ...} or
    {"status": "error", "error": ...}. Shared by chat_batch and app_run."""
    total = len(items)
    done: dict[str, Any] = ctx.checkpoint.setdefault("responses", {})
    slots = asyncio.Semaphore(concurrency)
    await ctx.progress(len(done), total, f"{len(done)} of {total} requests answered", force=True)

    async def answer(index: int) -> None:
        item = items[index]
        async with slots:
            request = ChatRequest(
                model=item["model"],
                messages=item["messages"],
                params=dict(item["params"]),
                app_id=item.get("app_id"),
                app_version_id=item.get("app_version_id"),
            )
            try:
                reply = await ctx.chat(request, key=f"item:{index}")
                entry: dict[str, Any] = {"index": index, "status": "ok", "response": completion_body(reply)}
            except GatewayError as exc:
                entry = {"index": index, "status": "error", **exc.to_body()}
        done[str(index)] = entry
        await ctx.progress(len(done), total, f"{len(done)} of {total} requests answered")

    await run_together([answer(i) for i in range(total) if str(i) not in done])
    responses = [done[str(i)] for i in range(total)]
    failed = [r for r in responses if r["status"] != "ok"]
    if len(failed) == total:
        raise JobFailed(
            f"All {total} requests failed; the first: {failed[0]['error']['message']}", "all_requests_failed"
        )
    return responses


def total_usage(responses: list[dict[str, Any]]) -> dict[str, Any]:
    usage = Usage()
    for r in responses:
        if r["status"] == "ok":
            usage.prompt_tokens += r["response"]["usage"]["prompt_tokens"]
            usage.completion_tokens += r["response"]["usage"]["completion_tokens"]
    return usage.to_openai()


async def run(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    responses = await answer_each(ctx, data["requests"], int(data.get("concurrency", 4)))
    failed = sum(1 for r in responses if r["status"] != "ok")
    return {
        "object": "chat_batch.result",
        "responses": responses,
        "succeeded": len(responses) - failed,
        "failed": failed,
        "usage": total_usage(responses),
    }


KIND = JobKind(
    name="chat_batch",
    description="Answer a list of OpenAI chat.completions requests; results keep the input order.",
    input_model=ChatBatchInput,
    prepare=prepare,
    run=run,
)
