"""The clarify stage on the labeled set (>= 150 ko/en requests) and its building blocks."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiport.apps.clarify import Candidate, FormField, Need, Resolved, detect, explicit_prompt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.clarify_eval import evaluate, load

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_labeled_set_precision_recall_and_false_asks() -> None:
    _, requests = load()
    assert len(requests) >= 150
    langs = {("ko" if any("\uac00" <= ch <= "\ud7a3" for ch in r["text"]) else "en") for r in requests}
    assert langs == {"ko", "en"} and {r["label"] for r in requests} == {"ask", "clear"}
    result = evaluate(NOW)["all"]
    assert result.false_ask_rate < 0.05, result.errors
    assert result.precision >= 0.9 and result.recall >= 0.9, result.errors


def test_heldout_set_stays_reasonable() -> None:
    """Written after the rules and never tuned on: a guard against overfitting the labeled set."""
    result = evaluate(NOW, "heldout")["all"]
    assert result.false_ask_rate <= 0.10 and result.recall >= 0.75, result.errors


def test_choices_are_real_candidates_with_dates_plus_something_else() -> None:
    docs = [Candidate(f"d{i}", f"Weekly Report {i}", NOW - timedelta(days=4 + i)) for i in range(6)]
    need = detect("Summarize the report I uploaded last week", candidates=docs, now=NOW)
    assert isinstance(need, Need)
    assert len(need.choices) == 5  # at most 4 candidates, newest first, + something else
    assert need.choices[0]["label"] == "Weekly Report 0 (Nov 21, 2026)"
    assert need.choices[-1]["kind"] == "other"


def test_one_candidate_is_resolved_not_asked() -> None:
    docs = [Candidate("a", "Q3 Sales Report", NOW - timedelta(days=6)), Candidate("b", "Guide", NOW)]
    outcome = detect("지난주에 올린 보고서 요약해줘", candidates=docs, now=NOW)
    assert isinstance(outcome, Resolved) and outcome.candidate.id == "a"


def test_form_contradiction_and_explicit_prompt() -> None:
    form = [FormField("tone", "tone", "select", True, ("formal", "casual"), "formal")]
    need = detect("make it casual please", candidates=[], form=form, now=NOW)
    assert isinstance(need, Need) and need.kind == "form_variable"
    casual = next(c for c in need.choices if c["label"] == "casual")
    assert explicit_prompt("make it casual please", casual, None, "en").endswith("(Clarified: tone = casual.)")
    other = need.choices[-1]
    assert "(Clarified: warm but professional)" in explicit_prompt("x", other, "warm but professional", "en")


def test_conversations_are_candidates_only_when_no_document_is_named() -> None:
    cands = [
        Candidate("d1", "Q3 Sales Report", NOW - timedelta(days=5)),
        Candidate("d2", "Q3 Marketing Report", NOW - timedelta(days=6)),
        Candidate("v1", "Weekly update draft", NOW - timedelta(hours=2), kind="conversation"),
    ]
    same = detect("같은 걸로 해줘", candidates=cands, now=NOW)
    assert isinstance(same, Need) and same.choices[0]["label"].startswith("대화: Weekly update draft")
    report = detect("Summarize the report I uploaded last week", candidates=cands, now=NOW)
    assert isinstance(report, Need) and all(c["kind"] in ("document", "other") for c in report.choices)
    pick = same.choices[0]
    assert explicit_prompt("같은 걸로 해줘", pick, None, "ko").endswith("의 이전 대화 'Weekly update draft')")
