"""Anthropic's Messages API through the official SDK, spoken to in OpenAI terms.

The translation lives in `anthropic_mapping.py`; this module owns the client, the
stream loop and turning upstream failures into errors the caller can act on.
The SDK retries nothing here (max_retries=0): retries and fallbacks are the gateway's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest, Completion, Delta
from aiport.domain.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from aiport.providers.anthropic_mapping import StreamTranslator, completion_from_message, to_anthropic

DEFAULT_BASE_URL = "https://api.anthropic.com"

# Body fields the SDK's messages.create() takes as arguments; the rest (temperature,
# top_p: no longer in the SDK's signature) travel in extra_body.
_SDK_ARGUMENTS = frozenset({"model", "max_tokens", "messages", "system", "stop_sequences", "tools", "tool_choice"})

# HTTP status for an error type, for `error` events inside a 200 stream.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicProvider:
    """A Provider for Claude models.

    Options (catalog `options:`): `drop_params`, a list of OpenAI parameter names never
    sent to this provider (e.g. ["temperature", "top_p"] for models that reject them).
    """

    def __init__(self, name: str, config: ProviderConfig) -> None:
        key = config.resolved_api_key()
        if not key:
            raise ValueError(f"provider {name!r}: anthropic needs an API key (set api_key_env or api_key)")
        self.name = name
        self._drop = frozenset(config.options.get("drop_params") or ())
        # The SDK adds /v1/messages itself; accept an OpenAI-style base URL ending in /v1 too.
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        # anthropic.Timeout is httpx2's: the SDK rejects httpx objects.
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=base_url,
            timeout=anthropic.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            max_retries=0,
        )

    def _arguments(self, request: ChatRequest, model: ModelConfig) -> dict[str, Any]:
        body = to_anthropic(request, model, drop=self._drop)
        arguments = {k: v for k, v in body.items() if k in _SDK_ARGUMENTS}
        extra = {k: v for k, v in body.items() if k not in _SDK_ARGUMENTS}
        if extra:
            arguments["extra_body"] = extra
        return arguments

    async def complete(self, request: ChatRequest, model: ModelConfig) -> Completion:
        """Return the whole answer."""
        arguments = self._arguments(request, model)
        try:
            message = await self._client.messages.create(**arguments)
        except Exception as exc:
            raise self._error(exc) from exc
        if not isinstance(message, anthropic.types.Message):
            raise UpstreamError(f"The provider '{self.name}' sent an answer we could not read.")
        try:
            return completion_from_message(message)
        except (AttributeError, TypeError, ValueError) as exc:
            raise UpstreamError(f"The provider '{self.name}' sent an answer we could not read.") from exc

    async def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncIterator[Delta]:
        """Yield text and tool-call fragments as they arrive, then one delta with finish_reason and usage.

        An `error` event inside the stream (Anthropic sends overloaded_error this way) raises
        like the same error before the stream. Overloaded stays a 502 UpstreamError, with
        code "upstream_overloaded" so a fallback policy can tell it apart: the caller did
        nothing wrong and cannot fix it, and a 503 would invite them to hammer us instead.
        """
        arguments = self._arguments(request, model)
        translator = StreamTranslator()
        try:
            events = await self._client.messages.create(**arguments, stream=True)
            async with events:
                async for event in events:
                    delta = translator.feed(event)
                    if delta is not None:
                        yield delta
        except GatewayError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        if translator.stop_reason is None:
            raise UpstreamError(f"The stream from provider '{self.name}' ended before the answer was complete.")
        yield translator.final()

    def _error(self, exc: Exception) -> GatewayError:
        """The GatewayError for an SDK or transport failure; unknown errors surface as UpstreamError."""
        if isinstance(exc, GatewayError):
            return exc
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return UpstreamTimeout(f"The provider '{self.name}' did not answer in time.")
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return UpstreamError(f"Could not reach the provider '{self.name}': {exc}")
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status < 400:  # an `error` event in a stream that started fine
                status = _STATUS_BY_TYPE.get(str(exc.type or ""), 500)
            return self._status_error(status, exc.type, exc.api_message or exc.message, exc.response.headers)
        if isinstance(exc, anthropic.APIResponseValidationError):
            return UpstreamError(f"The provider '{self.name}' sent an answer we could not read.")
        return UpstreamError(f"The provider '{self.name}' failed: {type(exc).__name__}: {exc}")

    def _status_error(self, status: int, kind: str | None, detail: str, headers: httpx2.Headers) -> GatewayError:
        name = self.name
        if status == 429:
            retry = headers.get("retry-after")
            return RateLimited(
                f"The provider '{name}' is rate limiting: {detail}", headers={"retry-after": retry} if retry else None
            )
        if status in (401, 403):
            return UpstreamError(
                f"The provider '{name}' refused our credentials ({status}: {detail}); "
                "an admin should check its API key."
            )
        if status == 402:
            return UpstreamError(
                f"The provider '{name}' refused for billing reasons ({detail}); an admin should check the account."
            )
        if status == 404:
            # Our catalog names the upstream model, not the caller: an admin must fix it.
            return UpstreamError(
                f"The provider '{name}' does not know the requested model or endpoint "
                f"({detail}); an admin should check upstream_model and base_url."
            )
        if status in (408, 504):
            return UpstreamTimeout(f"The provider '{name}' timed out: {detail}")
        if 400 <= status < 500:
            return InvalidRequest(f"The provider '{name}' rejected the request: {detail}")
        if kind == "overloaded_error" or status == 529:
            return UpstreamError(
                f"The provider '{name}' is overloaded; try again later: {detail}", code="upstream_overloaded"
            )
        return UpstreamError(f"The provider '{name}' failed with HTTP {status}: {detail}")

    async def aclose(self) -> None:
        """Release the SDK's connection pool."""
        await self._client.close()
