"""Gateway overhead benchmark: direct upstream vs aiport vs LiteLLM, in one run.

Starts the fake upstream, then for each target in turn (one gateway process at a time,
pinned to its own core) measures closed-loop throughput, open-loop latency at a fixed
rate and streaming time to first token; prints a markdown table and writes JSON to
bench/results/. Everything it starts it stops, and every phase is bounded in time.

    .venv/bin/python bench/run_gateway.py            # full run, ~6 minutes
    .venv/bin/python bench/run_gateway.py --quick    # smoke run, ~1.5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import load

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
MODEL = "bench-model"
LITELLM_KEY = "sk-bench-litellm"


# ---------------------------------------------------------------- processes


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A child process we started, with its log file; stopped by pid only."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""


def start(name: str, cmd: list[str], cpus: str, env: dict[str, str], cwd: Path, logdir: Path) -> Proc:
    """Start ``cmd`` pinned to ``cpus`` with its output in a log file."""
    log = logdir / f"{name}.log"
    full = ["taskset", "-c", cpus, *cmd] if shutil.which("taskset") and cpus else cmd
    with log.open("wb") as out:
        popen = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    return Proc(name, popen, log)


def wait_ready(proc: Proc, url: str, headers: dict[str, str], body: bytes | None, limit_s: float) -> None:
    """Poll until ``url`` answers 200 (a real chat call when body is given)."""
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception as e:  # still starting: refused, 503, ...
            last = repr(e)
        time.sleep(0.5)
    raise RuntimeError(f"{proc.name} not ready after {limit_s:.0f}s ({last}):\n{proc.tail()}")


def descendants(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{d}/stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (all their threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) jiffies for the whole machine, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in parts]
    idle = v[3] + v[4]
    steal = v[7] if len(v) > 7 else 0
    return float(sum(v[:8]) - idle - steal), float(steal)


@contextlib.contextmanager
def watch(pids: list[int]) -> Iterator[dict[str, float]]:
    """Over a block: the target's CPU, and the machine's busy/steal share and how much of
    it was *not* ours (other processes on a shared machine make numbers noisy)."""
    info: dict[str, float] = {}
    ours = descendants(os.getpid())
    c0, o0, (b0, s0), t0 = cpu_seconds(pids), cpu_seconds(ours), machine_cpu(), time.monotonic()
    yield info
    ours = sorted(set(ours) | set(descendants(os.getpid())))
    c1, o1, (b1, s1), t1 = cpu_seconds(pids), cpu_seconds(ours), machine_cpu(), time.monotonic()
    tick, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    wall = max(t1 - t0, 1e-9)
    busy = (b1 - b0) / tick
    info["target_cpu_s"] = round(c1 - c0, 3)
    info["target_cpu_pct"] = round(100 * (c1 - c0) / wall, 1)
    info["machine_busy_pct"] = round(100 * busy / wall / ncpu, 1)
    info["machine_steal_pct"] = round(100 * (s1 - s0) / tick / wall / ncpu, 1)
    info["background_pct"] = round(max(0.0, 100 * (busy - (o1 - o0)) / wall / ncpu), 1)


def wait_quiet(limit_s: float, threshold_pct: float = 10.0) -> float:
    """Wait (at most ``limit_s``) until the rest of the machine is idle; returns its busy %."""
    deadline = time.monotonic() + limit_s
    busy = 100.0
    while True:
        ours = descendants(os.getpid())
        o0, (b0, _), t0 = cpu_seconds(ours), machine_cpu(), time.monotonic()
        time.sleep(1.0)
        o1, (b1, _), t1 = cpu_seconds(ours), machine_cpu(), time.monotonic()
        tick, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
        busy = max(0.0, 100 * ((b1 - b0) / tick - (o1 - o0)) / (t1 - t0) / ncpu)
        if busy < threshold_pct or time.monotonic() >= deadline:
            return round(busy, 1)
        log(f"machine busy with other work ({busy:.0f}% of all cores); waiting")
        time.sleep(4)


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    """One thing to measure: a base URL, its key, and how to start/stop it."""

    name: str
    base_url: str
    api_key: str = ""
    proc: Proc | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {self.api_key}"),) if self.api_key else ()

    def pids(self) -> list[int]:
        return descendants(self.proc.popen.pid) if self.proc else []


def start_upstream(args: argparse.Namespace, logdir: Path) -> tuple[Proc, str]:
    port = free_port()
    cmd = [
        sys.executable,
        str(BENCH / "fake_upstream.py"),
        "--port",
        str(port),
        "--chunks",
        str(args.chunks),
        "--chunk-delay-ms",
        str(args.chunk_delay_ms),
        "--duration",
        "3600",
    ]
    proc = start("upstream", cmd, args.client_cpus, dict(os.environ), ROOT, logdir)
    base = f"http://127.0.0.1:{port}/v1"
    wait_ready(proc, f"http://127.0.0.1:{port}/health", {}, None, 20)
    return proc, base


def aiport_catalog(upstream: str) -> str:
    """A catalog with one model on the fake upstream (priced, so metering does real work)."""
    return (
        "providers:\n"
        "  fake:\n"
        "    kind: openai_compat\n"
        f"    base_url: {upstream}\n"
        "    api_key: x\n"
        "models:\n"
        f"  - name: {MODEL}\n"
        "    provider: fake\n"
        "    price: {input_per_million: 0.15, output_per_million: 0.60}\n"
    )


def export_ref(ref: str, work: Path) -> Path:
    """``git archive`` of ``ref``'s src/ into ``work``: benchmark a commit, not a tree mid-edit."""
    dest = work / f"src-{ref.replace('/', '_')}"
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"], check=True, capture_output=True, timeout=60
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=60)
    return dest / "src"


