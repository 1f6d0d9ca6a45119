"""Processes and machine state for the benchmarks: start/stop what we run, pinned, and
measure CPU (ours, the target's, everybody else's) so a noisy machine is visible in the results."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


def log(msg: str) -> None:
    """Progress on stderr, with the time."""
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


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


def _waited_children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@contextlib.contextmanager
def watch(pids: list[int]) -> Iterator[dict[str, float]]:
    """Over a block: the target's CPU, and the machine's busy/steal share and how much of
    it was *not* ours (other processes on a shared machine make numbers noisy)."""
    info: dict[str, float] = {}
    ours = descendants(os.getpid())
    c0, o0, (b0, s0), t0 = cpu_seconds(pids), cpu_seconds(ours), machine_cpu(), time.monotonic()
    w0 = _waited_children_cpu()
    yield info
    ours = sorted(set(ours) | set(descendants(os.getpid())))
    c1, o1, (b1, s1), t1 = cpu_seconds(pids), cpu_seconds(ours), machine_cpu(), time.monotonic()
    o1 += _waited_children_cpu() - w0  # children that ended inside the block (wrk) are ours too
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


def pkg_version(venv: Path, name: str) -> str:
    """Installed version of ``name`` in ``venv`` ("?" when unknown)."""
    py = venv / "bin" / "python"
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    return "?"


def git_commit(ref: str = "HEAD") -> str:
    """Short commit id of ``ref`` in this repository."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    return "?"


def uncommitted(path: str = "src") -> list[str]:
    """Files under ``path`` that differ from HEAD: a working-tree benchmark must say so."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", path], capture_output=True, text=True, timeout=10
        )
        return [line[3:] for line in out.stdout.splitlines() if line.strip()]
    return []


def cpu_model() -> str:
    """The CPU model name as lscpu reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> dict[str, object]:
    """What the numbers were measured on, and how busy it was when we started."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "taskset": bool(shutil.which("taskset")),
    }


def busy_others(seconds: float = 1.0) -> float:
    """Share of all cores (%) used by processes other than ours over ``seconds``."""
    ours = descendants(os.getpid())
    o0, (b0, _), t0 = cpu_seconds(ours), machine_cpu(), time.monotonic()
    time.sleep(seconds)
    o1, (b1, _), t1 = cpu_seconds(ours), machine_cpu(), time.monotonic()
    tick, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    return round(max(0.0, 100 * ((b1 - b0) / tick - (o1 - o0)) / (t1 - t0) / ncpu), 1)


def wait_idle(pids: list[int], limit_s: float = 90.0, threshold_pct: float = 5.0) -> float:
    """Wait until the target stops working off a backlog (an overloaded open-loop phase
    leaves queued requests the client gave up on); returns the seconds waited."""
    t0 = time.monotonic()
    if not pids:
        return 0.0
    while time.monotonic() - t0 < limit_s:
        c0 = cpu_seconds(pids)
        time.sleep(0.5)
        if 100 * (cpu_seconds(pids) - c0) / 0.5 < threshold_pct:
            break
    return round(time.monotonic() - t0, 1)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the processes we started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
