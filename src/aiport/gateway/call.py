"""The state of one call as it moves through the pipeline; becomes its audit record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiport.config import ModelConfig
from aiport.domain.chat import ChatRequest, Completion, Delta, Usage
from aiport.domain.errors import GatewayError
from aiport.domain.ids import new_id
from aiport.domain.principal import Principal


@dataclass(slots=True)
class Call:
    """Everything the audit record needs, filled in stage by stage."""

    request: ChatRequest
    principal: Principal | None
    request_id: str = field(default_factory=lambda: new_id("req_"))
    log_id: str = field(default_factory=lambda: new_id("log_"))
    client_ip: str | None = None
    user_agent: str | None = None
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    model: ModelConfig | None = None
    route_reason: str | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    text_parts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    status: str = "ok"
    http_status: int = 200
    error: str | None = None
    cache_hit: bool = False
    saved_cost_usd: float = 0.0
    route_score: float | None = None
    idempotency_key: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    dedupe_key: str | None = None  # set while this call leads an idempotency key
    cache_key: str | None = None
    cache_ttl: int | None = None
    recorded: bool = False
    replay_of: str | None = None  # the first request's id when this call replays it
    usage_estimated: bool = False  # usage counted by aiport (the stream ended before the provider's count)

    @property
    def completion_id(self) -> str:
        """The OpenAI `id` of the answer: an idempotent replay returns the first answer's id."""
        return "chatcmpl-" + (self.replay_of or self.request_id).removeprefix("req_")

    def degrade(self, part: str) -> None:
        """Tell the client which shared part was skipped for this call (x-aiport-degraded: a, b)."""
        present = self.response_headers.get("x-aiport-degraded")
        if not present:
            self.response_headers["x-aiport-degraded"] = part
        elif part not in present.split(", "):
            self.response_headers["x-aiport-degraded"] = f"{present}, {part}"

    # ---- filled by the call stage ----------------------------------------------------
    def take_completion(self, completion: Completion) -> None:
        if completion.text:
            self.text_parts.append(completion.text)
        self.tool_calls = completion.tool_calls
        self.finish_reason = completion.finish_reason
        self.usage = completion.usage
        self.finished_at = time.perf_counter()

    def take_delta(self, delta: Delta) -> None:
        if self.first_token_at is None and (delta.text or delta.tool_calls):
            self.first_token_at = time.perf_counter()
        if delta.text:
            self.text_parts.append(delta.text)
        if delta.tool_calls:
            self._merge_tool_call_fragments(delta.tool_calls)
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage

    def fail(self, error: GatewayError) -> None:
        self.status = "error"
        self.http_status = error.status
        self.error = error.message

    def client_closed(self) -> None:
        self.status = "client_closed"
        self.http_status = 499
        self.error = "client disconnected before the answer was complete"

    def as_completion(self) -> Completion:
        """The streamed answer as a whole (for the cache and idempotent replays)."""
        return Completion(
            text=self.output_text or None,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage or Usage(),
            tool_calls=self.tool_calls,
        )

    @property
    def output_text(self) -> str:
        return "".join(self.text_parts)

    def _merge_tool_call_fragments(self, fragments: list[dict[str, Any]]) -> None:
        """Reassemble OpenAI streaming tool-call fragments (by index) into whole calls."""
        calls = self.tool_calls if self.tool_calls is not None else []
        self.tool_calls = calls
        for frag in fragments:
            index = int(frag.get("index", len(calls)))
            while len(calls) <= index:
                calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            call = calls[index]
            if frag.get("id"):
                call["id"] = frag["id"]
            fn = frag.get("function") or {}
            if fn.get("name"):
                call["function"]["name"] += fn["name"]
            if fn.get("arguments"):
                call["function"]["arguments"] += fn["arguments"]

    # ---- the record ------------------------------------------------------------------
    def to_audit_row(self) -> dict[str, Any]:
        end = self.finished_at or time.perf_counter()
        p = self.principal
        usage = self.usage or Usage()
        req = self.request
        return {
            "id": self.log_id,
            "request_id": self.request_id,
            "client_request_id": req.client_request_id,
            "org_id": p.org_id if p else None,
            "team_id": p.team_id if p else None,
            "user_id": p.user_id if p else None,
            "api_key_id": p.api_key_id if p else None,
            "app_id": req.app_id,
            "app_version_id": req.app_version_id,
            "entry_point": req.entry_point,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "model_requested": req.model,
            "model_used": self.model.name if self.model else None,
            "provider": self.model.provider if self.model else None,
            "stream": req.stream,
            "input_messages": req.messages,
            "request_params": req.params or None,
            "output_text": self.output_text or None,
            "output_tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": round((end - self.started) * 1000, 3),
            "ttft_ms": round((self.first_token_at - self.started) * 1000, 3) if self.first_token_at else None,
            "status": self.status,
            "http_status": self.http_status,
            "error": self.error,
            "cache_hit": self.cache_hit,
            "route_reason": self.route_reason,
            "route_score": self.route_score,
            "saved_cost_usd": self.saved_cost_usd,
            "idempotency_key": self.idempotency_key,
            "attempts": self._attempts_with_usage_note(),
            "parent_request_id": req.parent_request_id,
            "created_at": self.created_at,
        }

    def _attempts_with_usage_note(self) -> list[dict[str, Any]] | None:
        """The attempts, the last one noting when its tokens were counted by aiport, not the provider."""
        if not self.attempts:
            return None
        if not self.usage_estimated:
            return self.attempts
        return [*self.attempts[:-1], {**self.attempts[-1], "usage": "estimated by aiport (stream ended early)"}]
