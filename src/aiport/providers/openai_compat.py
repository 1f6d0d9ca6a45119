"""Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama-server, ...) by base URL and key.

A lean HTTP/1.1 client (providers/http1.py) + orjson rather than the openai SDK (httpx) or
aiohttp: we only relay, and on the gateway's hot path the CPU per call is httpx ~1.6 ms,
aiohttp ~0.5 ms, the lean client ~0.1 ms (bench/upstream_client.py, docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest, Completion, Delta, Usage
from aiport.domain.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from aiport.providers.http1 import HTTPTransportError, LeanHTTPClient

_MAX_LINE = 8 * 1024 * 1024


class OpenAICompatProvider:
    def __init__(self, name: str, config: ProviderConfig) -> None:
        if not config.base_url:
            raise ValueError(f"provider {name!r}: openai_compat needs base_url")
        self.name = name
        self._stream_usage = bool(config.options.get("stream_usage", True))
        headers = {"content-type": "application/json", "user-agent": "aiport"}
        key = config.resolved_api_key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._http = LeanHTTPClient(
            config.base_url.rstrip("/"),
            headers,
            connect_timeout=config.connect_timeout_seconds,
            read_timeout=config.timeout_seconds,
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
            async with self._http.post("/chat/completions", self._body(request, model, False)) as response:
                content = await response.read()
                if response.status >= 400:
                    raise self._error(response.status, content, response.headers)
        except GatewayError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(f"The provider '{self.name}' did not answer in time.") from exc
        except HTTPTransportError as exc:
            raise UpstreamError(f"Could not reach the provider '{self.name}': {_describe(exc)}") from exc
        try:
            data = orjson.loads(content)
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
            async with self._http.post("/chat/completions", body) as response:
                if response.status >= 400:
                    raise self._error(response.status, await response.read(), response.headers)
                finish: str | None = None
                usage: Usage | None = None
                async for raw in response.lines(_MAX_LINE):
                    if not raw.startswith(b"data:"):
                        continue
                    payload = raw[5:].strip()
                    if payload == b"[DONE]":
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
        except TimeoutError as exc:
            raise UpstreamTimeout(f"The provider '{self.name}' stopped answering (timeout).") from exc
        except HTTPTransportError as exc:
            raise UpstreamError(f"The stream from provider '{self.name}' broke: {_describe(exc)}") from exc

    def _error(self, status: int, content: bytes, headers: Mapping[str, str]) -> GatewayError:
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
        await self._http.aclose()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
