"""A very fast fake OpenAI-compatible upstream for gateway benchmarks.

A raw asyncio HTTP/1.1 keep-alive server (uvloop + httptools when installed) so the
upstream is never what limits a measurement; ``python bench/fake_upstream.py --help``.
It answers ``POST /v1/chat/completions`` (JSON or SSE stream), ``GET /v1/models`` and
``GET /health``. Binds only to loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httptools

try:  # orjson is a dependency of aiport; fall back to json elsewhere
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _dumps: Callable[[Any], bytes] = orjson.dumps
except ImportError:  # pragma: no cover
    _loads = json.loads

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


PROMPT_TOKENS = 12


@dataclass(frozen=True)
class Options:
    """How the fake upstream answers."""

    chunks: int = 20
    chunk_delay_ms: float = 5.0
    latency_ms: float = 0.0
    completion: str = "This is a fixed benchmark completion from the fake upstream."


class Responses:
    """Pre-renders response bytes so the hot path only concatenates."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self._json_cache: dict[str, bytes] = {}
        self._stream_cache: dict[tuple[str, bool], list[bytes]] = {}
        self.completion_tokens = max(1, len(opts.completion.split()))

    def usage(self, completion_tokens: int) -> dict[str, int]:
        """OpenAI usage block with fixed prompt tokens."""
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens,
        }

    def completion(self, model: str) -> bytes:
        """Full HTTP response for a non-streaming chat completion."""
        cached = self._json_cache.get(model)
        if cached is None:
            body = _dumps(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.opts.completion},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": self.usage(self.completion_tokens),
                    "system_fingerprint": "fp_fake",
                }
            )
            cached = _http(200, b"application/json", body)
            if len(self._json_cache) < 64:
                self._json_cache[model] = cached
        return cached

    def stream_events(self, model: str, include_usage: bool) -> list[bytes]:
        """The SSE events of one stream, each already framed as an HTTP chunk."""
        key = (model, include_usage)
        cached = self._stream_cache.get(key)
        if cached is not None:
            return cached
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": f"tok{i} "}, None) for i in range(self.opts.chunks)]
        events.append(chunk({}, "stop"))
        if include_usage:
            last = chunk({}, None)
            last["choices"] = []
            last["usage"] = self.usage(self.opts.chunks)
            events.append(last)
        framed = [_chunk(b"data: " + _dumps(e) + b"\n\n") for e in events]
        framed.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        if len(self._stream_cache) < 64:
            self._stream_cache[key] = framed
        return framed

    def models(self) -> bytes:
        """Full HTTP response for GET /v1/models."""
        body = _dumps(
            {
                "object": "list",
                "data": [{"id": "bench-model", "object": "model", "created": 0, "owned_by": "fake"}],
            }
        )
        return _http(200, b"application/json", body)


def _http(status: int, ctype: bytes, body: bytes) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"OK")
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (status, reason, ctype, len(body)) + body
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection; answers requests in arrival order."""

    def __init__(self, responses: Responses) -> None:
        self.r = responses
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.busy = False  # a delayed or streaming answer is in flight
        self.pending: list[tuple[bytes, bytes, bytes, bool]] = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_http(400, b"text/plain", b"bad request"))
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        req = (self.parser.get_method(), self.url, b"".join(self.body), self.parser.should_keep_alive())
        if self.busy:
            self.pending.append(req)
        else:
            self.handle(*req)

    # request handling
    def handle(self, method: bytes, url: bytes, body: bytes, keep_alive: bool) -> None:
        """Answer one request now, or start a task when it needs to wait."""
        t = self.transport
        if t is None:
            return
        path = url.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            try:
                req = _loads(body)
                model = str(req.get("model") or "bench-model")
            except (ValueError, AttributeError):
                t.write(_http(400, b"application/json", b'{"error":{"message":"bad json"}}'))
                return
            opts = self.r.opts
            if req.get("stream"):
                include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
                self.busy = True
                events = self.r.stream_events(model, include_usage)
                asyncio.get_running_loop().create_task(self._stream(events, keep_alive))
                return
            out = self.r.completion(model)
            if opts.latency_ms > 0:
                self.busy = True
                loop = asyncio.get_running_loop()
                loop.call_later(opts.latency_ms / 1000, self._send_late, out, keep_alive)
                return
        elif method == b"GET" and path.endswith(b"/models"):
            out = self.r.models()
        elif method == b"GET" and path in (b"/health", b"/"):
            out = _http(200, b"application/json", b'{"status":"ok"}')
        else:
            out = _http(404, b"application/json", b'{"error":{"message":"not found"}}')
        t.write(out)
        if not keep_alive:
            t.close()

    def _send_late(self, out: bytes, keep_alive: bool) -> None:
        if self.transport is not None:
            self.transport.write(out)
            if not keep_alive:
                self.transport.close()
        self._next()

    async def _stream(self, events: list[bytes], keep_alive: bool) -> None:
        """Role + first token together after the latency, then one chunk per delay."""
        opts = self.r.opts
        delay = opts.chunk_delay_ms / 1000
        if opts.latency_ms > 0:
            await asyncio.sleep(opts.latency_ms / 1000)
        t = self.transport
        if t is None:
            return
        t.write(STREAM_HEAD + events[0] + events[1])
        for i, ev in enumerate(events[2:]):
            # the closing events (finish, usage, DONE) follow the last token at once
            if delay > 0 and i < self.r.opts.chunks - 1:
                await asyncio.sleep(delay)
            if self.transport is None:
                return
            t.write(ev)
        if not keep_alive:
            t.close()
        self._next()

    def _next(self) -> None:
        self.busy = False
        while self.pending and not self.busy:
            self.handle(*self.pending.pop(0))


def _install_uvloop() -> str:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:  # pragma: no cover
        return "asyncio"


async def serve(host: str, port: int, opts: Options, duration: float) -> None:
    """Serve until SIGINT/SIGTERM or ``duration`` seconds (0 = until signalled, max 24 h)."""
    loop = asyncio.get_running_loop()
    responses = Responses(opts)
    server = await loop.create_server(lambda: UpstreamProtocol(responses), host, port, reuse_address=True, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream on http://{host}:{port}/v1 {opts}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration if duration > 0 else 86400)
    except TimeoutError:
        pass
    server.close()


def main(argv: list[str] | None = None) -> None:
    """Parse flags and run the server."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    ap.add_argument("--chunk-delay-ms", type=float, default=5.0, help="delay between stream chunks")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay before the answer / first chunk")
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: 24 h)")
    a = ap.parse_args(argv)
    _install_uvloop()
    opts = Options(chunks=max(1, a.chunks), chunk_delay_ms=a.chunk_delay_ms, latency_ms=a.latency_ms)
    asyncio.run(serve(a.host, a.port, opts, a.duration))


if __name__ == "__main__":
    main()
