"""What a running job kind sees: its owner, the pipeline, progress and a checkpoint."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiport.domain.chat import ChatRequest, Completion
from aiport.domain.errors import GatewayError
from aiport.domain.principal import Principal
from aiport.gateway.call import Call
from aiport.gateway.pipeline import Pipeline
from aiport.jobs.errors import LeaseLost
from aiport.jobs.store import JobStore

PROGRESS_EVERY = 0.25  # seconds between progress writes (the last one is always written)
RATE_LIMIT_WAITS = 20  # a call refused by the owner's rate limit is asked again this often
MAX_RATE_LIMIT_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class Answer:
    """A model's answer and what the record says about it."""

    completion: Completion
    model: str
    request_id: str


class JobContext:
    """`checkpoint` survives a restart or a redelivery: kinds store finished pieces in it
    and skip them when they run again, so resumed work is not paid for twice."""

    def __init__(
        self,
        *,
        job_id: str,
        kind: str,
        attempt: int,
        owner: str,
        principal: Principal,
        pipeline: Pipeline,
        store: JobStore,
        checkpoint: dict[str, Any] | None,
        app_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.kind = kind
        self.attempt = attempt
        self.owner = owner
        self.principal = principal
        self.app_id = app_id
        self.checkpoint: dict[str, Any] = dict(checkpoint or {})
        self._pipeline = pipeline
        self._store = store
        self._last_write = 0.0
        self._last_done = -1
        self._writing = asyncio.Lock()

    async def chat(self, request: ChatRequest, *, key: str) -> Answer:
        """One model call through the pipeline (quotas, routing, audit), as this job's owner.

        `key` names the piece of work; the call carries "job:<id>:<key>" as its request id,
        which the audit shows and the dedupe stage uses, so a redelivered job replays a
        finished call instead of paying for it again."""
        request.entry_point = "job"
        request.stream = False
        request.app_id = request.app_id or self.app_id
        request.client_request_id = f"job:{self.job_id}:{key}"[:200]
        for waited in range(RATE_LIMIT_WAITS + 1):
            call = Call(request=request, principal=self.principal, user_agent=f"aiport-job/{self.kind}")
            try:
                completion = await self._pipeline.complete(call)
            except GatewayError as exc:
                delay = rate_limit_wait(exc)
                if delay is None or waited == RATE_LIMIT_WAITS:
                    raise
                await asyncio.sleep(delay)  # a batch paces itself under the owner's RPM/TPM limits
                continue
            return Answer(completion, call.model.name if call.model else request.model, call.request_id)
        raise AssertionError("unreachable")

    async def progress(self, done: int, total: int | None, message: str | None = None, *, force: bool = False) -> None:
        """Report progress and save the checkpoint (throttled; the final step always lands).
        Raises LeaseLost when the job was cancelled or taken over."""
        now = time.monotonic()
        if not force and (total is None or done < total) and now - self._last_write < PROGRESS_EVERY:
            return
        self._last_write = now
        async with self._writing:  # pieces finishing together: writes in order, never backwards
            if done < self._last_done:
                return
            self._last_done = done
            ok = await self._store.progress(
                self.job_id, self.owner, done=done, total=total, message=message, checkpoint=self.checkpoint
            )
        if not ok:
            raise LeaseLost(self.job_id)


def rate_limit_wait(exc: GatewayError) -> float | None:
    """Seconds to wait before asking again when the owner's rate limit refused a call; None
    when waiting would not help (a token quota resets at the end of its window: the job
    fails with the quota's message instead)."""
    if exc.status != 429 or exc.code == "quota_exceeded":
        return None
    try:
        after = float(exc.headers.get("retry-after", "1"))
    except ValueError:
        after = 1.0
    return min(max(after, 0.05), MAX_RATE_LIMIT_WAIT) * random.uniform(1.0, 1.2)


async def run_together(work: list[Coroutine[Any, Any, None]]) -> None:
    """Run pieces of a job concurrently; on the first error cancel the rest and raise that
    error itself (not an ExceptionGroup), so the executor can tell what happened."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
