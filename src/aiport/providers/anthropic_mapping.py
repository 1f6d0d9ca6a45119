"""OpenAI chat-completions shapes to Anthropic Messages API shapes and back.

Pure functions and one small stream translator, no I/O: the adapter in
`providers/anthropic.py` calls them, and they can be tested without a network.
Requests the Messages API cannot express become InvalidRequest with a message that
says what to change, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from anthropic.types import (
    InputJSONDelta,
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    TextBlock,
    TextDelta,
    ToolUseBlock,
)
from anthropic.types import Usage as AnthropicUsage

from aiport.config import ModelConfig
from aiport.domain.chat import ChatRequest, Completion, Delta, Usage
from aiport.domain.chat import Message as ChatMessage
from aiport.domain.errors import InvalidRequest

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

JSON_ONLY = "Answer with one valid JSON object and nothing else: no prose, no Markdown code fences."


def to_anthropic(request: ChatRequest, model: ModelConfig, *, drop: Collection[str] = ()) -> dict[str, Any]:
    """The Messages API body (wire names) for an OpenAI-shaped request.

    Parameters in `drop` are ignored, for upstream models that reject them (newer Claude
    models refuse `temperature`). Parameters Anthropic has no equivalent for (seed,
    penalties, n, logprobs, user, ...) are dropped silently, like other gateways do.
    `response_format` is not native here: json_object and json_schema become a short
    system instruction (with the schema), which steers the model but does not guarantee it.
    `temperature` is clamped to Anthropic's 0..1 range (OpenAI allows up to 2).
    """
    params = {k: v for k, v in request.params.items() if k not in drop and v is not None}
    system, messages = _messages(request.messages)
    instruction = _json_instruction(params.get("response_format"))
    if instruction:
        system.append(instruction)
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens") or model.max_output_tokens
    body: dict[str, Any] = {"model": model.upstream, "max_tokens": int(max_tokens), "messages": messages}
    if system:
        body["system"] = "\n\n".join(system)
    if "temperature" in params:
        body["temperature"] = min(max(float(params["temperature"]), 0.0), 1.0)
    if "top_p" in params:
        body["top_p"] = float(params["top_p"])
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = params.get("tools")
    if tools:
        body["tools"] = [_tool(t) for t in tools]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    return body


def _messages(messages: list[ChatMessage]) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts (from anywhere in the list) and user/assistant turns, same-role turns merged.

    Anthropic wants alternating turns and tool results inside a user turn, so `tool`
    messages become user turns and consecutive turns of one role are joined.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), f"messages[{i}].content")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), i)
        elif role == "assistant":
            blocks = _assistant_blocks(message, i)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, i)]
        else:
            raise InvalidRequest(
                f"messages[{i}] has role {role!r}, which this provider does not support.", param=f"messages[{i}].role"
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("The request needs at least one user message besides system messages.", param="messages")
    return system, turns


def _plain_text(content: Any, param: str) -> str:
    """Text of a string or a list of text parts (system and tool messages allow only text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequest(f"{param} may only hold text parts here, not {part.get('type')!r}.", param=param)
        texts.append(part.get("text") or "")
    return "\n".join(t for t in texts if t)


def _user_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content or ()):
        param = f"messages[{i}].content[{j}]"
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image(str(url or ""), param))
        elif kind == "file":
            blocks.append(_document(part.get("file") or {}, param))
        else:
            raise InvalidRequest(f"{param}: content of type {kind!r} is not supported by this provider.", param=param)
    return blocks


