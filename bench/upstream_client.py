"""CPU per request of the upstream HTTP client choices for the openai_compat provider.

Why aiport relays with its own lean client (providers/http1.py) rather than httpx (the
openai SDK's) or aiohttp: the same small chat completion, sent N times at a fixed
concurrency to bench/fake_upstream.py, timed by this process's own CPU seconds.

    .venv/bin/python bench/fake_upstream.py --port 9177 --duration 120 &
    .venv/bin/python bench/upstream_client.py --url http://127.0.0.1:9177
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson

from aiport.providers.http1 import LeanHTTPClient

BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32})
HEADERS = {"content-type": "application/json"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(send: Callable[[], Awaitable[None]], n: int, concurrency: int) -> tuple[float, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await send()

    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return (_cpu() - cpu0) / n * 1e3, n / (time.perf_counter() - t0)


async def main(url: str, n: int, concurrency: int, rounds: int) -> None:
    target = url.rstrip("/") + "/v1/chat/completions"
    hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    lean = LeanHTTPClient(url.rstrip("/") + "/v1", HEADERS, connect_timeout=5, read_timeout=120)

    async def via_httpx() -> None:
        orjson.loads((await hx.post(target, content=BODY, headers=HEADERS)).content)

    async def via_aiohttp() -> None:
        async with session.post(target, data=BODY, headers=HEADERS) as response:
            orjson.loads(await response.read())

    async def via_lean() -> None:
        async with lean.post("/chat/completions", BODY) as response:
            orjson.loads(await response.read())

    print(f"| client | CPU per request, ms | req/s (one core, {concurrency} in flight) |\n|---|---|---|")
    try:
        for _ in range(rounds):
            for name, send in (
                (f"httpx {httpx.__version__}", via_httpx),
                (f"aiohttp {aiohttp.__version__}", via_aiohttp),
                ("aiport lean (http1.py)", via_lean),
            ):
                await _measure(send, n // 4, concurrency)  # warm the pool
                ms, rps = await _measure(send, n, concurrency)
                print(f"| {name} | {ms:.3f} | {rps:,.0f} |")
    finally:
        await hx.aclose()
        await session.close()
        await lean.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:9177")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(main(args.url, args.requests, args.concurrency, args.rounds))
