"""Closed-loop throughput with ``wrk`` (C, one thread): the lowest-overhead client here,
driven from Python with a generated Lua script (a fixed body, or a unique one per request)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

from load import MARK, Target


def _lua_long_string(s: str) -> str:
    level = 0
    while ("]" + "=" * level + "]") in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[{s}]{eq}]"


WRK_LUA = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
"""
# Every request a new body (a cache miss): the marker becomes a nonce + a counter.
WRK_UNIQUE_LUA = """
local head, tail = {head}, {tail}
math.randomseed(os.time())
local nonce = string.format("%06x", math.random(0, 16777215))
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, head .. nonce .. string.format("%010d", counter) .. tail)
end
"""


def throughput_wrk(target: Target, connections: int, duration: float, warmup: float) -> dict[str, Any]:
    """Closed loop with ``wrk`` (C, one thread): the lowest-overhead client here."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install -y wrk, or use --engine python")
    headers = [("Content-Type", "application/json"), *target.headers]
    lua = WRK_LUA.format(
        method=target.method,
        body=_lua_long_string(target.body.decode()),
        headers="\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers),
    )
    if MARK in target.body:
        head, tail = target.body.decode().split(MARK.decode(), 1)
        lua += WRK_UNIQUE_LUA.format(head=_lua_long_string(head), tail=_lua_long_string(tail))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    try:
        if warmup > 0:
            subprocess.run(
                [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(warmup))}s", "-s", script, target.url],
                capture_output=True,
                timeout=warmup + 30,
                check=False,
            )
        cmd = [wrk, "-t1", f"-c{connections}", f"-d{round(duration)}s", "--timeout", "10s", "--latency"]
        cmd += ["-s", script, target.url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False).stdout
    finally:
        os.unlink(script)
    return {"engine": "wrk", "connections": connections, "duration_s": duration, **parse_wrk(out)}


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, error counts and latency percentiles from wrk's text output."""

    def ms(v: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]
        return round(float(m.group(1)) * scale, 3)

    res: dict[str, Any] = {"raw": out}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = int(m.group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    res["errors"] = errors
    lat = {f"p{q}": ms(v) for q, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    if lat:
        res["latency_ms"] = lat
    return res