def aiport_env(args: argparse.Namespace, work: Path) -> dict[str, str]:
    """Environment for aiport commands; with --aiport-ref, PYTHONPATH points at that commit's src/."""
    env = dict(os.environ)
    if args.aiport_ref:
        src = export_ref(args.aiport_ref, work)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
    return env


def start_aiport(args: argparse.Namespace, upstream: str, work: Path, logdir: Path) -> Target:
    """Seed the demo org (fresh key), then ``aiport serve`` on the gateway core."""
    exe = ROOT / ".venv" / "bin" / "aiport"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} missing: install aiport into .venv (pip install -e .)")
    d = Path(tempfile.mkdtemp(prefix="aiport-", dir=work))
    (d / "models.yaml").write_text(aiport_catalog(upstream))
    env = {
        **aiport_env(args, work),
        "AIPORT_DATA_DIR": str(d / "data"),
        "AIPORT_CONFIG": str(d / "models.yaml"),
        "AIPORT_LOG_LEVEL": "warning",
    }
    key_file = d / "key"
    subprocess.run(
        [str(exe), "seed-demo", "--key-file", str(key_file)],
        env=env,
        cwd=d,
        check=True,
        timeout=120,
        capture_output=True,
    )
    key = key_file.read_text().strip()
    port = free_port()
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = start("aiport", cmd, args.gateway_cpus, env, d, logdir)
    t = Target("aiport", f"http://127.0.0.1:{port}/v1", key, proc, {"version": pkg_version(ROOT / ".venv", "aiport")})
    t.meta["commit"] = git_commit(args.aiport_ref or "HEAD")
    t.meta["tree"] = f"git archive {args.aiport_ref}" if args.aiport_ref else "working tree"
    wait_ready(
        proc,
        t.chat_url,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        load.chat_body(MODEL, False),
        120,
    )
    return t


def litellm_config(upstream: str) -> str:
    """LiteLLM proxy config: the same model on the same upstream, no database, quiet logs."""
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}\n"
        "      api_key: x\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )


