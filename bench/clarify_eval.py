"""Ask-back quality of the clarify stage on the labeled set (tests/fixtures/clarify):
precision and recall of "ask", and the false-ask rate on clear requests.

    .venv/bin/python bench/clarify_eval.py [--show-errors] [--set heldout]

requests.jsonl is the labeled set the rules were developed against; heldout.jsonl was
written afterwards and not tuned on, so its numbers are the honest estimate.

Each request is checked against the same user context (context.json: ten documents of
various ages, forms); `history` gives earlier turns, `form` the app form it runs with.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aiport.apps.clarify import Candidate, FormField, Need, detect, language  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "clarify"


@dataclass
class Result:
    total: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def false_ask_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0


def load(name: str = "requests") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    context = json.loads((FIXTURES / "context.json").read_text())
    requests = [json.loads(x) for x in (FIXTURES / f"{name}.jsonl").read_text().splitlines() if x.strip()]
    return context, requests


def evaluate(now: datetime | None = None, name: str = "requests") -> dict[str, Result]:
    now = now or datetime.now(UTC)
    context, requests = load(name)
    docs = [Candidate(d["id"], d["title"], now - timedelta(days=d["age_days"])) for d in context["documents"]]
    forms = {
        name: [FormField(f["name"], f["label"], f["type"], f["required"], tuple(f["options"]), f["value"]) for f in fs]
        for name, fs in context["forms"].items()
    }
    results = {"all": Result(), "en": Result(), "ko": Result()}
    for r in requests:
        outcome = detect(
            r["text"],
            candidates=docs,
            context="\n".join(r.get("history", [])),
            form=forms.get(r.get("form", "")),
            now=now,
        )
        asked = isinstance(outcome, Need)
        if isinstance(outcome, Need):
            assert 2 <= len(outcome.choices) <= 5, r["text"]
        want = r["label"] == "ask"
        for key in ("all", language(r["text"])):
            res = results[key]
            res.total += 1
            if asked and want:
                res.tp += 1
            elif asked:
                res.fp += 1
                res.errors.append(f"false ask: {r['text']}")
            elif want:
                res.fn += 1
                res.errors.append(f"missed: {r['text']}  ({r.get('why', '')})")
            else:
                res.tn += 1
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--set", default="requests", help="requests (the labeled set) or heldout")
    args = parser.parse_args()
    results = evaluate(name=args.set)
    print("| set | requests | ask precision | ask recall | false asks on clear |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r.total} | {r.precision:.3f} | {r.recall:.3f} | {r.false_ask_rate:.1%} ({r.fp}/{r.fp + r.tn}) |"
        )
    if args.show_errors:
        for e in results["all"].errors:
            print(e)
