"""noop: a job that does nothing and returns its input.

It checks the job system end to end without a model (a deployment smoke test: is a
worker listening, do notifications and webhooks arrive?) and measures the machinery's own
cost (bench/jobs_bench.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiport.jobs.context import JobContext
from aiport.jobs.registry import JobKind, SubmitEnv


class NoopInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=200, description="returned as the result")


def prepare(raw: Any, env: SubmitEnv) -> dict[str, Any]:
    return NoopInput.model_validate(raw).model_dump()


async def run(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    await ctx.progress(1, 1, "done", force=True)
    return {"object": "noop.result", "note": data.get("note", "")}


KIND = JobKind(
    name="noop",
    description="Do nothing and return 'note': checks that jobs run, notify and call webhooks.",
    input_model=NoopInput,
    prepare=prepare,
    run=run,
)
