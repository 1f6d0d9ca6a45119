"""Evaluate the smart router's complexity scorer on the labeled prompt set.

Prints routing accuracy (test and dev splits), precision/recall for "complex",
per-language accuracy, a confusion matrix, a threshold sweep, the cost saved
against always using the strong tier, and the scorer's latency per request.

    .venv/bin/python bench/router_eval.py [--threshold 0.5] [--repeats 200] [--errors dev]

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
from collections import Counter, defaultdict
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
    strong_cost = routed_cost = oracle_cost = 0.0
    for example, score in zip(examples, scores, strict=True):
        predicted = "complex" if score >= threshold else "simple"
        confusion[(example.label, predicted)] += 1
        strong_cost += cost(example, STRONG)
        routed_cost += cost(example, STRONG if predicted == "complex" else CHEAP)
        oracle_cost += cost(example, STRONG if example.label == "complex" else CHEAP)
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
        "oracle_saved": 1 - oracle_cost / strong_cost if strong_cost else 0.0,
    }


def latency_us(scorer: ComplexityScorer, requests: list[ChatRequest], repeats: int) -> list[float]:
    """Per-request wall time of `score`, in microseconds, over all requests x repeats.

    The garbage collector is paused while timing, as `timeit` does, so a collection
    triggered by the sample list itself is not charged to one unlucky call.
    """
    for request in requests:  # warm up regex caches and the interpreter
        scorer.score(request)
    samples = []
    clock = time.perf_counter_ns
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--repeats", type=int, default=200, help="latency: passes over all prompts")
    parser.add_argument("--errors", choices=["dev", "test", "all"], help="list misclassified prompts of a split")
    args = parser.parse_args(argv)

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
    print(
        f"Labeled prompts: {len(examples)} ({labels['simple']} simple, {labels['complex']} complex), "
        f"languages {dict(Counter(e.lang for e in examples).most_common())}"
    )
    print(f"Threshold: {args.threshold}\n")

    print(f"{'split':<6} {'n':>4} {'accuracy':>9} {'precision':>10} {'recall':>7} {'to strong':>10} {'saved':>7}")
    for split in ("test", "dev", None):
        report = evaluate(*subset(split), args.threshold)
        print(
            f"{split or 'all':<6} {report['n']:>4} {report['accuracy']:>9.3f} {report['precision']:>10.3f} "
            f"{report['recall']:>7.3f} {report['strong_share']:>10.1%} {report['saved']:>7.1%}"
        )

    test = evaluate(*subset("test"), args.threshold)
    c = test["confusion"]
    print("\nConfusion matrix, test split (rows: label, columns: routed to)")
    print(f"{'':<10} {'strong':>7} {'cheap':>7}")
    print(f"{'complex':<10} {c['tp']:>7} {c['fn']:>7}")
    print(f"{'simple':<10} {c['fp']:>7} {c['tn']:>7}")

    print("\nAccuracy by language (test / dev / all)")
    by_lang: dict[str, int] = defaultdict(int)
    for e in examples:
        by_lang[e.lang] += 1
    for lang in sorted(by_lang, key=lambda k: -by_lang[k]):
        cells = []
        for split in ("test", "dev", None):
            ex, sc = subset(split, lang)
            cells.append(f"{evaluate(ex, sc, args.threshold)['accuracy']:.3f} ({len(ex):>2})" if ex else "   -     ")
        print(f"{lang:<4} {' / '.join(cells)}")

    print("\nThreshold sweep, test split")
    print(f"{'threshold':>9} {'accuracy':>9} {'precision':>10} {'recall':>7} {'to strong':>10} {'saved':>7}")
    for step in range(9):
        threshold = round(0.3 + 0.05 * step, 2)
        r = evaluate(*subset("test"), threshold)
        print(
            f"{threshold:>9.2f} {r['accuracy']:>9.3f} {r['precision']:>10.3f} {r['recall']:>7.3f} "
            f"{r['strong_share']:>10.1%} {r['saved']:>7.1%}"
        )

    everything = evaluate(examples, scores, args.threshold)
    print(
        f"\nCost vs always-strong, all {len(examples)} prompts: saved {everything['saved']:.1%} "
        f"(perfect routing would save {everything['oracle_saved']:.1%}); "
        f"{everything['confusion']['fn']} complex prompts sent to the cheap tier"
    )
    print(
        f"Assumptions: output {OUTPUT_TOKENS['simple']} tokens (simple) / {OUTPUT_TOKENS['complex']} (complex); "
        f"cheap ${CHEAP[0]}/${CHEAP[1]}, strong ${STRONG[0]}/${STRONG[1]} per million tokens in/out"
    )

    samples = latency_us(scorer, [e.request for e in examples], args.repeats)
    print(
        f"\nScorer latency over {len(samples)} calls ({len(examples)} prompts x {args.repeats}): "
        f"p50 {percentile(samples, 0.5):.1f} µs, p99 {percentile(samples, 0.99):.1f} µs, "
        f"mean {statistics.fmean(samples):.1f} µs, max {max(samples):.1f} µs"
    )
    long_paste = ChatRequest(model="auto", messages=[{"role": "user", "content": examples[20].prompt * 200}])
    big = latency_us(scorer, [long_paste], 200)
    print(
        f"A {len(long_paste.messages[0]['content']) // 1000} kB pasted prompt: "
        f"p50 {percentile(big, 0.5):.1f} µs, p99 {percentile(big, 0.99):.1f} µs"
    )

    if args.errors:
        print(f"\nMisclassified ({args.errors} split):")
        for e, r in zip(examples, results, strict=True):
            predicted = "complex" if r.score >= args.threshold else "simple"
            if predicted != e.label and (args.errors == "all" or e.split == args.errors):
                print(f"  [{e.lang}] label={e.label} score={r.score:.3f} {list(r.signals)} :: {e.prompt[:90]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
