"""Gateway benchmark: the fake upstream direct vs aiport vs LiteLLM's proxy, in one run.

Starts the fake upstream, then each target in turn (one gateway process at a time, pinned
to its own core; upstream + load generator on the other) and measures: closed-loop
throughput, open-loop latency at a fixed rate (and at a light rate), streaming time to
first token, and for the control variants cache hits. Writes JSON + a markdown report to
bench/results/ and prints the markdown. Everything it starts it stops; every phase is
bounded in time.

    .venv/bin/python bench/run_gateway.py            # all five targets, ~12 minutes
    .venv/bin/python bench/run_gateway.py --quick    # smoke run, ~4 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import load
import targets as tg
from procs import BENCH, RESULTS, ROOT, busy_others, exit_on_sigterm, log, machine, wait_idle, wait_quiet, watch

# ---------------------------------------------------------------- measurements


def closed_loop(target: load.Target, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """One closed-loop run with the chosen engine, no separate warm-up."""
    if args.engine == "wrk":
        res = load.throughput_wrk(target, args.connections, seconds, 0)
        res.pop("raw", None)
        return res
    return asyncio.run(load.throughput_python(target, args.connections, seconds, 0))


def open_loop(
    t: tg.Target, target: load.Target, rate: float, seconds: float, stream: bool, args: argparse.Namespace
) -> dict[str, Any]:
    """One open-loop phase with the target's CPU and the machine's load around it."""
    idle_before = wait_idle(t.pids())
    wait_quiet(args.wait_quiet_s)
    with watch(t.pids()) as cpu:
        res = asyncio.run(load.open_loop(target, rate, seconds, args.warmup_s, stream))
    res["cpu"] = cpu
    res["backlog_before_s"] = idle_before
    res["backlog_s"] = wait_idle(t.pids())
    if res["backlog_s"] > 1:
        log(f"[{t.name}]   gateway still busy {res['backlog_s']}s after the phase (backlog)")
    time.sleep(args.settle_s)
    return res


def latency_phase(
    t: tg.Target, target: load.Target, rate: float, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Open-loop non-streaming latency at one rate."""
    log(f"[{t.name}] latency: {rate:.0f} req/s for {seconds:.0f}s")
    res = open_loop(t, target, rate, seconds, False, args)
    lat = res["latency_ms"]
    log(f"[{t.name}]   p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, errors {res['errors']}")
    return res


