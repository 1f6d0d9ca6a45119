"""Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama-server, ...) by base URL and key.

Raw httpx + orjson rather than the openai SDK: on the gateway's hot path the SDK's
response models cost latency we can measure (see docs/benchmarks.md), and we only relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest, Completion, Delta, Usage
from aiport.domain.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout


class OpenAICompatProvider:
    def __init__(self, name: str, config: ProviderConfig) -> None:
        if not config.base_url:
            raise ValueError(f"provider {name!r}: openai_compat needs base_url")
        self.name = name
        self._stream_usage = bool(config.options.get("stream_usage", True))
        headers = {"content-type": "application/json"}
        key = config.resolved_api_key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
        )

    def _body(self, request: ChatRequest, model: ModelConfig, stream: bool) -> bytes:
        body: dict[str, Any] = {"model": model.upstream, "messages": request.messages, **request.params}
        if stream:
            body["stream"] = True
            if self._stream_usage:
                body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    async def complete(self, request: ChatRequest, model: ModelConfig) -> Completion:
        try:
            response = await self._client.post("/chat/completions", content=self._body(request, model, False))
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"The provider '{self.name}' did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Could not reach the provider '{self.name}': {exc}") from exc
        if response.status_code >= 400:
            raise self._error(response.status_code, response.content, response.headers)
        try:
            data = orjson.loads(response.content)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            usage = data.get("usage") or {}
            return Completion(
                text=message.get("content"),
                finish_reason=choice.get("finish_reason") or "stop",
                usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
                tool_calls=message.get("tool_calls") or None,
                upstream_model=data.get("model"),
            )
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise UpstreamError(f"The provider '{self.name}' sent an answer we could not read.") from exc

    async def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[Delta]:
        body = self._body(request, model, True)
        try:
            async with self._client.stream("POST", "/chat/completions", content=body) as response:
                if response.status_code >= 400:
                    raise self._error(response.status_code, await response.aread(), response.headers)
                finish: str | None = None
                usage: Usage | None = None
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        event = orjson.loads(payload)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError(f"The provider '{self.name}' sent a malformed stream event.") from exc
                    if "error" in event:
                        err = event["error"] or {}
                        raise UpstreamError(f"The provider '{self.name}' failed mid-stream: {err.get('message', err)}")
                    if event.get("usage"):
                        u = event["usage"]
                        usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
                    for choice in event.get("choices") or ():
                        d = choice.get("delta") or {}
                        text = d.get("content")
                        tools = d.get("tool_calls")
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                        if text or tools:
                            yield Delta(text=text or None, tool_calls=tools or None)
                yield Delta(finish_reason=finish or "stop", usage=usage)
        except GatewayError:
            raise
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"The provider '{self.name}' stopped answering (timeout).") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"The stream from provider '{self.name}' broke: {exc}") from exc

    def _error(self, status: int, content: bytes, headers: httpx.Headers) -> GatewayError:
        try:
            err = orjson.loads(content).get("error") or {}
            detail = err.get("message") if isinstance(err, dict) else str(err)
        except (orjson.JSONDecodeError, AttributeError):
            detail = content[:300].decode("utf-8", "replace")
        detail = detail or f"HTTP {status}"
        if status == 429:
            retry = headers.get("retry-after")
            return RateLimited(
                f"The provider '{self.name}' is rate limiting: {detail}",
                headers={"retry-after": retry} if retry else None,
            )
        if status in (401, 403):
            return UpstreamError(
                f"The provider '{self.name}' refused our credentials ({status}); an admin should check its API key."
            )
        if 400 <= status < 500:
            return InvalidRequest(f"The provider '{self.name}' rejected the request: {detail}")
        return UpstreamError(f"The provider '{self.name}' failed with HTTP {status}: {detail}")

    async def aclose(self) -> None:
        await self._client.aclose()