def start_litellm(args: argparse.Namespace, upstream: str, work: Path, logdir: Path) -> Target:
    """``litellm --num_workers 1`` from bench/.venv-litellm on the gateway core."""
    exe = BENCH / ".venv-litellm" / "bin" / "litellm"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} missing: run bench/setup_litellm.sh")
    d = Path(tempfile.mkdtemp(prefix="litellm-", dir=work))
    (d / "config.yaml").write_text(litellm_config(upstream))
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # offline: use the bundled price map
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",  # do not read a .env file
        "NO_DOCS": "True",
    }
    port = free_port()
    cmd = [
        str(exe),
        "--config",
        str(d / "config.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    proc = start("litellm", cmd, args.gateway_cpus, env, d, logdir)
    t = Target(
        "litellm",
        f"http://127.0.0.1:{port}/v1",
        LITELLM_KEY,
        proc,
        {"version": pkg_version(BENCH / ".venv-litellm", "litellm")},
    )
    wait_ready(
        proc,
        t.chat_url,
        {"Authorization": f"Bearer {LITELLM_KEY}", "Content-Type": "application/json"},
        load.chat_body(MODEL, False),
        180,
    )
    return t


def pkg_version(venv: Path, name: str) -> str:
    py = venv / "bin" / "python"
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    return "?"


def git_commit(ref: str = "HEAD") -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    return "?"


# ---------------------------------------------------------------- measurements


def measure(t: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput, fixed-rate latency and streaming for one target."""
    res: dict[str, Any] = {}
    plain = load.Target(t.chat_url, t.headers(), load.chat_body(MODEL, False))
    streamed = load.Target(t.chat_url, t.headers(), load.chat_body(MODEL, True))
    pids = t.pids()

    wait_quiet(args.wait_quiet_s)
    log(f"[{t.name}] throughput: {args.connections} connections, {args.throughput_s:.0f}s ({args.engine})")
    closed_loop(plain, args, args.warmup_s)  # warm up outside the measured CPU window
    with watch(pids) as cpu:
        res["throughput"] = closed_loop(plain, args, args.throughput_s)
    res["throughput"]["cpu"] = cpu
    done = res["throughput"].get("requests_ok") or res["throughput"].get("requests") or 0
    if pids and done:
        res["throughput"]["cpu_ms_per_request"] = round(1000 * cpu["target_cpu_s"] / done, 3)
    log(f"[{t.name}]   {res['throughput'].get('rps')} req/s, errors {res['throughput'].get('errors')}")
    time.sleep(args.settle_s)

    wait_quiet(args.wait_quiet_s)
    log(f"[{t.name}] latency: {args.rate:.0f} req/s for {args.latency_s:.0f}s")
    with watch(pids) as cpu:
        res["latency"] = asyncio.run(load.open_loop(plain, args.rate, args.latency_s, args.warmup_s, False))
    res["latency"]["cpu"] = cpu
    log(
        f"[{t.name}]   p50 {res['latency']['latency_ms'].get('p50')} ms, "
        f"p99 {res['latency']['latency_ms'].get('p99')} ms, errors {res['latency']['errors']}"
    )
    time.sleep(args.settle_s)

    wait_quiet(args.wait_quiet_s)
    log(f"[{t.name}] stream: {args.stream_rate:.0f} streams/s for {args.stream_s:.0f}s")
    with watch(pids) as cpu:
        res["stream"] = asyncio.run(load.open_loop(streamed, args.stream_rate, args.stream_s, args.warmup_s, True))
    res["stream"]["cpu"] = cpu
    log(
        f"[{t.name}]   ttft p50 {res['stream']['ttft_ms'].get('p50')} ms, "
        f"gap p50 {res['stream']['chunk_gap_ms'].get('p50')} ms, errors {res['stream']['errors']}"
    )
    time.sleep(args.settle_s)
    return res


def closed_loop(target: load.Target, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """One closed-loop run with the chosen engine, no separate warm-up."""
    if args.engine == "wrk":
        res = load.throughput_wrk(target, args.connections, seconds, 0)
        res.pop("raw", None)
        return res
    return asyncio.run(load.throughput_python(target, args.connections, seconds, 0))


def profile(t: Target, args: argparse.Namespace, out_dir: Path) -> dict[str, str]:
    """Sample the gateway with py-spy under closed-loop load (not part of the numbers)."""
    spy = shutil.which("py-spy") or str(BENCH / ".venv-tools" / "bin" / "py-spy")
    if not t.proc or not Path(spy).exists():
        log(f"[{t.name}] no py-spy (pip install py-spy into bench/.venv-tools); profile skipped")
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = load.Target(t.chat_url, t.headers(), load.chat_body(MODEL, False))
    files = {}
    seconds = max(5, round(args.throughput_s))
    for fmt, ext in (("raw", "txt"), ("flamegraph", "svg")):
        path = out_dir / f"{t.name}-profile.{ext}"
        cmd = [
            spy,
            "record",
            "-p",
            str(t.proc.popen.pid),
            "-d",
            str(seconds),
            "-r",
            "250",
            "-f",
            fmt,
            "-o",
            str(path),
            "--nonblocking",
            "--subprocesses",
        ]
        log(f"[{t.name}] profiling {seconds}s under load -> {path.name}")
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        closed_loop(plain, args, seconds + 1)
        try:
            spy_proc.wait(30)
        except subprocess.TimeoutExpired:
            spy_proc.kill()
        files[fmt] = str(path)
    return files


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


ROWS: list[tuple[str, tuple[str, ...], Callable[[float], str]]] = [
    ("throughput, req/s", ("throughput", "rps"), lambda v: f"{v:,.0f}"),
    ("gateway CPU per request, ms", ("throughput", "cpu_ms_per_request"), lambda v: f"{v:.2f}"),
    ("latency p50 @ rate, ms", ("latency", "latency_ms", "p50"), lambda v: f"{v:.2f}"),
    ("latency p90 @ rate, ms", ("latency", "latency_ms", "p90"), lambda v: f"{v:.2f}"),
    ("latency p99 @ rate, ms", ("latency", "latency_ms", "p99"), lambda v: f"{v:.2f}"),
    ("stream TTFT p50, ms", ("stream", "ttft_ms", "p50"), lambda v: f"{v:.2f}"),
    ("stream TTFT p99, ms", ("stream", "ttft_ms", "p99"), lambda v: f"{v:.2f}"),
    ("stream chunk gap p50, ms", ("stream", "chunk_gap_ms", "p50"), lambda v: f"{v:.2f}"),
    ("stream chunks coalesced, %", ("stream", "coalesced_pct"), lambda v: f"{v:.1f}"),
]
ADDED = {
    "latency p50 @ rate, ms",
    "latency p90 @ rate, ms",
    "latency p99 @ rate, ms",
    "stream TTFT p50, ms",
    "stream TTFT p99, ms",
}


def table(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """Markdown table: one column per target, plus 'added' (target − direct) columns."""
    names = list(results)
    gateways = [n for n in names if n != "direct"]
    head = ["metric", *names, *[f"{g} added" for g in gateways if "direct" in results]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, path, fmt in ROWS:
        label = label.replace("@ rate", f"@ {args.rate:.0f}/s")
        vals = {n: median_of(results[n], path) for n in names}
        cells = [fmt(vals[n]) if vals[n] is not None else "–" for n in names]
        for g in gateways:
            if "direct" not in results:
                continue
            base, v = vals.get("direct"), vals[g]
            key = label.replace(f"@ {args.rate:.0f}/s", "@ rate")
            cells.append(f"+{v - base:.2f}" if key in ADDED and v is not None and base is not None else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="direct,aiport,litellm", help="comma list of direct,aiport,litellm")
    ap.add_argument("--rounds", type=int, default=1, help="repeat all targets; the table shows medians")
    ap.add_argument("--quick", action="store_true", help="short phases, for a smoke test")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--throughput-s", type=float, default=15)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--latency-s", type=float, default=30)
    ap.add_argument("--stream-rate", type=float, default=20)
    ap.add_argument("--stream-s", type=float, default=30)
    ap.add_argument("--warmup-s", type=float, default=3)
    ap.add_argument("--wait-quiet-s", type=float, default=120, help="max wait for other load to stop")
    ap.add_argument("--settle-s", type=float, default=2, help="pause between phases")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per upstream stream")
    ap.add_argument("--chunk-delay-ms", type=float, default=10, help="upstream delay between chunks")
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--gateway-cpus", default="1", help="taskset list for the gateway under test")
    ap.add_argument("--client-cpus", default="0", help="taskset list for upstream + load generator")
    ap.add_argument("--aiport-ref", default="", help="benchmark this git ref's src/ instead of the work tree")
    ap.add_argument("--profile", action="store_true", help="py-spy each gateway after measuring it")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temporary work dir with logs")
    ap.add_argument("--out", default="", help="JSON path (default bench/results/gateway-<time>.json)")
    a = ap.parse_args(argv)
    if a.quick:
        a.throughput_s, a.latency_s, a.stream_s, a.warmup_s, a.settle_s = 5, 8, 8, 1, 1
    if a.engine == "auto":
        a.engine = "wrk" if shutil.which("wrk") else "python"
    for name in ("throughput_s", "latency_s", "stream_s"):
        setattr(a, name, min(getattr(a, name), 300.0))
    a.rounds = max(1, min(a.rounds, 10))
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load.install_uvloop()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    work = Path(tempfile.mkdtemp(prefix="aiport-bench-"))
    logdir = work / "logs"
    logdir.mkdir()
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    meta: dict[str, Any] = {}
    upstream, base = start_upstream(args, logdir)
    log(f"fake upstream at {base} (cpus {args.client_cpus}); gateways on cpus {args.gateway_cpus}")
    starters = {"aiport": start_aiport, "litellm": start_litellm}
    try:
        for rnd in range(args.rounds):
            for name in names:
                log(f"== round {rnd + 1}/{args.rounds}: {name}")
                t: Target | None = None
                try:
                    t = Target("direct", base) if name == "direct" else starters[name](args, base, work, logdir)
                    meta[name] = t.meta
                    results[name].append(measure(t, args))
                    if args.profile and t.proc is not None and rnd == 0:
                        meta[name]["profile"] = profile(t, args, RESULTS / "profiles")
                except (RuntimeError, FileNotFoundError, subprocess.SubprocessError, OSError) as e:
                    log(f"[{name}] skipped: {e}")
                    results[name].append({"error": str(e)})
                finally:
                    if t is not None and t.proc is not None:
                        t.proc.stop()
    finally:
        upstream.stop()
    out = Path(args.out) if args.out else RESULTS / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpu_model": cpu_model(),
        },
        "settings": {k: v for k, v in vars(args).items()},
        "targets": meta,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2))
    print(table(results, args))
    print(f"\nJSON: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.keep_logs:
        print(f"logs: {logdir}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
