"""Reports of the gateway benchmark: markdown tables with "added" columns, the issues'
targets met or missed, and py-spy profiles summarized by layer."""

from __future__ import annotations

import argparse
import collections
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Leaf frames that are waiting, not working: aiosqlite's worker blocked on its queue, and
# the event loop's own C code (uvloop: mostly epoll wait; its socket I/O lands here too).
IDLE_LEAVES = (
    "_connection_worker_thread (aiosqlite/core.py:59)",  # aiosqlite's thread waiting for work
    "Runner.run (asyncio/runners.py",  # uvloop waiting in epoll
    "_worker (concurrent/futures/thread.py:81)",  # an idle executor thread (work_queue.get)
)


# Where a sample's time goes: the first layer in this list that any frame of it belongs to.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("upstream HTTP client (httpx/httpcore/anyio)", ("httpx/", "httpcore/", "anyio/")),
    ("rate limits (limits library)", ("limits/", "gateway/ratelimit.py")),
    ("quota ledger", ("gateway/ledger.py",)),
    ("token estimate (tiktoken)", ("gateway/tokens.py", "tiktoken/")),
    ("response cache", ("gateway/cache.py",)),
    ("rules lookup", ("gateway/rules.py",)),
    ("redis client (other)", ("redis/",)),
    ("audit writer + database", ("observe/audit.py", "aiosqlite/", "sqlalchemy/", "sqlite")),
    ("identify (API key)", ("gateway/identify.py", "web/auth.py")),
    ("pipeline (route, meter, record, ...)", ("gateway/",)),
    ("OpenAI request parse + response render (web/v1.py)", ("web/v1.py", "web/sse.py", "web/openai_schema.py")),
    ("request id middleware", ("web/middleware.py",)),
    ("FastAPI / Starlette", ("fastapi/", "starlette/")),
    ("uvicorn HTTP server", ("uvicorn/",)),
    ("asyncio machinery", ("asyncio/",)),
]


# Framework layers every request stack passes through: only the leaf-most one counts.
FRAMEWORK = {"request id middleware", "FastAPI / Starlette", "uvicorn HTTP server", "asyncio machinery"}


def layer_of(frames: list[str]) -> str:
    """The highest-priority aiport/library layer in the stack, else the leaf-most framework layer."""
    for name, needles in LAYERS:
        if name not in FRAMEWORK and any(n in f for f in frames for n in needles):
            return name
    for frame in reversed(frames):
        for name, needles in LAYERS:
            if name in FRAMEWORK and any(n in frame for n in needles):
                return name
    return "other"