def measure(t: tg.Target, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput, fixed-rate latency, light-rate latency, streaming and cache hits for one target."""
    res: dict[str, Any] = {}
    plain = load.Target(t.chat_url, t.headers(), t.body(False))
    streamed = load.Target(t.chat_url, t.headers(), t.body(True))
    pids = t.pids()

    wait_idle(pids)
    wait_quiet(args.wait_quiet_s)
    log(f"[{t.name}] throughput: {args.connections} connections, {args.throughput_s:.0f}s ({args.engine})")
    closed_loop(plain, args, args.warmup_s)  # warm up outside the measured CPU window
    with watch(pids) as cpu:
        res["throughput"] = closed_loop(plain, args, args.throughput_s)
    res["throughput"]["cpu"] = cpu
    # wrk drops a request after 2 s and reconnects; the gateway still works the dropped ones off
    res["throughput"]["backlog_s"] = wait_idle(pids)
    done = res["throughput"].get("requests_ok") or res["throughput"].get("requests") or 0
    if pids and done:
        res["throughput"]["cpu_ms_per_request"] = round(1000 * cpu["target_cpu_s"] / done, 3)
        if cpu["target_cpu_s"] > 0:
            res["throughput"]["cpu_capacity_rps"] = round(done / cpu["target_cpu_s"], 1)
    log(f"[{t.name}]   {res['throughput'].get('rps')} req/s, errors {res['throughput'].get('errors')}")
    time.sleep(args.settle_s)

    # light load first; the fixed rate last, since an overloaded gateway keeps working off
    # its backlog after the client has given up (wait_idle guards the next phase anyway)
    if args.light_rate > 0 and args.light_s > 0:
        res["light"] = latency_phase(t, plain, args.light_rate, args.light_s, args)

    log(f"[{t.name}] stream: {args.stream_rate:.0f} streams/s for {args.stream_s:.0f}s")
    res["stream"] = open_loop(t, streamed, args.stream_rate, args.stream_s, True, args)
    s = res["stream"]
    log(f"[{t.name}]   ttft p50 {s['ttft_ms'].get('p50')} ms, gap p50 {s['chunk_gap_ms'].get('p50')} ms")

    if t.cache_probe and args.cache_s > 0:
        fixed = load.Target(t.chat_url, t.headers(), t.body(False, unique=False))
        asyncio.run(load.open_loop(fixed, 5, 1, 0, False))  # store it (and wait for the store)
        rate = args.light_rate or args.rate
        log(f"[{t.name}] cache hits: {rate:.0f} req/s of one request for {args.cache_s:.0f}s")
        res["cache"] = open_loop(t, fixed, rate, args.cache_s, False, args)
        log(f"[{t.name}]   p50 {res['cache']['latency_ms'].get('p50')} ms, {res['cache']['headers_seen']}")

    res["latency"] = latency_phase(t, plain, args.rate, args.latency_s, args)
    return res


def profile(t: tg.Target, args: argparse.Namespace, out_dir: Path) -> dict[str, str]:
    """Sample the gateway with py-spy at the fixed rate (not part of the numbers)."""
    spy = shutil.which("py-spy") or str(BENCH / ".venv-tools" / "bin" / "py-spy")
    if not t.proc or not Path(spy).exists():
        log(f"[{t.name}] no py-spy (bench/setup_tools.sh installs it into bench/.venv-tools); profile skipped")
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = load.Target(t.chat_url, t.headers(), t.body(False))
    raw = out_dir / f"{t.name}-profile.txt"
    seconds = max(5, round(args.profile_s))
    cmd = [spy, "record", "-p", str(t.proc.popen.pid), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(raw)]
    log(f"[{t.name}] profiling {seconds}s at {args.profile_rate:.0f} req/s -> {raw.name}")
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    asyncio.run(load.open_loop(plain, args.profile_rate, seconds + 1, 0.5, False))
    try:
        spy_proc.wait(60)
    except subprocess.TimeoutExpired:
        spy_proc.kill()
        spy_proc.wait(5)
    if not raw.exists():
        return {}
    top = out_dir / f"{t.name}-profile-top.txt"
    top.write_text(summarize_profile(raw))
    return {"raw": str(raw), "top": str(top)}


# Leaf frames that are waiting, not working: aiosqlite's worker blocked on its queue, and
# the event loop's own C code (uvloop: mostly epoll wait; its socket I/O lands here too).
IDLE_LEAVES = ("_connection_worker_thread (aiosqlite/core.py:59)", "Runner.run (asyncio/runners.py")


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


# ---------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=",".join(tg.NAMES), help=f"comma list of {', '.join(tg.NAMES)}")
    ap.add_argument("--rounds", type=int, default=1, help="repeat all targets; the tables show medians")
    ap.add_argument("--quick", action="store_true", help="short phases, for a smoke test")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--throughput-s", type=float, default=15)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--latency-s", type=float, default=20)
    ap.add_argument("--light-rate", type=float, default=50, help="a second, light open-loop rate (0: skip)")
    ap.add_argument("--light-s", type=float, default=15)
    ap.add_argument("--stream-rate", type=float, default=20)
    ap.add_argument("--stream-s", type=float, default=15)
    ap.add_argument("--cache-s", type=float, default=15, help="cache-hit phase of the control targets")
    ap.add_argument("--warmup-s", type=float, default=2)
    ap.add_argument("--wait-quiet-s", type=float, default=0, help="max wait for other load to stop before a phase")
    ap.add_argument("--settle-s", type=float, default=1, help="pause between phases")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per upstream stream")
    ap.add_argument("--chunk-delay-ms", type=float, default=10, help="upstream delay between chunks")
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--gateway-cpus", default="1", help="taskset list for the gateway under test")
    ap.add_argument("--client-cpus", default="0", help="taskset list for upstream + load generator")
    ap.add_argument("--aiport-ref", default="", help="benchmark this git ref's src/ instead of the work tree")
    ap.add_argument("--aiport-src", default="", help="benchmark a patched copy of src/ (a directory) instead")
    ap.add_argument("--profile", action="store_true", help="py-spy each aiport target after measuring it")
    ap.add_argument("--profile-only", action="store_true", help="only profile the targets, no measurements")
    ap.add_argument("--profile-rate", type=float, default=50)
    ap.add_argument("--profile-s", type=float, default=10)
    ap.add_argument("--keep-logs", action="store_true", help="keep the temporary work dir with logs")
    ap.add_argument("--out", default="", help="path stem (default bench/results/gateway-<time>)")
    ap.add_argument("--from-json", default="", help="only re-render the markdown of an earlier run's JSON")
    a = ap.parse_args(argv)
    if a.quick:
        a.throughput_s, a.latency_s, a.light_s, a.stream_s, a.cache_s, a.warmup_s = 5, 8, 5, 6, 5, 1
    if a.engine == "auto":
        a.engine = "wrk" if shutil.which("wrk") else "python"
    for name in ("throughput_s", "latency_s", "light_s", "stream_s", "cache_s", "profile_s"):
        setattr(a, name, min(getattr(a, name), 300.0))
    a.rounds = max(1, min(a.rounds, 10))
    return a


def rerender(path: Path) -> int:
    """Markdown again from a run's JSON (same settings, same command line)."""
    doc = json.loads(path.read_text())
    for runs in doc["results"].values():  # older runs: derive what newer ones store
        for r in runs:
            t = r.get("throughput") or {}
            if t.get("cpu_ms_per_request") and "cpu_capacity_rps" not in t:
                t["cpu_capacity_rps"] = round(1000 / t["cpu_ms_per_request"], 1)
            for phase in ("latency", "light", "stream", "cache"):
                p = r.get(phase) or {}
                if "errors" in p and "errors_total" not in p:
                    p["errors_total"] = sum(p["errors"].values())
    args = argparse.Namespace(**doc["settings"])
    md = report(doc, args, doc.get("argv", []))
    path.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    exit_on_sigterm()
    if args.from_json:
        return rerender(Path(args.from_json))
    load.install_uvloop()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    stem = Path(args.out) if args.out else RESULTS / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    profiles = stem.parent / f"{stem.name}-profiles"
    work = Path(tempfile.mkdtemp(prefix="aiport-bench-"))
    logdir = work / "logs"
    logdir.mkdir()
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    meta: dict[str, Any] = {}
    background = busy_others(2.0)
    if any(n.endswith("-control") for n in names):
        log(f"bench Redis {tg.REDIS_URL}: flush {tg.flush_bench_redis()}")
    upstream, base = tg.start_upstream(args, logdir)
    log(f"fake upstream at {base} (cpus {args.client_cpus}); gateways on cpus {args.gateway_cpus}")
    try:
        for rnd in range(args.rounds):
            for name in names:
                log(f"== round {rnd + 1}/{args.rounds}: {name}")
                t: tg.Target | None = None
                try:
                    t = tg.start_target(name, args, base, work, logdir, upstream)
                    meta[name] = t.meta
                    if args.profile_only:
                        meta[name]["profile"] = profile(t, args, profiles)
                        continue
                    res = measure(t, args)
                    if args.profile and t.proc is not None and rnd == 0 and name.startswith("aiport"):
                        meta[name]["profile"] = profile(t, args, profiles)
                    if t.proc is not None and t.owned:
                        t.proc.stop()
                    if "cache" in res:
                        res["cache"]["server_ms"] = tg.audit_cache_hits(t)
                    results[name].append(res)
                except (RuntimeError, FileNotFoundError, subprocess.SubprocessError, OSError, KeyError) as e:
                    log(f"[{name}] failed: {e}")
                    if t is not None and t.proc is not None:
                        log(t.proc.tail())
                    results[name].append({"error": f"{type(e).__name__}: {e}"})
                finally:
                    if t is not None and t.proc is not None and t.owned:
                        t.proc.stop()
    finally:
        upstream.stop()
    doc = {
        "when": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "background_at_start_pct": background,
        "aiport_commit": tg.git_commit(args.aiport_ref or "HEAD"),
        "settings": vars(args),
        "argv": argv,
        "targets": meta,
        "results": results,
    }
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    md = report(doc, args, argv)
    stem.with_suffix(".md").write_text(md + "\n")
    print(md)
    shown = stem.relative_to(ROOT) if stem.is_relative_to(ROOT) else stem
    print(f"\nwritten: {shown}.md and {shown}.json")
    if args.keep_logs:
        print(f"logs: {logdir}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
