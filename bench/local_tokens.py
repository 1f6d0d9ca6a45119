"""Embedded model tokens/s: xllamacpp called directly vs the same model through aiport.

Both sides run the bundled Gemma 3 270M with the same llama.cpp settings aiport uses
(``AIPORT_LOCAL_PARALLEL``/``CONTEXT``/``THREADS`` defaults) and the same request body
(aiport's own ``build_body``), greedy decoding, so they generate the same tokens. Direct:
``Server.handle_completions`` in this process. Through aiport: ``aiport serve`` with the
default catalog, streamed over HTTP on loopback. Tokens/s = completion tokens / wall time.

    .venv/bin/python bench/local_tokens.py            # ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import load
import procs as rg
from targets import export_ref

if TYPE_CHECKING:
    from aiport.config import Settings

# A base model answers most prompts in a few tokens; a counting example makes it go on.
MESSAGES = [
    {"role": "user", "content": "Count from 1 to 10."},
    {"role": "assistant", "content": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10"},
    {"role": "user", "content": "Count from 1 to 200."},
]
MODEL = "gemma-3-270m"


def chat_request(max_tokens: int) -> dict[str, Any]:
    """The OpenAI request both sides answer (greedy, fixed seed)."""
    return {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
    }


def direct_body(max_tokens: int) -> dict[str, Any]:
    """Exactly the llama-server body aiport's local provider sends for chat_request()."""
    from aiport.config import Settings
    from aiport.providers.local import build_body
    from aiport.web.v1 import parse_chat_request

    request = parse_chat_request({**chat_request(max_tokens), "stream": True}, None)
    model = next(m for m in Settings().catalog.models if m.name == MODEL)
    return build_body(request, model)


class Direct:
    """xllamacpp's server in this process, started exactly as aiport's local provider does."""

    def __init__(self, data_dir: Path, s: Settings, max_tokens: int) -> None:
        from aiport.providers.local_model import model_path_for, start_server

        path = model_path_for(data_dir, {})
        self.server = start_server(path, parallel=s.local_parallel, context=s.local_context, threads=s.local_threads)
        self.body = direct_body(max_tokens)

    def one(self) -> dict[str, float]:
        """One streamed generation via handle_completions."""
        first: list[float] = []
        last: dict[str, Any] = {}

        def on_chunk(chunk: dict[str, Any]) -> bool:
            choice = (chunk.get("choices") or [{}])[0]
            if not first and choice.get("text"):
                first.append(time.perf_counter())
            if chunk.get("timings") or chunk.get("usage"):
                last.update(chunk)
            return False

        t0 = time.perf_counter()
        self.server.handle_completions(dict(self.body), on_chunk)
        wall = time.perf_counter() - t0
        timings = last.get("timings") or {}
        usage = last.get("usage") or {}
        return {
            "tokens": int(usage.get("completion_tokens") or timings.get("predicted_n") or 0),
            "wall_s": wall,
            "ttft_ms": 1000 * ((first[0] if first else t0) - t0),
            "llama_tps": float(timings.get("predicted_per_second") or 0),
        }

    def close(self) -> None:
        holder = [self.server]
        del self.server
        threading.Thread(target=holder.clear).start()  # llama.cpp joins its threads on delete


