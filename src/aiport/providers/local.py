"""The embedded model: llama.cpp (xllamacpp) running the bundled Gemma 3 270M in-process.

Zero setup: no server to run, no key. The model loads once, on first use or from `warm()`.
Generation runs in worker threads, one per llama.cpp slot, so the event loop never waits
on it; callers beyond the slots queue on a semaphore. Every call streams internally: a
per-token callback bridges chunks to asyncio and tells llama.cpp to stop as soon as the
caller goes away (closed stream, cancelled task), which frees the slot at the next token.
While a long prompt is still being read, llama.cpp reports progress after each batch
(`return_progress`), so a caller who left is noticed within one batch there too.

It is a base model, not a chat model: messages become a short "User:/Assistant:"
transcript and stop sequences end the answer at the next turn. It cannot call tools;
`tools` and `tool_choice` are ignored rather than refused, so apps that offer tools still
run (they just get a text answer). It reads text only: image or audio parts are refused.
JSON modes use llama.cpp's grammar, so the answer is valid JSON unless max_tokens cuts it.

Provider options: `model_path` runs another GGUF instead of the bundled one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest, Completion, Delta, Message, Usage
from aiport.domain.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamTimeout
from aiport.providers.local_model import ModelUnavailable, model_path_for, start_server

DEFAULT_MAX_TOKENS = 256
# Where a base model's answer ends: it starts the next turn or runs off into blank lines.
TURN_STOPS = ("\nUser:", "\nAssistant:", "\n\n\n", "<end_of_turn>")
# OpenAI parameters llama-server understands under the same name and meaning.
PASSED_THROUGH = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
_FINISH_REASONS = {"stop": "stop", "length": "length"}
_END = object()


class LocalProvider:
    """Provider for `kind: local`: one llama.cpp model with `parallel` slots of `context` tokens."""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        data_dir: Path,
        parallel: int = 2,
        context: int = 4096,
        threads: int = 0,
    ) -> None:
        if parallel < 1:
            raise ValueError(f"provider {name!r}: parallel must be at least 1")
        self.name = name
        self._config = config
        self._data_dir = Path(data_dir)
        self._parallel = parallel
        self._context = context
        self._threads = threads
        self._server: Any = None
        self._loading: asyncio.Future[Any] | None = None
        self._load_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(parallel)
        self._in_use = 0
        self._active: set[threading.Event] = set()
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"aiport-{name}")
        self._closed = False

    @property
    def slots_in_use(self) -> int:
        """Generations running now (0..parallel); callers beyond that are queued."""
        return self._in_use

    @property
    def server(self) -> Any:
        """The loaded xllamacpp.Server, or None before the first load; for benchmarks and diagnostics."""
        return self._server

    async def warm(self) -> None:
        """Load the model now (the server calls this at startup) so the first request does not wait."""
        await self._ready()

    async def complete(self, request: ChatRequest, model: ModelConfig) -> Completion:
        parts: list[str] = []
        async with aclosing(self.stream(request, model)) as deltas:
            async for delta in deltas:
                if delta.text:
                    parts.append(delta.text)
                if delta.finish_reason:
                    return Completion(
                        text="".join(parts),
                        finish_reason=delta.finish_reason,
                        usage=delta.usage or Usage(),
                        upstream_model=model.upstream,
                    )
        raise UpstreamError(f"The local model '{self.name}' stopped without finishing the answer; retry.")

    async def stream(self, request: ChatRequest, model: ModelConfig) -> AsyncGenerator[Delta, None]:
        body = build_body(request, model)
        for attempt in range(2):
            trim = _Trimmer()
            final: Delta | None = None
            sent = False
            async with aclosing(self._generate(body)) as chunks:
                async for chunk in chunks:
                    choice = (chunk.get("choices") or [{}])[0]
                    text = trim.feed(choice.get("text") or "")
                    if text:
                        sent = True
                        yield Delta(text=text)
                    if choice.get("finish_reason"):
                        reason = _FINISH_REASONS.get(choice["finish_reason"], "stop")
                        final = Delta(finish_reason=reason, usage=_usage(chunk))
            if final is None:
                raise UpstreamError(f"The local model '{self.name}' stopped without finishing the answer; retry.")
            if sent or attempt or final.finish_reason != "stop" or "json_schema" in body:
                # Sent after the worker thread ended (milliseconds later): once a caller has
                # the answer, its slot is free for the next one.
                yield final
                return
            # A small sampled model sometimes ends its turn before saying anything: nothing
            # was sent yet, so ask once more, greedily unless the caller chose a temperature.
            body = {**body, "temperature": body.get("temperature", 0.0)}

    async def aclose(self) -> None:
        """Stop running generations at their next token, end the worker threads, unload the model."""
        self._closed = True
        for stop in list(self._active):
            stop.set()
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        if self._loading is not None:
            await asyncio.gather(self._loading, return_exceptions=True)
        if self._server is None and _succeeded(self._loading):
            self._server = self._loading.result() if self._loading is not None else None
        holder = [self._server]
        self._server = None
        self._loading = None
        # llama.cpp's destructor joins its threads: let it block a worker thread, not the loop.
        await asyncio.to_thread(holder.clear)

    async def _ready(self) -> Any:
        """The loaded server; the first callers wait for one shared load (retried after a failure)."""
        if self._server is not None:
            return self._server
        if self._closed:
            raise UpstreamError(f"The local provider '{self.name}' is shut down.")
        async with self._load_lock:
            if self._server is None:
                if self._loading is None:
                    self._loading = asyncio.ensure_future(asyncio.to_thread(self._load))
                loading = self._loading
                try:
                    # shielded: a caller that gives up must not throw the loaded model away
                    self._server = await asyncio.shield(loading)
                except ModelUnavailable as exc:
                    raise UpstreamError(f"The local model '{self.name}' is not available: {exc}") from exc
                finally:
                    if loading.done() and self._loading is loading:
                        self._loading = None
        return self._server

    def _load(self) -> Any:
        path = model_path_for(self._data_dir, self._config.options)
        return start_server(path, parallel=self._parallel, context=self._context, threads=self._threads)

    async def _generate(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """Raw llama-server stream chunks for one request, holding one slot until its thread ends."""
        server = await self._ready()
        try:
            async with asyncio.timeout(self._config.timeout_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamTimeout(
                f"All {self._parallel} slots of the local model '{self.name}' stayed busy for "
                f"{self._config.timeout_seconds:.0f} s; retry later or raise AIPORT_LOCAL_PARALLEL."
            ) from None
        self._in_use += 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            # Runs on the worker thread for every token; True tells llama.cpp to stop.
            if stop.is_set():
                return True
            try:
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except RuntimeError:  # the event loop is gone: nobody is listening
                return True
            return False

        def finished(_: asyncio.Future[None]) -> None:
            self._active.discard(stop)
            self._in_use -= 1
            self._slots.release()
            queue.put_nowait(_END)

        try:
            future = loop.run_in_executor(self._executor, server.handle_completions, body, on_chunk)
        except RuntimeError:  # the executor was shut down
            self._in_use -= 1
            self._slots.release()
            raise UpstreamError(f"The local provider '{self.name}' is shut down.") from None
        self._active.add(stop)
        future.add_done_callback(finished)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    if not future.cancelled() and future.exception() is not None:
                        raise UpstreamError(
                            f"The local model '{self.name}' failed: {future.exception()}"
                        ) from future.exception()
                    return
                if "error" in item:
                    raise _error(self.name, item["error"])
                yield item
        finally:
            stop.set()  # the caller stopped listening (or we are done): end generation at the next token


def build_prompt(messages: list[Message]) -> str:
    """A short transcript a base model continues as the assistant: system text, then turns."""
    system: list[str] = []
    turns: list[str] = []
    for message in messages:
        role = message.get("role")
        text = _text(message.get("content")).strip()
        if role in ("system", "developer"):
            if text:
                system.append(text)
        elif role == "user":
            turns.append(f"User: {text}")
        elif role == "assistant":
            if text:  # tool-call-only turns carry no text for this model
                turns.append(f"Assistant: {text}")
        elif role == "tool":
            turns.append(f"Tool result: {text}")
    header = "\n".join(system)
    transcript = "\n".join([*turns, "Assistant:"])
    return f"{header}\n\n{transcript}" if header else transcript


def build_body(request: ChatRequest, model: ModelConfig) -> dict[str, Any]:
    """The llama-server /v1/completions request for a chat request, or InvalidRequest saying what to change."""
    params = request.params
    if params.get("n") not in (None, 1):
        raise InvalidRequest("The local model returns one choice per request; set n to 1.", param="n")
    max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
    if max_tokens is None:
        max_tokens = min(DEFAULT_MAX_TOKENS, model.max_output_tokens)
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens must be a positive integer.", param="max_tokens")
    stops: list[str] = []
    for stop in request.stop:
        if not isinstance(stop, str):
            raise InvalidRequest("stop must be a string or a list of strings.", param="stop")
        if stop:
            stops.append(stop)
    body: dict[str, Any] = {
        "prompt": build_prompt(request.messages),
        "max_tokens": min(max_tokens, model.max_output_tokens),
        "stream": True,
        "return_progress": True,  # a callback per prompt batch: a chance to stop before the first token
    }
    for key in PASSED_THROUGH:
        if params.get(key) is not None:
            body[key] = params[key]
    schema = _json_schema(params.get("response_format"))
    if schema is None:
        stops = [*TURN_STOPS, *stops]
    else:
        body["json_schema"] = schema  # JSON cannot contain the turn markers; the grammar ends it
    body["stop"] = stops
    return body


def _json_schema(response_format: Any) -> dict[str, Any] | None:
    """response_format -> llama-server json_schema ({} means any JSON value), None for plain text."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema", {}) if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "response_format.json_schema.schema must be a JSON Schema object.", param="response_format"
            )
        return schema
    raise InvalidRequest(
        "response_format.type must be 'text', 'json_object' or 'json_schema'.", param="response_format"
    )


