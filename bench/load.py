"""Low-overhead HTTP load generator for OpenAI-compatible chat endpoints.

Three measurements, each bounded in time:

* ``throughput``: closed loop, C keep-alive connections for D seconds (Python or ``wrk``);
* ``latency``: open loop at a fixed rate; each request's latency is counted from the
  time it was *scheduled* to be sent, so a slow server cannot hide queueing delay
  (no coordinated omission); latency from the actual send is reported too;
* ``stream``: open loop of streaming requests; time to first token and inter-chunk gaps.

Raw asyncio sockets + httptools (+ uvloop), so one core drives tens of thousands of
requests per second. ``python bench/load.py --help``; results are JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
now = time.perf_counter
# In a body, replaced by a per-run nonce + a counter on every request (same length, so
# Content-Length holds): each request is new to a response cache (a miss + a store).
MARK = b"@@UNIQUE@@@@@@@@"
# Response headers worth counting (cache verdicts of aiport and LiteLLM).
WATCHED_HEADERS = {b"x-aiport-cache", b"x-litellm-cache-key", b"x-aiport-degraded"}


# ---------------------------------------------------------------- target + request


@dataclass(frozen=True)
class Target:
    """Where to send and what: the URL, extra headers and the JSON body."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    method: str = "POST"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def renderer(self) -> Callable[[], bytes]:
        """A function giving the next request's bytes: the same each time, or with MARK
        replaced by a fresh nonce + counter when the body carries it."""
        raw = self.raw()
        if MARK not in raw:
            return lambda: raw
        head, tail = raw.split(MARK, 1)
        nonce = os.urandom(3).hex().encode()
        count = iter(range(1, 10**10))
        return lambda: b"%s%s%010d%s" % (head, nonce, next(count), tail)

    def raw(self) -> bytes:
        """The full HTTP/1.1 request, rendered once and re-sent as is."""
        u = urlsplit(self.url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        lines = [f"{self.method} {path} HTTP/1.1", f"Host: {u.netloc}", "Connection: keep-alive"]
        if self.body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def chat_body(model: str, stream: bool, max_tokens: int = 32, unique: bool = False) -> bytes:
    """A small chat request like a typical client sends; ``unique`` makes every request differ."""
    content = "Say hello to the benchmark." + (f" {MARK.decode()}" if unique else "")
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def check_loopback(url: str) -> None:
    """Refuse any target that is not on this machine."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing non-loopback target {url!r}")


# ---------------------------------------------------------------- one connection


@dataclass
class Reply:
    """What one request observed; times are perf_counter seconds."""

    status: int = 0
    t_headers: float = 0.0
    t_first_token: float = 0.0
    t_done: float = 0.0
    token_times: list[float] = field(default_factory=list)
    events: int = 0
    body_bytes: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    headers: dict[bytes, bytes] = field(default_factory=dict)


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection running one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.stream = False
        self.reply = Reply()
        self.waiter: asyncio.Future[Reply] | None = None
        self.buf = b""
        self.body: list[bytes] = []
        self.keep_alive = True

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, host, port)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by server"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(e)
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in WATCHED_HEADERS:
            self.reply.headers[name] = value

    def on_headers_complete(self) -> None:
        self.reply.status = self.parser.get_status_code()
        self.reply.t_headers = now()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.reply.body_bytes += len(data)
        if self.stream:
            self._sse(data)
        else:
            self.body.append(data)

    def on_message_complete(self) -> None:
        r = self.reply
        r.t_done = now()
        if not self.stream and r.status == 200:
            r.t_first_token = r.t_done
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(r)
        if not self.keep_alive:
            self.close()

    def _sse(self, data: bytes) -> None:
        """Split SSE events; timestamp each event that carries content."""
        t = now()
        self.buf += data.replace(b"\r\n", b"\n")
        *events, self.buf = self.buf.split(b"\n\n")
        r = self.reply
        for ev in events:
            for line in ev.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                r.events += 1
                if payload == b"[DONE]":
                    continue
                try:
                    obj = _loads(payload)
                    choices = obj.get("choices") or []
                except (ValueError, AttributeError):
                    continue
                if obj.get("usage"):
                    r.usage = obj["usage"]
                if choices and (choices[0].get("delta") or {}).get("content"):
                    if not r.token_times:
                        r.t_first_token = t
                    r.token_times.append(t)

    async def request(self, raw: bytes, stream: bool, limit_s: float) -> Reply:
        """Send one request and wait (at most ``limit_s``) for the whole response."""
        if self.transport is None or self.closed:
            raise ConnectionError("connection is closed")
        self.stream, self.reply, self.buf, self.body = stream, Reply(), b"", []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await asyncio.wait_for(self.waiter, limit_s)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle connections, most recently used first (so idle ones age out server side)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Conn] = []
        self.opened = 0

    async def get(self) -> Conn:
        while self.idle:
            c = self.idle.pop()
            if not c.closed:
                return c
        self.opened += 1
        return await Conn.open(self.host, self.port)

    def put(self, c: Conn) -> None:
        if not c.closed:
            self.idle.append(c)

    async def warm(self, n: int) -> None:
        conns = await asyncio.gather(*(Conn.open(self.host, self.port) for _ in range(n)))
        self.idle.extend(conns)

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


# ---------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; 0.0 when empty."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary_ms(values_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of seconds, in milliseconds."""
    if not values_s:
        return {"n": 0}
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 3),
        "p90": round(pct(ms, 90), 3),
        "p99": round(pct(ms, 99), 3),
        "max": round(max(ms), 3),
        "mean": round(sum(ms) / len(ms), 3),
    }


