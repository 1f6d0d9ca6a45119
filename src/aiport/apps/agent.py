"""The agent loop: the model calls tools (OpenAI tool-calling format) until it answers,
within a step limit and a token budget. Every model step is a call through the one
pipeline (quota, audit, routing apply to each); every tool call is a trace span. A tool
that fails returns its error to the model as the tool's result — the model can correct
itself; the user never sees a stack trace."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiport.domain.chat import ChatRequest, Completion, Message, Usage
from aiport.gateway.call import Call
from aiport.gateway.pipeline import Pipeline
from aiport.observe.traces import Tracer
from aiport.tools.base import Tool, ToolContext, ToolError


@dataclass(slots=True)
class AgentResult:
    completion: Completion
    steps: int
    stopped: str  # "answer" | "step_limit" | "token_budget"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)


async def run_tool(tool: Tool | None, name: str, raw_args: str, ctx: ToolContext, tracer: Tracer) -> tuple[str, bool]:
    """(result text for the model, ok). Errors become text the model can act on."""
    async with tracer.span(f"tool:{name}", "tool", {"arguments": raw_args[:2000]}) as span:
        try:
            if tool is None:
                raise ToolError(f"There is no tool named {name!r} here.")
            try:
                args = json.loads(raw_args or "{}")
            except json.JSONDecodeError as exc:
                raise ToolError(f"The arguments are not valid JSON: {exc.msg}.") from exc
            if not isinstance(args, dict):
                raise ToolError("The arguments must be a JSON object.")
            result = await tool.run(args, ctx)
        except ToolError as exc:
            span.fail(str(exc))
            return f"error: {exc}", False
        except Exception as exc:  # a bug or an outage in a tool must not end the run
            span.fail(f"{type(exc).__name__}: {exc}")
            return f"error: the tool failed ({type(exc).__name__}).", False
        span.result(result)
        return result, True


async def run_agent(
    pipeline: Pipeline,
    first: Call,
    new_call: Callable[[ChatRequest], Call],
    tools: list[Tool],
    ctx: ToolContext,
    tracer: Tracer,
    *,
    max_steps: int,
    token_budget: int,
) -> AgentResult:
    """Run `first` (its request already composed) as an agent with `tools`."""
    by_name = {t.name: t for t in tools}
    specs = [t.spec() for t in tools]
    messages: list[Message] = list(first.request.messages)
    used = Usage()
    result = AgentResult(completion=Completion(text=None, finish_reason="stop", usage=used), steps=0, stopped="answer")
    call = first
    for step in range(1, max_steps + 1):
        params = {**call.request.params, "tools": specs} if specs else call.request.params
        call.request = dataclasses.replace(call.request, messages=list(messages), params=params, stream=False)
        async with tracer.span(f"model step {step}", "model", {"model": call.request.model}) as span:
            completion = await pipeline.complete(call)
            span.result(completion.text or {"tool_calls": [c["function"]["name"] for c in completion.tool_calls or []]})
            span.attributes["gen_ai.request.model"] = call.request.model
            span.attributes["gen_ai.usage.input_tokens"] = completion.usage.prompt_tokens
            span.attributes["gen_ai.usage.output_tokens"] = completion.usage.completion_tokens
        result.request_ids.append(call.request_id)
        result.steps = step
        used.prompt_tokens += completion.usage.prompt_tokens
        used.completion_tokens += completion.usage.completion_tokens
        result.completion = Completion(completion.text, completion.finish_reason, used, None, completion.upstream_model)
        if not completion.tool_calls:
            result.stopped = "answer"
            return result
        messages.append({"role": "assistant", "content": completion.text, "tool_calls": completion.tool_calls})
        for tc in completion.tool_calls:
            fn = tc.get("function") or {}
            name = str(fn.get("name") or "")
            text, ok = await run_tool(by_name.get(name), name, str(fn.get("arguments") or ""), ctx, tracer)
            result.tool_calls.append({"name": name, "arguments": fn.get("arguments"), "ok": ok, "result": text[:500]})
            messages.append({"role": "tool", "tool_call_id": tc.get("id") or f"call_{step}", "content": text})
        if used.total_tokens >= token_budget:
            result.stopped = "token_budget"
            break
        next_request = dataclasses.replace(call.request, parent_request_id=first.request_id)
        call = new_call(next_request)
    else:
        result.stopped = "step_limit"
    note = (
        f"[stopped after {result.steps} steps: the agent's "
        f"{'token budget' if result.stopped == 'token_budget' else 'step limit'} was reached]"
    )
    last = result.completion.text
    result.completion = Completion(f"{last}\n\n{note}" if last else note, "length", used)
    return result