def _text(content: Any) -> str:
    """Message content as text; this model cannot see images or hear audio, so those are refused."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                pieces.append(str(part.get("text") or ""))
            elif isinstance(part, str):
                pieces.append(part)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(
                    f"The local model reads text only; remove the {kind!r} content part or route to another model.",
                    param="messages",
                )
        return "\n".join(pieces)
    raise InvalidRequest("Message content must be a string or a list of content parts.", param="messages")


class _Trimmer:
    """Streams `answer.strip()` without holding the answer: leading whitespace is dropped, a
    whitespace run is held only until text follows it, and trailing whitespace never goes out."""

    def __init__(self) -> None:
        self._started = False
        self._pending = ""

    def feed(self, piece: str) -> str:
        if not self._started:
            piece = piece.lstrip()
            if not piece:
                return ""
            self._started = True
        body = piece.rstrip()
        if not body:
            self._pending += piece
            return ""
        out = self._pending + body
        self._pending = piece[len(body) :]
        return out


def _usage(chunk: dict[str, Any]) -> Usage:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    timings = chunk.get("timings") or {}
    prompt = int(timings.get("prompt_n") or 0) + int(timings.get("cache_n") or 0)
    return Usage(prompt, int(timings.get("predicted_n") or 0))


def _error(name: str, error: Any) -> GatewayError:
    """llama-server's {"code", "message", "type"} error -> InvalidRequest for 4xx, else UpstreamError."""
    if not isinstance(error, dict):
        return UpstreamError(f"The local model '{name}' failed: {error}")
    message = str(error.get("message") or error.get("type") or "unknown error")
    try:
        status = int(error.get("code") or 500)
    except (TypeError, ValueError):
        status = 500
    if error.get("type") == "exceed_context_size_error":
        return InvalidRequest(
            f"The conversation is too long for the local model '{name}' ({message}); "
            "shorten the messages or lower max_tokens.",
            param="messages",
            code="context_length_exceeded",
        )
    if 400 <= status < 500:
        return InvalidRequest(f"The local model '{name}' rejected the request: {message}")
    return UpstreamError(f"The local model '{name}' failed: {message}")


def _succeeded(future: asyncio.Future[Any] | None) -> bool:
    return future is not None and future.done() and not future.cancelled() and future.exception() is None