# ---------------------------------------------------------------- closed loop


async def throughput_python(target: Target, connections: int, duration: float, warmup: float) -> dict[str, Any]:
    """Closed loop: every connection sends its next request as soon as the last returns."""
    next_raw = target.renderer()
    stream = b'"stream":true' in target.body
    ok = errors = 0
    lat: list[float] = []
    start = now() + warmup
    end = start + duration

    async def worker() -> None:
        nonlocal ok, errors
        conn: Conn | None = None
        while now() < end:
            try:
                if conn is None or conn.closed:
                    conn = await Conn.open(target.host, target.port)
                t0 = now()
                r = await conn.request(next_raw(), stream, 30)
                if r.t_done >= start and r.t_done < end:
                    if r.status == 200:
                        ok += 1
                        lat.append(r.t_done - t0)
                    else:
                        errors += 1
            except (OSError, TimeoutError, httptools.HttpParserError):
                if now() >= start:
                    errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                await asyncio.sleep(0.01)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return {
        "engine": "python",
        "connections": connections,
        "duration_s": duration,
        "requests_ok": ok,
        "errors": errors,
        "rps": round(ok / duration, 1),
        "latency_ms": summary_ms(lat),
    }


# ---------------------------------------------------------------- open loop


async def open_loop(
    target: Target,
    rate: float,
    duration: float,
    warmup: float,
    stream: bool,
    limit_s: float = 30,
    spin_s: float = 0.001,
) -> dict[str, Any]:
    """Send at a fixed rate regardless of responses; record latency from the schedule."""
    next_raw = target.renderer()
    pool = Pool(target.host, target.port)
    await pool.warm(min(64, max(4, int(rate * 0.02) + 4)))
    from_sched: list[float] = []
    from_send: list[float] = []
    ttft_sched: list[float] = []
    ttft_send: list[float] = []
    gaps: list[float] = []
    tokens: list[int] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    seen_headers: dict[str, int] = {}
    retries = 0

    async def one(intended: float, measured: bool) -> None:
        nonlocal retries
        raw = next_raw()
        sent = now()
        try:
            for attempt in range(2):
                conn = await pool.get()
                try:
                    r = await conn.request(raw, stream, limit_s)
                    break
                except ConnectionError:
                    # a kept-alive connection the server closed meanwhile: retry once, counted
                    conn.close()
                    if attempt:
                        raise
                    retries += 1
            pool.put(conn)
        except (OSError, TimeoutError, httptools.HttpParserError) as e:
            if measured:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            return
        if not measured:
            return
        if r.status != 200 or (stream and not r.token_times):
            errors[f"status_{r.status}"] = errors.get(f"status_{r.status}", 0) + 1
            return
        for k, v in r.headers.items():
            label = f"{k.decode()}: {v.decode()[:8]}" if k != b"x-litellm-cache-key" else k.decode()
            seen_headers[label] = seen_headers.get(label, 0) + 1
        lags.append(sent - intended)
        from_sched.append(r.t_done - intended)
        from_send.append(r.t_done - sent)
        if stream:
            ttft_sched.append(r.t_first_token - intended)
            ttft_send.append(r.t_first_token - sent)
            tokens.append(len(r.token_times))
            gaps.extend(b - a for a, b in zip(r.token_times, r.token_times[1:], strict=False))

    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    t0 = now() + 0.05
    n_warm = int(rate * warmup)
    n_total = n_warm + int(rate * duration)
    for i in range(n_total):
        intended = t0 + i / rate
        # sleep to ~1 ms before the slot, then yield until it (timers have 1 ms granularity)
        delay = intended - now() - spin_s
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(1_000_000):
            if now() >= intended:
                break
            await asyncio.sleep(0)
        task = loop.create_task(one(intended, i >= n_warm))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=limit_s + 5)
    for task in tasks:
        task.cancel()
    pool.close()
    res: dict[str, Any] = {
        "rate": rate,
        "duration_s": duration,
        "sent": n_total - n_warm,
        "ok": len(from_sched),
        "errors": errors,
        "errors_total": sum(errors.values()),
        "reconnect_retries": retries,
        "connections_opened": pool.opened,
        "send_lag_ms": summary_ms(lags),
        "latency_ms": summary_ms(from_sched),
        "latency_from_send_ms": summary_ms(from_send),
        "headers_seen": seen_headers,
    }
    if stream:
        res["ttft_ms"] = summary_ms(ttft_sched)
        res["ttft_from_send_ms"] = summary_ms(ttft_send)
        res["chunk_gap_ms"] = summary_ms(gaps)
        res["tokens_per_stream"] = {"min": min(tokens, default=0), "max": max(tokens, default=0)}
        res["coalesced_pct"] = round(100 * sum(g < 0.001 for g in gaps) / len(gaps), 2) if gaps else 0.0
    return res


