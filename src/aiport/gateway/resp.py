"""A lean, pipelined Redis connection for the gateway's two hot scripts.

Every controlled call runs two Lua scripts (admission, then settlement). Through redis-py's
asyncio client one EVALSHA costs the gateway ~150–400 µs: a pool checkout, a readiness
probe of the socket, its own parser and several layers of coroutines; at light load,
those cold code paths are most of a cache hit's server time (docs/benchmarks.md). This
speaks the same protocol (RESP2, parsed by hiredis, which redis-py uses too) on one
connection, writing each command as it comes and matching replies to callers in order,
the way Redis answers them. Concurrent calls share the connection as a pipeline.

It does only what the scripts need: EVALSHA and SCRIPT LOAD, on a `redis://` or
`rediss://` URL with its user, password and database. Errors are redis-py's
exception types, so the callers' handling (NOSCRIPT reload, fail open/closed when Redis
is down) is the same as with redis-py. Everything else stays on redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def encode(value: Any) -> bytes:
    """An argument as redis-py would send it: bytes as they are, numbers as their repr."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):  # redis-py refuses booleans too: they are ambiguous
        raise TypeError("a boolean is not a valid Redis argument; send 0/1 or a string")
    if isinstance(value, int | float):
        return repr(value).encode()
    raise TypeError(f"cannot send a {type(value).__name__} to Redis")


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP. The usual command (text and numbers, ASCII: every key and
    argument of the gateway's scripts) is formatted as one string and encoded once."""
    texts = [a if type(a) is str else repr(a) if type(a) is int or type(a) is float else None for a in args]
    if None not in texts:
        command = "".join([f"${len(t)}\r\n{t}\r\n" for t in texts])  # type: ignore[arg-type]
        if command.isascii():  # then characters are bytes, and the lengths above are right
            return f"*{len(args)}\r\n{command}".encode()
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = encode(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    """One connection: replies come back in the order the commands were written."""

    def __init__(self, lane: RespLane) -> None:
        self._lane = lane
        self._reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Write one command; its reply will complete the returned future."""
        assert self.transport is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.transport.write(pack(args))
        self.waiting.append((future, time.monotonic()))
        return future

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:  # the stream cannot be trusted any more
                self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("Redis sent a reply nobody was waiting for"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller was cancelled; the reply is dropped, the order kept
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection to Redis lost: {exc}" if exc else "Connection to Redis closed"))

    def fail(self, error: Exception) -> None:
        """Fail every waiting call and drop the connection (the next call reconnects)."""
        if self.lost is None:
            self.lost = error
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.abort()
            except RuntimeError:  # its event loop is closed already
                pass
        self._lane.forget(self)


def _error(reply: ResponseError) -> ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return reply


class RespLane:
    """EVALSHA and SCRIPT LOAD over one pipelined connection, reconnected on demand."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, timeout: float = 2.0) -> None:
        options = parse_url(url)
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._db = int(options.get("db") or 0)
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self._ssl: ssl.SSLContext | None = None
        if options.get("connection_class") is SSLConnection:
            self._ssl = ssl.create_default_context()
            if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._proto: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._watching = False

    @staticmethod
    def supports(url: str) -> bool:
        """Whether this URL is one the lane speaks (others stay on redis-py)."""
        return url.startswith(("redis://", "rediss://"))

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return await self.execute("EVALSHA", sha, numkeys, *keys_and_args)

    async def script_load(self, source: str) -> Any:
        return await self.execute("SCRIPT", "LOAD", source)

    async def execute(self, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        proto = self._proto
        if proto is None or self._loop is not loop:
            proto = await self._connect(loop)
        future = proto.send(args)
        if not self._watching:
            self._watching = True
            loop.call_later(self._timeout, self._watch)
        return await future

    def _watch(self) -> None:
        """A reply overdue by the timeout fails the connection's callers, as redis-py's
        socket timeout would; the timer runs only while replies are awaited."""
        self._watching = False
        proto = self._proto
        if proto is None or not proto.waiting:
            return
        overdue = time.monotonic() - proto.waiting[0][1]
        if overdue >= self._timeout:
            proto.fail(RedisTimeoutError(f"Redis did not answer within {self._timeout:g} s"))
            return
        self._watching = True
        asyncio.get_running_loop().call_later(self._timeout - overdue, self._watch)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        if self._loop is not loop:  # a connection made on another (finished) event loop is useless here
            self._drop()
            self._loop = loop
        if self._connecting is None:
            self._connecting = loop.create_future()
            connecting = self._connecting
            try:
                proto = await asyncio.wait_for(self._open(loop), self._connect_timeout)
            except asyncio.CancelledError:
                connecting.cancel()
                self._connecting = None
                raise
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, RedisConnectionError)
                    else RedisConnectionError(f"Cannot connect to Redis: {exc!r}")
                )
                connecting.set_exception(error)
                connecting.exception()  # retrieved: waiters (if any) re-raise it
                self._connecting = None
                raise error from exc
            self._proto = proto
            self._connecting = None
            connecting.set_result(proto)
            return proto
        while True:  # another call is connecting: wait for it (and take over if it was cancelled)
            connecting = self._connecting
            try:
                return await asyncio.shield(connecting)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not connecting.cancelled() or (task is not None and task.cancelling()):
                    raise
            if self._connecting is None:
                return await self._connect(loop)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        proto = _Protocol(self)
        await loop.create_connection(lambda: proto, self._host, self._port, ssl=self._ssl)
        greeting: list[tuple[Any, ...]] = []
        if self._password:
            greeting.append(("AUTH", self._username, self._password) if self._username else ("AUTH", self._password))
        if self._db:
            greeting.append(("SELECT", self._db))
        replies = [proto.send(command) for command in greeting]
        try:
            for future in replies:
                await future
        except BaseException:
            proto.fail(RedisConnectionError("Redis refused the connection's AUTH/SELECT"))
            raise
        return proto

    def forget(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    def _drop(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            try:
                proto.transport.abort()
            except RuntimeError:  # its loop is closed already
                pass
        self._connecting = None
        self._watching = False

    async def aclose(self) -> None:
        proto = self._proto
        if proto is not None and self._loop is asyncio.get_running_loop():
            proto.fail(RedisConnectionError("the gateway is shutting down"))
        self._drop()
