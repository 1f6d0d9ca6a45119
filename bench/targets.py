"""What the gateway benchmark measures: the fake upstream called directly, aiport and
LiteLLM's proxy in front of it, each plain or with its control stages on.

``aiport-control`` runs with quotas (org + user, tokens and cost), rate limits (key, user,
model; requests and tokens per minute), the response cache (every answer stored; requests
made unique so each is a lookup + a store) and the audit log, counters in Redis.
``litellm-control`` gets what LiteLLM offers without its database: a Redis response cache,
per-deployment rpm/tpm enforced by pre-call checks with Redis usage counters, and a global
budget. LiteLLM's per-key/user budgets and limits need its Postgres + Prisma setup, whose
engine binaries download at first start (offline here), so they are not part of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import load
from procs import BENCH, ROOT, Proc, descendants, free_port, git_commit, pkg_version, start, uncommitted, wait_ready

MODEL = "bench-model"
LITELLM_KEY = "sk-bench-litellm"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHE_TTL_S = 600
HUGE_RPM = 10_000_000  # the largest rpm aiport accepts: limits that are checked, never hit
HUGE_TPM = 10_000_000_000
NAMES = ("direct", "aiport", "aiport-control", "litellm", "litellm-control")


@dataclass
class Target:
    """One thing to measure: a base URL, its key, and the process behind it."""

    name: str
    base_url: str
    api_key: str = ""
    proc: Proc | None = None
    unique_bodies: bool = False  # make every request a cache miss (control variants)
    cache_probe: bool = False  # measure cache hits too
    data_dir: Path | None = None
    owned: bool = True  # stop the process when done (not the shared upstream)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {self.api_key}"),) if self.api_key else ()

    def pids(self) -> list[int]:
        return descendants(self.proc.popen.pid) if self.proc else []

    def body(self, stream: bool, unique: bool | None = None) -> bytes:
        return load.chat_body(MODEL, stream, unique=self.unique_bodies if unique is None else unique)


def flush_bench_redis() -> str:
    """Empty the benchmark's own Redis database (15 unless BENCH_REDIS_URL says otherwise)."""
    try:
        import redis
    except ImportError:
        return "redis client missing"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except Exception as exc:  # reported; the control targets will then fail to start
        return f"unreachable: {exc}"
    return "ok"


# ---------------------------------------------------------------- the fake upstream


def start_upstream(args: Any, logdir: Path) -> tuple[Proc, str]:
    """bench/fake_upstream.py on the client cores."""
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
    wait_ready(proc, f"http://127.0.0.1:{port}/health", {}, None, 20)
    return proc, f"http://127.0.0.1:{port}/v1"


# ---------------------------------------------------------------- aiport


def aiport_catalog(upstream: str, cache: bool) -> str:
    """One priced model on the fake upstream (metering does real work); cached when asked."""
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
        + (f"    cache_ttl_seconds: {CACHE_TTL_S}\n" if cache else "")
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


def _admin(base: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def configure_controls(root: str, key: str) -> dict[str, Any]:
    """Quotas and rate limits through the admin API, generous enough never to refuse."""
    keys = _admin(root, key, "GET", "/api/admin/keys")["data"]
    mine = [k for k in keys if k.get("prefix") and key.startswith(str(k["prefix"]))]
    if len(mine) != 1:
        raise RuntimeError(f"cannot tell which key is ours among {len(keys)} (prefix match: {len(mine)})")
    key_id, user_id = mine[0]["id"], mine[0]["user_id"]
    quotas = [
        {"scope": "org", "metric": "tokens", "period": "day", "limit": 1e12},
        {"scope": "org", "metric": "cost", "period": "month", "limit": 1e9},
        {
            "scope": "user",
            "subject_id": user_id,
            "metric": "tokens",
            "period": "rolling",
            "rolling_seconds": 3600,
            "limit": 1e12,
        },
    ]
    limits = [
        {"scope": "key", "subject": key_id, "rpm": HUGE_RPM, "tpm": HUGE_TPM},
        {"scope": "user", "subject": user_id, "rpm": HUGE_RPM},
        {"scope": "model", "subject": MODEL, "rpm": HUGE_RPM, "tpm": HUGE_TPM},
    ]
    for q in quotas:
        _admin(root, key, "PUT", "/api/admin/quotas", q)
    for rl in limits:
        _admin(root, key, "PUT", "/api/admin/rate-limits", rl)
    return {"quotas": quotas, "rate_limits": limits, "redis": REDIS_URL, "cache_ttl_s": CACHE_TTL_S}


def start_aiport(args: Any, upstream: str, work: Path, logdir: Path, control: bool) -> Target:
    """Seed the demo org (fresh admin key), then ``aiport serve`` on the gateway core."""
    exe = ROOT / ".venv" / "bin" / "aiport"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} missing: install aiport into .venv (pip install -e .)")
    name = "aiport-control" if control else "aiport"
    d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    (d / "models.yaml").write_text(aiport_catalog(upstream, cache=control))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPORT_")}
    env.update({"AIPORT_DATA_DIR": str(d / "data"), "AIPORT_CONFIG": str(d / "models.yaml")})
    env["AIPORT_LOG_LEVEL"] = "warning"
    if control:
        env["AIPORT_REDIS_URL"] = REDIS_URL
    if args.aiport_ref:
        src = export_ref(args.aiport_ref, work)
        env["PYTHONPATH"] = str(src)
    elif getattr(args, "aiport_src", ""):  # an experiment: a patched copy of src/
        env["PYTHONPATH"] = str(Path(args.aiport_src).resolve())
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
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-warm"]
    proc = start(name, cmd, args.gateway_cpus, env, d, logdir)
    t = Target(name, f"http://127.0.0.1:{port}/v1", key, proc, unique_bodies=control, cache_probe=control)
    t.data_dir = d / "data"
    t.meta = {
        "version": pkg_version(ROOT / ".venv", "aiport"),
        "commit": git_commit(args.aiport_ref or "HEAD"),
        "uncommitted": [] if (args.aiport_ref or getattr(args, "aiport_src", "")) else uncommitted("src"),
        "tree": f"git archive {args.aiport_ref}"
        if args.aiport_ref
        else (f"patched copy {args.aiport_src}" if getattr(args, "aiport_src", "") else "working tree"),
        "workers": 1,
    }
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    wait_ready(proc, t.chat_url, headers, t.body(False, unique=False), 120)
    if control:
        t.meta["controls"] = configure_controls(f"http://127.0.0.1:{port}", key)
    return t