def summarize_profile(path: Path, n: int = 40) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        k = int(count)
        frames = stack.split(";")[1:]  # drop the process frame
        if not frames or frames[-1].startswith(IDLE_LEAVES):
            continue
        total += k
        layers[layer_of(frames)] += k
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return "no busy samples\n"
    out = [f"busy samples: {total} (idle waits left out: {', '.join(IDLE_LEAVES)})", "", "by layer:"]
    out += [f"{100 * c / total:5.1f}%  {name}" for name, c in layers.most_common()]
    out += ["", "self:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(n)]
    out += ["", "inclusive:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(n)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- tables


def median_of(runs: list[dict[str, Any]], path: tuple[str, ...]) -> float | None:
    """Median over rounds of one number at ``path``; None when missing."""
    vals: list[float] = []
    for r in runs:
        cur: Any = r
        for k in path:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if isinstance(cur, int | float):
            vals.append(float(cur))
    return statistics.median(vals) if vals else None


Row = tuple[str, tuple[str, ...], Callable[[float], str], bool]  # label, path, format, show added


def f2(v: float) -> str:
    return f"{v:.2f}"


def intf(v: float) -> str:
    return f"{v:,.0f}"


def rows(args: argparse.Namespace) -> list[Row]:
    r, lr = f"{args.rate:.0f}", f"{args.light_rate:.0f}"
    return [
        ("throughput, req/s (closed loop)", ("throughput", "rps"), lambda v: f"{v:,.0f}", False),
        ("server CPU per request, ms (direct: the fake upstream)", ("throughput", "cpu_ms_per_request"), f2, False),
        (
            "capacity of one core at that CPU cost, req/s",
            ("throughput", "cpu_capacity_rps"),
            lambda v: f"{v:,.0f}",
            False,
        ),
        (f"latency p50 @ {r} req/s, ms", ("latency", "latency_ms", "p50"), f2, True),
        (f"latency p90 @ {r} req/s, ms", ("latency", "latency_ms", "p90"), f2, True),
        (f"latency p99 @ {r} req/s, ms", ("latency", "latency_ms", "p99"), f2, True),
        (f"failed requests @ {r} req/s (30 s timeouts, non-200)", ("latency", "errors_total"), intf, False),
        (f"latency p50 @ {lr} req/s, ms", ("light", "latency_ms", "p50"), f2, True),
        (f"latency p99 @ {lr} req/s, ms", ("light", "latency_ms", "p99"), f2, True),
        (f"stream TTFT p50 @ {args.stream_rate:.0f}/s, ms", ("stream", "ttft_ms", "p50"), f2, True),
        (f"stream TTFT p99 @ {args.stream_rate:.0f}/s, ms", ("stream", "ttft_ms", "p99"), f2, True),
        ("stream chunk gap p50, ms", ("stream", "chunk_gap_ms", "p50"), f2, False),
        (
            "other load on the machine during the 200/s phase, % of all cores",
            ("latency", "cpu", "background_pct"),
            lambda v: f"{v:.0f}",
            False,
        ),
    ]


CACHE_ROWS: list[Row] = [
    ("cache hit p50 (client, incl. HTTP), ms", ("cache", "latency_ms", "p50"), f2, False),
    ("cache hit p99 (client, incl. HTTP), ms", ("cache", "latency_ms", "p99"), f2, False),
    ("cache hit p50 (server time, audit log), ms", ("cache", "server_ms", "p50"), f2, False),
    ("cache hit p99 (server time, audit log), ms", ("cache", "server_ms", "p99"), f2, False),
]


def table(results: dict[str, list[dict[str, Any]]], names: list[str], table_rows: list[Row]) -> str:
    """Markdown: one column per target, and 'added' (gateway − direct) after each gateway."""
    names = [n for n in names if n in results]
    head = ["metric"]
    for n in names:
        head.append(n)
        if n != "direct" and "direct" in results:
            head.append(f"{n} added")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base_ok = "direct" in results
    for label, path, fmt, added in table_rows:
        vals = {n: median_of(results[n], path) for n in names}
        if all(v is None for v in vals.values()):
            continue
        cells = []
        for n in names:
            v = vals[n]
            cells.append(fmt(v) if v is not None else "–")
            if n != "direct" and base_ok:
                b = vals.get("direct")
                cells.append(f"{v - b:+.2f}" if added and v is not None and b is not None else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """The issues' targets for aiport, met or missed, from the medians."""

    def added(name: str, path: tuple[str, ...]) -> float | None:
        v, b = median_of(results.get(name, []), path), median_of(results.get("direct", []), path)
        return None if v is None or b is None else v - b

    checks = [
        ("issue 2: throughput ≥ 1,000 req/s", median_of(results.get("aiport", []), ("throughput", "rps")), 1000, ">="),
        (f"issue 2: added p50 @ {args.rate:.0f}/s ≤ 1 ms", added("aiport", ("latency", "latency_ms", "p50")), 1, "<="),
        (f"issue 2: added p99 @ {args.rate:.0f}/s ≤ 5 ms", added("aiport", ("latency", "latency_ms", "p99")), 5, "<="),
        ("issue 2: added TTFT p50 ≤ 2 ms", added("aiport", ("stream", "ttft_ms", "p50")), 2, "<="),
        (
            f"issue 3: controls on, added p50 @ {args.rate:.0f}/s ≤ 1.5 ms",
            added("aiport-control", ("latency", "latency_ms", "p50")),
            1.5,
            "<=",
        ),
        (
            f"issue 3: controls on, added p99 @ {args.rate:.0f}/s ≤ 6 ms",
            added("aiport-control", ("latency", "latency_ms", "p99")),
            6,
            "<=",
        ),
        (
            "issue 3: cache hit p50 ≤ 1 ms (server time)",
            median_of(results.get("aiport-control", []), ("cache", "server_ms", "p50")),
            1,
            "<=",
        ),
    ]
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    for label, v, limit, op in checks:
        if v is None:
            continue
        ok = v >= limit if op == ">=" else v <= limit
        lines.append(f"| {label} | {v:,.2f} | {'met' if ok else '**missed**'} |")
    return "\n".join(lines)


def report(doc: dict[str, Any], args: argparse.Namespace, argv: list[str]) -> str:
    """The markdown report: where, how, and the tables."""
    m = doc["machine"]
    results = doc["results"]
    cmd = " ".join(["python bench/run_gateway.py", *argv]).strip()
    meta = doc["targets"]
    versions = ", ".join(f"{n} {meta[n].get('version', '?')}" for n in meta if meta[n].get("version"))
    trees = sorted({str(meta[n]["tree"]) for n in meta if meta[n].get("tree")})
    if trees:
        versions += f" (aiport source: {'; '.join(trees)})"
    dirty = sorted({f for n in meta for f in meta[n].get("uncommitted") or []})
    if dirty:
        versions += f"; **uncommitted changes measured** in {', '.join(dirty)}"
    out = [
        f"Measured {doc['when']} on {m['nproc']} × {m['cpu_model']} (kernel {m['kernel']}, Python {m['python']}); "
        f"load average at start {m['loadavg_at_start']}, other processes' share of all cores at start "
        f"{doc['background_at_start_pct']}%. Command: `{cmd}`. {versions}; aiport commit {doc['aiport_commit']}.",
        "",
        f"Gateway pinned to CPU {args.gateway_cpus}, fake upstream + load generator to CPU {args.client_cpus}; "
        f"one gateway worker process; throughput {args.engine}, {args.connections} connections, "
        f"{args.throughput_s:.0f}s; latency open loop (from the scheduled send time) {args.latency_s:.0f}s "
        f"at {args.rate:.0f}/s and {args.light_s:.0f}s at {args.light_rate:.0f}/s; streams: "
        f"{args.stream_rate:.0f}/s for {args.stream_s:.0f}s, upstream {args.chunks} chunks "
        f"{args.chunk_delay_ms:.0f} ms apart; medians over {args.rounds} round(s).",
        "",
    ]
    plain = [n for n in ("direct", "aiport", "litellm") if n in results]
    control = [n for n in ("direct", "aiport-control", "litellm-control") if n in results]
    if len(plain) > 1:
        out += ["#### Plain gateway (audit log on)", "", table(results, plain, rows(args)), ""]
    if len(control) > 1:
        out += [
            "#### Control stages on (quotas, rate limits, cache lookups on unique requests, audit; Redis)",
            "",
            table(results, control, rows(args) + CACHE_ROWS),
            "",
        ]
    out += ["#### Targets", "", verdicts(results, args), ""]
    errs = {n: [r.get("error") for r in results[n] if r.get("error")] for n in results}
    errs = {n: e for n, e in errs.items() if e}
    if errs:
        out += ["Targets that failed: " + "; ".join(f"{n}: {e[0][:200]}" for n, e in errs.items()), ""]
    return "\n".join(out)