def _data_url(url: str, param: str) -> tuple[str, str]:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL."""
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidRequest(f"{param}: data URLs must be base64 encoded (data:<type>;base64,...).", param=param)
    return header[5:-7].lower(), data


def _image(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        media_type, data = _data_url(url, param)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise InvalidRequest(
                f"{param}: image type {media_type!r} is not supported; use one of "
                f"{', '.join(sorted(IMAGE_MEDIA_TYPES))}.",
                param=param,
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{param}: an image URL must be http(s) or a base64 data URL.", param=param)


def _document(file: dict[str, Any], param: str) -> dict[str, Any]:
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise InvalidRequest(
            f"{param}: only inline PDF files (file_data as a base64 data URL) are supported "
            "by this provider; file ids are not.",
            param=param,
        )
    media_type, payload = _data_url(data, param)
    if media_type != "application/pdf":
        raise InvalidRequest(f"{param}: file type {media_type!r} is not supported; only application/pdf.", param=param)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


def _assistant_blocks(message: ChatMessage, i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    else:
        for part in content or ():
            text = part.get("text") or part.get("refusal")
            if text:
                blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        param = f"messages[{i}].tool_calls[{j}].function.arguments"
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"{param} is not valid JSON.", param=param) from exc
        if not isinstance(arguments, dict):
            raise InvalidRequest(f"{param} must be a JSON object.", param=param)
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    return blocks


def _tool_result(message: ChatMessage, i: int) -> dict[str, Any]:
    text = _plain_text(message.get("content"), f"messages[{i}].content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if text:
        block["content"] = text
    return block


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"Tool type {tool.get('type')!r} is not supported by this provider; only function tools.", param="tools"
        )
    function = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """OpenAI's tool_choice (and parallel_tool_calls=false) in Anthropic's terms."""
    if choice is None:
        out: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or a named function.", param="tool_choice")
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _json_instruction(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_ONLY
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema")
        if schema is None:
            return JSON_ONLY
        return f"{JSON_ONLY} It must conform to this JSON Schema:\n{orjson.dumps(schema).decode()}"
    return None


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's finish_reason for an Anthropic stop_reason; unknown reasons read as a normal stop."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def prompt_tokens(usage: AnthropicUsage | MessageDeltaUsage) -> int:
    """Input tokens including cache reads and writes: all of them are billed as prompt."""
    return (usage.input_tokens or 0) + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


def tool_call(block: ToolUseBlock) -> dict[str, Any]:
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": orjson.dumps(block.input).decode()},
    }


def completion_from_message(message: Message) -> Completion:
    """A whole Anthropic answer as a Completion; thinking and server-tool blocks are left out."""
    texts = [b.text for b in message.content if isinstance(b, TextBlock)]
    calls = [tool_call(b) for b in message.content if isinstance(b, ToolUseBlock)]
    return Completion(
        text="".join(texts) if texts else None,
        finish_reason=finish_reason(message.stop_reason),
        usage=Usage(prompt_tokens(message.usage), message.usage.output_tokens or 0),
        tool_calls=calls or None,
        upstream_model=message.model,
    )


class StreamTranslator:
    """Turns Messages API stream events into OpenAI-shaped deltas.

    Anthropic numbers content blocks (text and tool_use together); OpenAI numbers tool
    calls only, so tool blocks get their own running index.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self.stop_reason: str | None = None
        self._tool_index: dict[int, int] = {}
        self._tool_has_args: dict[int, bool] = {}

    def feed(self, event: object) -> Delta | None:
        """The delta for one event, or None for events that carry nothing for the caller."""
        if isinstance(event, RawMessageStartEvent):
            self.usage = Usage(prompt_tokens(event.message.usage), event.message.usage.output_tokens or 0)
        elif isinstance(event, RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, ToolUseBlock):
                index = self._tool_index[event.index] = len(self._tool_index)
                arguments = orjson.dumps(block.input).decode() if block.input else ""
                self._tool_has_args[event.index] = bool(arguments)
                return Delta(
                    tool_calls=[
                        {
                            "index": index,
                            "id": block.id,
                            "type": "function",
                            "function": {"name": block.name, "arguments": arguments},
                        }
                    ]
                )
            if isinstance(block, TextBlock) and block.text:
                return Delta(text=block.text)
        elif isinstance(event, RawContentBlockDeltaEvent):
            delta = event.delta
            if isinstance(delta, TextDelta) and delta.text:
                return Delta(text=delta.text)
            if isinstance(delta, InputJSONDelta) and delta.partial_json and event.index in self._tool_index:
                self._tool_has_args[event.index] = True
                return self._arguments(event.index, delta.partial_json)
        elif isinstance(event, RawContentBlockStopEvent):
            if event.index in self._tool_index and not self._tool_has_args[event.index]:
                # A tool without arguments streams no JSON; callers parse the joined fragments.
                self._tool_has_args[event.index] = True
                return self._arguments(event.index, "{}")
        elif isinstance(event, RawMessageDeltaEvent):
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.usage.completion_tokens = event.usage.output_tokens or self.usage.completion_tokens
            if event.usage.input_tokens is not None:
                self.usage.prompt_tokens = prompt_tokens(event.usage)
        return None

    def _arguments(self, block_index: int, fragment: str) -> Delta:
        return Delta(tool_calls=[{"index": self._tool_index[block_index], "function": {"arguments": fragment}}])

    def final(self) -> Delta:
        """The last delta: why the answer ended and what it used."""
        return Delta(finish_reason=finish_reason(self.stop_reason), usage=self.usage)