# ---------------------------------------------------------------- CLI


def install_uvloop() -> str:
    """Use uvloop when installed; it roughly halves the client's per-request cost."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:  # pragma: no cover
        return "asyncio"


def build_target(a: argparse.Namespace, stream: bool) -> Target:
    """Target from CLI flags."""
    check_loopback(a.url)
    headers = []
    for h in a.header:
        k, _, v = h.partition(":")
        headers.append((k.strip(), v.strip()))
    if a.api_key:
        headers.append(("Authorization", f"Bearer {a.api_key}"))
    if a.body_file:
        with open(a.body_file, "rb") as f:
            body = f.read()
    elif a.body:
        body = a.body.encode()
    else:
        body = chat_body(a.model, stream)
    return Target(url=a.url, headers=tuple(headers), body=body)


def main(argv: list[str] | None = None) -> None:
    """Run one measurement and print JSON."""
    ap = argparse.ArgumentParser(description="Load generator for OpenAI-compatible chat endpoints.")
    sub = ap.add_subparsers(dest="mode", required=True)
    for name in ("throughput", "latency", "stream"):
        p = sub.add_parser(name)
        p.add_argument("--url", default="http://127.0.0.1:9100/v1/chat/completions")
        p.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
        p.add_argument("--api-key", default=os.environ.get("BENCH_API_KEY", ""))
        p.add_argument("--model", default="bench-model")
        p.add_argument("--body", default="", help="JSON body (default: a small chat request)")
        p.add_argument("--body-file", default="")
        p.add_argument("--duration", type=float, default=10.0)
        p.add_argument("--warmup", type=float, default=2.0)
        if name == "throughput":
            p.add_argument("--connections", type=int, default=32)
            p.add_argument("--engine", choices=["python", "wrk"], default="python")
        else:
            p.add_argument("--rate", type=float, default=200.0 if name == "latency" else 50.0)
            p.add_argument("--spin-ms", type=float, default=1.0, help="yield-wait this long before a slot")
    a = ap.parse_args(argv)
    a.duration = min(a.duration, 600.0)
    install_uvloop()
    target = build_target(a, stream=a.mode == "stream")
    if a.mode == "throughput":
        if a.engine == "wrk":
            from wrk_engine import throughput_wrk  # imports this module: not at the top

            res = throughput_wrk(target, a.connections, a.duration, a.warmup)
        else:
            res = asyncio.run(throughput_python(target, a.connections, a.duration, a.warmup))
    else:
        stream = a.mode == "stream"
        res = asyncio.run(open_loop(target, a.rate, a.duration, a.warmup, stream, spin_s=a.spin_ms / 1000))
    res.pop("raw", None)
    json.dump({"mode": a.mode, "url": a.url, **res}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
