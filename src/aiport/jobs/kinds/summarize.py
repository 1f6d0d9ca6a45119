"""summarize: a text too long for one prompt, summarized by map-reduce.

map: the text is cut into chunks of about `chunk_chars` (at paragraph, then sentence,
then word boundaries) and each chunk is summarized. reduce: summaries are grouped so a
group fits in `chunk_chars` and each group is summarized again, level after level, until
one summary is left. A level that cannot shrink by size pairs summaries instead, so the
number of calls is bounded (about twice the number of chunks). Every finished call is
kept in the checkpoint, so a resumed job continues where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from aiport.domain.chat import ChatRequest
from aiport.domain.errors import GatewayError, Unprocessable
from aiport.jobs.context import JobContext, run_together
from aiport.jobs.registry import JobKind, SubmitEnv

MAX_CHUNKS = 500
SYSTEM = "You write faithful, concise summaries. Keep names, numbers and decisions; add nothing."


class SummarizeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=2_000_000)]
    model: Annotated[str, Field(min_length=1, max_length=200)]
    chunk_chars: int = Field(6000, ge=200, le=200_000, description="target size of a chunk, in characters")
    instructions: Annotated[str | None, Field(max_length=4000)] = None
    max_tokens: int | None = Field(None, ge=1, le=32_768, description="per model call")
    concurrency: int = Field(4, ge=1, le=16)


def split_text(text: str, size: int) -> list[str]:
    """Cut `text` into pieces of at most `size` characters at the most natural boundary."""
    chunks: list[str] = []
    start, n = 0, len(text)
    while start < n:
        end = min(start + size, n)
        if end < n:
            window = text[start:end]
            for sep in ("\n\n", "\n", ". ", "? ", "! ", " "):
                cut = window.rfind(sep)
                if cut >= size // 2:
                    end = start + cut + len(sep)
                    break
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        start = end
    return chunks


def prepare(raw: Any, env: SubmitEnv) -> dict[str, Any]:
    body = SummarizeInput.model_validate(raw)
    if not body.text.strip():
        raise Unprocessable("'input.text' is empty: send the text to summarize.", param="input.text")
    chunks = len(split_text(body.text, body.chunk_chars))
    if chunks > MAX_CHUNKS:
        raise Unprocessable(
            f"'input.text' makes {chunks} chunks of {body.chunk_chars} characters; the limit is {MAX_CHUNKS}. "
            "Raise 'input.chunk_chars' or send a shorter text.",
            param="input.chunk_chars",
        )
    probe = ChatRequest(model=body.model, messages=[{"role": "user", "content": "x"}])
    try:
        env.check_route(probe)
    except GatewayError as exc:
        raise Unprocessable(f"input.model: {exc.message}", param="input.model", code=exc.code) from exc
    return body.model_dump()


def group_by_size(items: list[str], size: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    used = 0
    for item in items:
        if groups[-1] and used + len(item) > size:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += len(item) + 2
    if len(groups) >= len(items):  # nothing fits together: pair them, so every level halves
        groups = [items[i : i + 2] for i in range(0, len(items), 2)]
    return groups


class _Summarizer:
    def __init__(self, ctx: JobContext, data: dict[str, Any]) -> None:
        self.ctx = ctx
        self.data = data
        self.slots = asyncio.Semaphore(int(data.get("concurrency", 4)))
        self.done: dict[str, str] = ctx.checkpoint.setdefault("calls", {})
        self.planned = 0
        self.stage = "map"

    async def call(self, key: str, prompt: str) -> str:
        key = f"{key}:{hashlib.sha256(prompt.encode()).hexdigest()[:16]}"
        if key in self.done:
            return self.done[key]
        params: dict[str, Any] = {}
        if self.data.get("max_tokens"):
            params["max_tokens"] = self.data["max_tokens"]
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        async with self.slots:
            reply = await self.ctx.chat(
                ChatRequest(model=self.data["model"], messages=messages, params=params), key=key
            )
        text = (reply.completion.text or "").strip()
        self.done[key] = text
        await self.ctx.progress(len(self.done), self.planned, f"{self.stage}: {len(self.done)} of {self.planned} calls")
        return text

    async def level(self, name: str, prompts: list[str]) -> list[str]:
        out: list[str] = [""] * len(prompts)

        async def one(i: int) -> None:
            out[i] = await self.call(f"{name}:{i}", prompts[i])

        await run_together([one(i) for i in range(len(prompts))])
        return out


async def run(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    size = int(data["chunk_chars"])
    chunks = split_text(data["text"], size)
    how = data.get("instructions") or "Summarize the text."
    s = _Summarizer(ctx, data)
    s.planned = len(chunks) + (1 if len(chunks) > 1 else 0)
    await ctx.progress(0, s.planned, f"map: {len(chunks)} chunks", force=True)
    summaries = await s.level("map", [f"{how}\n\nPart {i + 1} of {len(chunks)}:\n\n{c}" for i, c in enumerate(chunks)])
    levels = 0
    while len(summaries) > 1:
        levels += 1
        groups = group_by_size(summaries, size)
        s.planned += len(groups) - 1 + (1 if len(groups) > 1 else 0)
        s.stage = f"reduce level {levels}"
        prompts = [
            f"{how}\n\nCombine these partial summaries of one text into a single summary:\n\n"
            + "\n\n".join(f"- {part}" for part in group)
            for group in groups
        ]
        summaries = await s.level(f"reduce{levels}", prompts)
    await ctx.progress(s.planned, s.planned, "summary ready", force=True)
    return {
        "object": "summary",
        "summary": summaries[0],
        "model": data["model"],
        "chunks": len(chunks),
        "reduce_levels": levels,
        "calls": len(s.done),
    }


KIND = JobKind(
    name="summarize",
    description="Summarize a long text by map-reduce over chunks of about chunk_chars characters.",
    input_model=SummarizeInput,
    prepare=prepare,
    run=run,
)
