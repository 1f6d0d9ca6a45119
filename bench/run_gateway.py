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
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
import targets as tg
import wrk_engine
from procs import BENCH, RESULTS, ROOT, busy_others, exit_on_sigterm, log, machine, wait_idle, wait_quiet, watch
from report import report, summarize_profile

# ---------------------------------------------------------------- measurements


def closed_loop(target: load.Target, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """One closed-loop run with the chosen engine, no separate warm-up."""
    if args.engine == "wrk":
        res = wrk_engine.throughput_wrk(target, args.connections, seconds, 0)
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
        # the commit the aiport processes started from (HEAD may move during a long run)
        "aiport_commit": next(
            (m["commit"] for m in meta.values() if m.get("commit")), tg.git_commit(args.aiport_ref or "HEAD")
        ),
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
