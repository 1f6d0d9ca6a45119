"""Evaluate the smart router's complexity scorer on the labeled prompt set.

Prints routing accuracy (test and dev splits), precision/recall for "complex",
per-language accuracy, a confusion matrix, a threshold sweep, the cost saved
against always using the strong tier, and the scorer's latency per request.

    .venv/bin/python bench/router_eval.py [--threshold 0.5] [--repeats 200] [--errors dev]

"saved" counts a complex prompt sent to the cheap tier as a saving; "saved, misroutes
re-asked" charges such a prompt for both tiers (the user asks again on the strong one),
the conservative figure. Thresholds are swept on the dev split; the test split is the
held-out score. Scorer cost is reported as CPU time per call (thread CPU clock, immune
to other processes preempting us on a shared machine) and as wall time.

Cost model (stated, not measured): tokens are estimated with `estimate_tokens`
(about 4 Latin characters or 1.25 CJK characters per token) plus a few tokens of
chat framing; the answer is assumed to be 150 tokens for a simple prompt and 800
for a complex one whichever tier answers. Prices per million tokens, in/out:
cheap $0.15/$0.60, strong $3/$15.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiport.domain.chat import ChatRequest
from aiport.gateway.complexity import DEFAULT_THRESHOLD, ComplexityScorer, estimate_tokens

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "routing" / "prompts.jsonl"
CHEAP = (0.15, 0.60)  # $ per million tokens, input / output
STRONG = (3.00, 15.00)
OUTPUT_TOKENS = {"simple": 150, "complex": 800}
FRAMING_TOKENS = 8  # role markers and message separators per request


@dataclass(frozen=True, slots=True)
class Example:
    prompt: str
    label: str
    lang: str
    split: str
    request: ChatRequest
    input_tokens: int


def load(path: Path = FIXTURE) -> list[Example]:
    """Read the labeled prompts and build the ChatRequest each one stands for."""
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        messages = []
        if row.get("system"):
            messages.append({"role": "system", "content": row["system"]})
        messages.append({"role": "user", "content": row["prompt"]})
        request = ChatRequest(model="auto", messages=messages, params=dict(row.get("params") or {}))
        tokens = estimate_tokens(row["prompt"]) + estimate_tokens(row.get("system") or "") + FRAMING_TOKENS
        examples.append(Example(row["prompt"], row["label"], row["lang"], row["split"], request, tokens))
    return examples


def cost(example: Example, tier: tuple[float, float]) -> float:
    """Dollars for one request on a tier under the stated token assumptions."""
    return (example.input_tokens * tier[0] + OUTPUT_TOKENS[example.label] * tier[1]) / 1_000_000


def evaluate(examples: list[Example], scores: list[float], threshold: float) -> dict[str, Any]:
    """Accuracy, precision/recall for complex, confusion and cost saved at one threshold."""
    confusion: Counter[tuple[str, str]] = Counter()
    strong_cost = routed_cost = oracle_cost = reasked_cost = 0.0
    for example, score in zip(examples, scores, strict=True):
        predicted = "complex" if score >= threshold else "simple"
        confusion[(example.label, predicted)] += 1
        strong_cost += cost(example, STRONG)
        routed_cost += cost(example, STRONG if predicted == "complex" else CHEAP)
        oracle_cost += cost(example, STRONG if example.label == "complex" else CHEAP)
        reasked = example.label == "complex" and predicted == "simple"
        reasked_cost += cost(example, STRONG if predicted == "complex" else CHEAP) + (
            cost(example, STRONG) if reasked else 0.0
        )
    tp, fn = confusion[("complex", "complex")], confusion[("complex", "simple")]
    fp, tn = confusion[("simple", "complex")], confusion[("simple", "simple")]
    n = len(examples)
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
        "strong_share": (tp + fp) / n if n else 0.0,
        "saved": 1 - routed_cost / strong_cost if strong_cost else 0.0,
        "saved_reasked": 1 - reasked_cost / strong_cost if strong_cost else 0.0,
        "oracle_saved": 1 - oracle_cost / strong_cost if strong_cost else 0.0,
    }


def latency_us(
    scorer: ComplexityScorer, requests: list[ChatRequest], repeats: int, clock: Any = time.perf_counter_ns
) -> list[float]:
    """Per-request time of `score` on ``clock`` (ns), in microseconds, over all requests x repeats.

    The garbage collector is paused while timing, as `timeit` does, so a collection
    triggered by the sample list itself is not charged to one unlucky call.
    """
    for request in requests:  # warm up regex caches and the interpreter
        scorer.score(request)
    samples = []
    gc.disable()
    try:
        for _ in range(repeats):
            for request in requests:
                start = clock()
                scorer.score(request)
                samples.append((clock() - start) / 1000)
    finally:
        gc.enable()
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['strong_share']:.1%} | {r['saved']:.1%} | {r['saved_reasked']:.1%} |"
    )


HEAD = (
    "| {0} | n | accuracy | precision (complex) | recall (complex) | to strong | saved | saved, misroutes re-asked |\n"
    "|---|---|---|---|---|---|---|---|"
)


def report(args: argparse.Namespace) -> str:
    """All results as markdown."""
    examples = load()
    scorer = ComplexityScorer()
    results = [scorer.score(e.request) for e in examples]
    scores = [r.score for r in results]

    def subset(split: str | None = None, lang: str | None = None) -> tuple[list[Example], list[float]]:
        picked = [
            (e, s)
            for e, s in zip(examples, scores, strict=True)
            if (split is None or e.split == split) and (lang is None or e.lang == lang)
        ]
        return [e for e, _ in picked], [s for _, s in picked]

    labels = Counter(e.label for e in examples)
    langs = ", ".join(f"{k} {v}" for k, v in Counter(e.lang for e in examples).most_common())
    out = [
        f"Labeled set `tests/fixtures/routing/prompts.jsonl`: {len(examples)} prompts ({labels['simple']} simple, "
        f"{labels['complex']} complex; {langs}). Threshold {args.threshold}.",
        "",
        HEAD.format("split"),
    ]
    for split in ("test", "dev", None):
        out.append(_row(split or "all", evaluate(*subset(split), args.threshold)))
    c = evaluate(*subset("test"), args.threshold)["confusion"]
    out += [
        "",
        f"Test split confusion: complex → strong {c['tp']}, complex → cheap {c['fn']}, "
        f"simple → strong {c['fp']}, simple → cheap {c['tn']}.",
        "",
        "Accuracy by language (test / dev / all, with counts):",
        "",
        "| language | test | dev | all |",
        "|---|---|---|---|",
    ]
    by_lang = Counter(e.lang for e in examples)
    for lang, _ in by_lang.most_common():
        cells = []
        for split in ("test", "dev", None):
            ex, sc = subset(split, lang)
            cells.append(f"{evaluate(ex, sc, args.threshold)['accuracy']:.3f} ({len(ex)})" if ex else "–")
        out.append(f"| {lang} | " + " | ".join(cells) + " |")
    out += ["", "Threshold sweep on the dev split (the test split stays held out):", "", HEAD.format("threshold")]
    for step in range(9):
        threshold = round(0.3 + 0.05 * step, 2)
        out.append(_row(f"{threshold:.2f}", evaluate(*subset("dev"), threshold)))
    everything = evaluate(examples, scores, args.threshold)
    out += [
        "",
        f"Cost against always-strong, all {len(examples)} prompts: saved {everything['saved']:.1%}, or "
        f"{everything['saved_reasked']:.1%} when each complex prompt sent to the cheap tier is asked again on the "
        f"strong one (perfect routing: {everything['oracle_saved']:.1%}). Assumed output "
        f"{OUTPUT_TOKENS['simple']} tokens (simple) / {OUTPUT_TOKENS['complex']} (complex); cheap "
        f"${CHEAP[0]}/${CHEAP[1]}, strong ${STRONG[0]}/${STRONG[1]} per million tokens in/out; input tokens "
        "estimated at ~4 Latin / ~1.25 CJK characters per token.",
        "",
    ]
    requests = [e.request for e in examples]
    cpu = latency_us(scorer, requests, args.repeats, time.thread_time_ns)
    wall = latency_us(scorer, requests, args.repeats)
    long_paste = ChatRequest(model="auto", messages=[{"role": "user", "content": examples[20].prompt * 200}])
    big_cpu = latency_us(scorer, [long_paste], 200, time.thread_time_ns)
    size_kb = len(long_paste.messages[0]["content"]) // 1000
    out += [
        f"Scorer cost per request over {len(cpu):,} calls ({len(examples)} prompts × {args.repeats}):",
        "",
        "| clock | p50 µs | p99 µs | mean µs | max µs |",
        "|---|---|---|---|---|",
        f"| CPU time (thread clock) | {percentile(cpu, 0.5):.1f} | {percentile(cpu, 0.99):.1f} | "
        f"{statistics.fmean(cpu):.1f} | {max(cpu):.1f} |",
        f"| wall time | {percentile(wall, 0.5):.1f} | {percentile(wall, 0.99):.1f} | "
        f"{statistics.fmean(wall):.1f} | {max(wall):.1f} |",
        f"| CPU time, one {size_kb} kB pasted prompt | {percentile(big_cpu, 0.5):.1f} | "
        f"{percentile(big_cpu, 0.99):.1f} | {statistics.fmean(big_cpu):.1f} | {max(big_cpu):.1f} |",
    ]
    if args.errors:
        out += ["", f"Misclassified ({args.errors} split):", ""]
        for e, r in zip(examples, results, strict=True):
            predicted = "complex" if r.score >= args.threshold else "simple"
            if predicted != e.label and (args.errors == "all" or e.split == args.errors):
                out.append(f"- [{e.lang}] label={e.label} score={r.score:.3f} {list(r.signals)}: {e.prompt[:90]!r}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--repeats", type=int, default=200, help="latency: passes over all prompts")
    parser.add_argument("--errors", choices=["dev", "test", "all"], help="list misclassified prompts of a split")
    parser.add_argument("--markdown", default="", help="also write the report to this file")
    args = parser.parse_args(argv)
    md = report(args)
    print(md)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(md + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
