"""A lean HTTP/1.1 client for relaying to one OpenAI-compatible origin.

Why not aiohttp: on the gateway's hot path aiohttp's request machinery (session, connector,
tracing hooks, StreamReader, multidict headers) costs ~0.45 ms of CPU per relayed call, a
third of the gateway's whole added latency (docs/benchmarks.md). The relay needs only a
small part of HTTP: POST a JSON body to one origin over kept-alive connections, read
a status, headers and a body (Content-Length, chunked or until close), or the body's lines
for SSE. httptools (llhttp, the parser uvicorn uses) does the parsing; this module does
the connection pool, timeouts, flow control and error reporting.

Semantics kept from the aiohttp setup it replaces:
- a connect timeout, and a read timeout between two reads (aiohttp's ``sock_read``);
- kept-alive connections are reused LIFO and dropped after ``idle_seconds`` idle; a request
  whose reused connection turns out to have been closed by the server before it answered
  a single byte is sent once more on a fresh connection (the server never saw it);
- ``gzip``/``deflate`` bodies are decoded, though we never ask for them;
- a response that is abandoned before its end closes its connection.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 20  # stop reading from the socket while this much body waits unread
_LOW_WATER = 1 << 18
_DRAIN_SECONDS = 0.05  # how long a finished caller waits for the rest of a body, to keep the connection


class HTTPTransportError(Exception):
    """The origin could not be reached, or broke the exchange (reset, malformed answer)."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection: feeds bytes to the parser and wakes the one reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None) -> None:
        self.loop = self._loop = loop
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._begin()
        self._active = False

    def _begin(self) -> None:
        self._active = True
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self._to_eof = False
        self._decoder: zlib._Decompress | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._active:  # an idle connection must stay silent; it can't be reused now
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPTransportError(f"the server sent a malformed HTTP answer ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._active and not self.complete and self._error is None:
            if self._to_eof:  # no length, not chunked: the body ends with the connection
                self._finish()
            else:
                reason = f": {exc}" if exc else ""
                self._error = HTTPTransportError(
                    f"the server closed the connection before it finished answering{reason}"
                )
        self._wake()

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:  # an interim answer (103 Early Hints): the real one follows
            return
        headers = self.headers
        self._to_eof = "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
        if headers.get("content-encoding", "").strip().lower() in ("gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._fail(HTTPTransportError(f"the server sent a body we could not decompress ({exc})"))
                return
        if body:
            self._push(body)

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.headers = {}
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._finish()

    # -- reading ------------------------------------------------------------------------

    def _push(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._push(tail)
        self.complete = True
        self._wake()

    async def read_headers(self) -> None:
        while not self.headers_done:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise HTTPTransportError("the server closed the connection before it answered")
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The next piece of the body, b"" at its end."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                return chunk
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = None if self._read_timeout is None else self._loop.call_later(self._read_timeout, self._timed_out)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _timed_out(self) -> None:
        self._fail(TimeoutError(f"no data from the server for {self._read_timeout:g} s"))

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self.close()
        self._wake()

    # -- life cycle ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self._begin()
        assert self._transport is not None
        self._transport.write(data)

    async def drain(self, limit: float) -> None:
        """Read what is left of a body the caller has finished with (a stream's last chunk
        after ``[DONE]``), for at most ``limit`` seconds, so the connection can be reused."""
        try:
            async with asyncio.timeout(limit):
                while await self.next_chunk():
                    pass
        except (TimeoutError, HTTPTransportError):
            self.close()

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self._error is None

    def park(self, now: float) -> None:
        self._active = False
        self.idle_since = now
        self._chunks.clear()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class Response:
    """Status, lower-cased headers and the body of one answer; release it (``async with``)."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: LeanHTTPClient, conn: _Connection) -> None:
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        self._conn = conn
        self._client = client

    async def read(self) -> bytes:
        parts = []
        while chunk := await self._conn.next_chunk():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def lines(self, max_line: int) -> AsyncIterator[bytes]:
        """The body split at b"\\n" (the newline dropped), for server-sent events."""
        pending = b""
        while chunk := await self._conn.next_chunk():
            if pending:
                chunk = pending + chunk
            parts = chunk.split(b"\n")
            pending = parts.pop()
            if len(pending) > max_line:
                raise HTTPTransportError(f"the server sent a line longer than {max_line:,} bytes")
            for line in parts:
                yield line
        if pending:
            yield pending

    async def _finish_reading(self) -> None:
        conn = self._conn
        if not conn.complete and not conn.closed:
            await conn.drain(_DRAIN_SECONDS)

    def release(self) -> None:
        self._client._release(self._conn)


class _Exchange:
    """``async with client.post(...) as response``: sends on enter, releases on exit."""

    __slots__ = ("_client", "_data", "_response")

    def __init__(self, client: LeanHTTPClient, data: bytes) -> None:
        self._client = client
        self._data = data
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._client._exchange(self._data)
        return self._response

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        response = self._response
        if response is None:
            return
        if kind is None:
            await response._finish_reading()
        response.release()


class LeanHTTPClient:
    """Kept-alive HTTP/1.1 connections to one origin, per event loop (a Celery worker may run
    jobs on a fresh loop each time; connections never cross loops)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        idle_seconds: float = 30.0,
        max_idle: int = 256,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        https = parts.scheme == "https"
        self._ssl: ssl.SSLContext | None = (ssl_context or ssl.create_default_context()) if https else None
        self._prefix = parts.path.rstrip("/")
        default_port = self._port == (443 if self._ssl else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        authority = host if default_port else f"{host}:{self._port}"
        lines = [f"host: {authority}"] + [f"{k}: {v}" for k, v in headers.items()]
        self._fixed_headers = "\r\n".join(lines)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def post(self, path: str, body: bytes) -> _Exchange:
        head = f"POST {self._prefix}{path} HTTP/1.1\r\n{self._fixed_headers}\r\ncontent-length: {len(body)}\r\n\r\n"
        return _Exchange(self, head.encode("latin-1") + body)

    async def _exchange(self, data: bytes) -> Response:
        while True:
            conn, reused = await self._acquire()
            conn.send(data)
            try:
                await conn.read_headers()
            except HTTPTransportError:
                conn.close()
                if reused and not conn.received:
                    continue  # the server had closed this kept-alive connection; it never saw the request
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, conn)

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._idle = []  # connections of a finished loop can't be used here
            self._loop = loop
        idle = self._idle
        now = loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._idle_seconds:
                return conn, True
            conn.close()
        return await self._connect(loop), False

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        read_timeout = self._read_timeout
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, read_timeout),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            raise TimeoutError(
                f"could not connect to {self._host}:{self._port} within {self._connect_timeout:g} s"
            ) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS
            raise HTTPTransportError(f"could not connect to {self._host}:{self._port} ({exc})") from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        loop = self._loop
        if conn.reusable() and conn.loop is loop and loop is not None and len(self._idle) < self._max_idle:
            conn.park(loop.time())
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