def audit_cache_hits(t: Target) -> dict[str, Any]:
    """Server time of cache hits from the audit log (read after the process flushed it)."""
    if t.data_dir is None or not (t.data_dir / "aiport.db").exists():
        return {}
    with contextlib.closing(sqlite3.connect(t.data_dir / "aiport.db")) as db:
        rows = db.execute("select latency_ms from audit_logs where cache_hit = 1 and status = 'ok'").fetchall()
        total = db.execute("select count(*) from audit_logs").fetchone()[0]
    ms = sorted(float(r[0]) for r in rows if r[0] is not None)
    if not ms:
        return {"audit_rows": total}
    return {
        "audit_rows": total,
        "hits": len(ms),
        "p50": round(load.pct(ms, 50), 3),
        "p90": round(load.pct(ms, 90), 3),
        "p99": round(load.pct(ms, 99), 3),
    }


# ---------------------------------------------------------------- LiteLLM


def litellm_config(upstream: str, control: bool) -> str:
    """The same model on the same upstream, no database, quiet logs; controls when asked."""
    params = f"      model: openai/{MODEL}\n      api_base: {upstream}\n      api_key: x\n"
    extra = ""
    if control:
        params += f"      rpm: {HUGE_RPM}\n      tpm: {HUGE_TPM}\n"
        extra = (
            "  cache: true\n"
            "  cache_params:\n"
            "    type: redis\n"
            f"    url: {REDIS_URL}\n"
            f"    ttl: {CACHE_TTL_S}\n"
            "    namespace: litellm-bench\n"
            "  max_budget: 1000000\n"
            "  budget_duration: 30d\n"
            "router_settings:\n"
            "  enable_pre_call_checks: true\n"
            "  routing_strategy: usage-based-routing-v2\n"
            f"  redis_url: {REDIS_URL}\n"
        )
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"{params}"
        "    model_info:\n"
        "      input_cost_per_token: 0.00000015\n"
        "      output_cost_per_token: 0.0000006\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  telemetry: false\n"
        f"{extra}"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )


def start_litellm(args: Any, upstream: str, work: Path, logdir: Path, control: bool) -> Target:
    """``litellm --num_workers 1`` from bench/.venv-litellm on the gateway core."""
    exe = BENCH / ".venv-litellm" / "bin" / "litellm"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} missing: run bench/setup_litellm.sh")
    name = "litellm-control" if control else "litellm"
    d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    (d / "config.yaml").write_text(litellm_config(upstream, control))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIPORT_", "REDIS_", "DATABASE_URL"))}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # offline: the bundled price map
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",  # do not read a .env file
            "NO_DOCS": "True",
            "DISABLE_SCHEMA_UPDATE": "True",
        }
    )
    port = free_port()
    cmd = [str(exe), "--config", str(d / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    proc = start(name, cmd, args.gateway_cpus, env, d, logdir)
    t = Target(name, f"http://127.0.0.1:{port}/v1", LITELLM_KEY, proc, unique_bodies=control, cache_probe=control)
    t.meta = {"version": pkg_version(BENCH / ".venv-litellm", "litellm"), "workers": 1}
    if control:
        t.meta["controls"] = {
            "cache": f"redis {REDIS_URL}, ttl {CACHE_TTL_S}s",
            "rate_limits": f"deployment rpm {HUGE_RPM}, tpm {HUGE_TPM} (pre-call checks, Redis counters)",
            "budget": "global max_budget 1e6 / 30d",
        }
    headers = {"Authorization": f"Bearer {LITELLM_KEY}", "Content-Type": "application/json"}
    wait_ready(proc, t.chat_url, headers, t.body(False, unique=False), 180)
    return t


def start_target(name: str, args: Any, upstream: str, work: Path, logdir: Path, upstream_proc: Proc) -> Target:
    """Start (or, for ``direct``, just describe) one target by name."""
    if name == "direct":  # its CPU per request is the upstream's: a yardstick for machine noise
        return Target("direct", upstream, proc=upstream_proc, owned=False)
    control = name.endswith("-control")
    if name.startswith("aiport"):
        return start_aiport(args, upstream, work, logdir, control)
    if name.startswith("litellm"):
        return start_litellm(args, upstream, work, logdir, control)
    raise ValueError(f"unknown target {name!r}; choose from {', '.join(NAMES)}")