def tps(run: dict[str, float]) -> float:
    """Tokens per second of one run."""
    return run["tokens"] / run["wall_s"] if run["wall_s"] else 0.0


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Aggregate tokens/s (total tokens / total time) and per-run medians."""
    tokens = sum(r["tokens"] for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    out: dict[str, Any] = {
        "runs": len(runs),
        "tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
        "median_run_tokens_per_s": round(statistics.median(r["tokens"] / r["wall_s"] for r in runs), 2)
        if runs
        else 0.0,
        "ttft_ms_p50": round(statistics.median(r["ttft_ms"] for r in runs), 2) if runs else 0.0,
        "per_run": runs,
    }
    decode = [(r["tokens"] - 1) / (r["wall_s"] - r["ttft_ms"] / 1000) for r in runs if r["tokens"] > 1]
    if decode:  # generation speed after the first token: prompt processing and queueing left out
        out["decode_tokens_per_s_median"] = round(statistics.median(decode), 2)
    if runs and runs[0].get("llama_tps"):
        out["llama_reported_tokens_per_s"] = round(statistics.median(r["llama_tps"] for r in runs), 2)
    return out


async def _one_stream(target: load.Target) -> dict[str, float]:
    """One streamed request on a fresh connection: start, first token, end, tokens."""
    conn = await load.Conn.open(target.host, target.port)
    try:
        t0 = load.now()
        r = await conn.request(target.raw(), True, 300)
    finally:
        conn.close()
    if r.status != 200 or not r.token_times:
        raise RuntimeError(f"aiport answered {r.status} without tokens")
    tokens = int(r.usage.get("completion_tokens") or 0)
    return {"tokens": tokens, "wall_s": r.t_done - t0, "ttft_ms": 1000 * (r.t_first_token - t0)}


@contextlib.contextmanager
def aiport_server(data_dir: Path, work: Path, max_tokens: int, src: Path | None) -> Iterator[load.Target]:
    """``aiport serve`` with the default catalog (the embedded model), ready for streamed requests."""
    exe = rg.ROOT / ".venv" / "bin" / "aiport"
    env = {k: v for k, v in os.environ.items() if k != "AIPORT_CONFIG"}
    env.update({"AIPORT_DATA_DIR": str(data_dir), "AIPORT_LOG_LEVEL": "warning"})
    if src is not None:
        env["PYTHONPATH"] = str(src)
    key_file = work / "key"
    subprocess.run(
        [str(exe), "seed-demo", "--key-file", str(key_file)],
        env=env,
        cwd=work,
        check=True,
        timeout=120,
        capture_output=True,
    )
    key = key_file.read_text().strip()
    port = rg.free_port()
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = rg.start("aiport-local", cmd, "", env, work, logdir)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        rg.wait_ready(proc, url, headers, json.dumps(chat_request(4)).encode(), 180)
        body = {**chat_request(max_tokens), "stream": True, "stream_options": {"include_usage": True}}
        yield load.Target(url, (("Authorization", f"Bearer {key}"),), json.dumps(body).encode())
    finally:
        proc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=10, help="measured requests per side (after 1 warm-up)")
    ap.add_argument("--aiport-ref", default="", help="benchmark this git ref's src/ instead of the work tree")
    ap.add_argument("--wait-quiet-s", type=float, default=60, help="max wait for other load before a round")
    ap.add_argument("--out", default="", help="JSON path")
    ap.add_argument("--markdown", default="", help="also write the table to this file")
    a = ap.parse_args(argv)
    a.requests = max(1, min(a.requests, 50))
    rg.exit_on_sigterm()
    load.install_uvloop()
    work = Path(tempfile.mkdtemp(prefix="aiport-local-bench-"))
    data_dir = work / "data"
    src = export_ref(a.aiport_ref, work) if a.aiport_ref else None
    if src is not None:
        sys.path.insert(0, str(src))
    from aiport.config import Settings

    settings = Settings(data_dir=data_dir)
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "aiport": []}
    background: list[float] = []
    direct: Direct | None = None
    try:
        rg.log("loading the model for the direct side")
        # separate data dirs: each side assembles its own copy of the GGUF, so one never
        # rewrites the file the other has mapped
        direct = Direct(data_dir / "direct", settings, a.max_tokens)
        rg.log("starting aiport serve with the default catalog")
        with aiport_server(data_dir / "aiport", work, a.max_tokens, src) as target:
            direct.one(), asyncio.run(_one_stream(target))  # warm-up both
            for i in range(a.requests):
                background.append(rg.wait_quiet(a.wait_quiet_s))
                # alternate which side goes first, so drift in machine load hits both alike
                order = ("direct", "aiport") if i % 2 == 0 else ("aiport", "direct")
                for side in order:
                    r = direct.one() if side == "direct" else asyncio.run(_one_stream(target))
                    runs[side].append(r)
                rg.log(
                    f"round {i + 1}/{a.requests}: direct {tps(runs['direct'][-1]):.1f} tok/s, "
                    f"aiport {tps(runs['aiport'][-1]):.1f} tok/s"
                )
    finally:
        if direct is not None:
            direct.close()
        shutil.rmtree(work, ignore_errors=True)
    direct_res, through = summarize(runs["direct"]), summarize(runs["aiport"])
    ratio = through["tokens_per_s"] / direct_res["tokens_per_s"] if direct_res["tokens_per_s"] else 0.0
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "aiport_source": {"commit": rg.git_commit(a.aiport_ref or "HEAD"), "tree": a.aiport_ref or "working tree"},
        "settings": {
            "max_tokens": a.max_tokens,
            "requests": a.requests,
            "parallel": settings.local_parallel,
            "context": settings.local_context,
            "threads": settings.local_threads,
        },
        "background_busy_pct_before_rounds": background,
        "direct": direct_res,
        "aiport": through,
        "ratio": round(ratio, 4),
    }
    out = Path(a.out) if a.out else rg.RESULTS / f"local-tokens-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    lines = [
        f"Gemma 3 270M (Q4_K_M), greedy, {a.max_tokens} max tokens, {a.requests} measured requests per side "
        f"(alternating), llama.cpp parallel {settings.local_parallel}, context {settings.local_context}, "
        f"threads {settings.local_threads or 'all'}; other load before rounds (% of all cores): "
        f"{', '.join(f'{b:.0f}' for b in background)}.",
        "",
        "| path | tokens/s (end to end) | decode tokens/s, median | TTFT p50, ms | tokens |",
        "|---|---|---|---|---|",
    ]
    for name, r in (("xllamacpp called directly", direct_res), ("through aiport (HTTP, streamed)", through)):
        lines.append(
            f"| {name} | {r['tokens_per_s']:.1f} | {r.get('decode_tokens_per_s_median', 0):.1f} | "
            f"{r['ttft_ms_p50']:.1f} | {r['tokens']} |"
        )
    verdict = "met" if ratio >= 0.95 else "**missed**"
    d0, d1 = direct_res.get("decode_tokens_per_s_median"), through.get("decode_tokens_per_s_median")
    decode = f"; decode speed aiport / direct = {100 * d1 / d0:.1f}%" if d0 and d1 else ""
    lines += ["", f"aiport / direct = {100 * ratio:.1f}% end to end (target ≥ 95%: {verdict}){decode}"]
    md = "\n".join(lines)
    print(md + f"\nJSON: {out}")
    if a.markdown:
        Path(a.markdown).write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
