"""The clarify stage: ask back instead of guessing.

Runs after compose and before admission (nothing is reserved or billed for a question).
It stops a request when it cannot be answered well as given:

- a reference with no referent: "that document from last time", "지난번 그 문서",
  "the same as before" with no earlier turn to point at;
- several candidate documents matching close together ("the Q3 report" when there are
  two Q3 reports; "the report I uploaded last week" when two were);
- a form variable missing or contradicted by the message (form: tone=formal, message:
  "make it casual").

It answers with a `Need`: a short question and 2–5 concrete choices built from real
candidates (the caller's documents with title and date, the form's options), plus
"something else". Detection is rules over the message and the candidates, so it is fast,
deterministic, bilingual (ko/en) and measurable (bench/clarify_eval.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiport.apps.clarify_vocab import (
    GENERIC_DOC,
    PLURAL,
    STOP_TITLE,
    SUMMARIZE,
    doc_nouns,
    has_reference,
    is_pronoun_task,
    language,
    mentions,
    time_window,
    title_has_noun,
)
from aiport.knowledge.analyze import terms
from aiport.store.knowledge import Clarification
from aiport.store.models import iso_utc

MAX_CHOICES = 4  # plus "something else" = 5


@dataclass(frozen=True, slots=True)
class Candidate:
    """Something the user may mean: a document (or, later, a conversation)."""

    id: str
    title: str
    created_at: datetime
    kind: str = "document"
    collection_id: str | None = None


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    type: str
    required: bool
    options: tuple[str, ...]
    value: Any


@dataclass(slots=True)
class Need:
    kind: str  # missing_referent | close_candidates | form_variable
    question: str
    choices: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "question": self.question, "choices": self.choices}


@dataclass(slots=True)
class Resolved:
    """The stage found exactly what a reference points at: ground the answer in it."""

    candidate: Candidate


Outcome = Need | Resolved | None


def _title_overlap(text: str, title: str) -> float:
    """How much of a title's distinctive terms the message mentions (0..1)."""
    title_terms = {t for t in terms(title) if t not in STOP_TITLE}
    if not title_terms:
        return 0.0
    message_terms = set(terms(text))
    return len(title_terms & message_terms) / len(title_terms)


def _age(created: datetime, now: datetime) -> timedelta:
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return now - created


def _filter(text: str, candidates: list[Candidate], now: datetime) -> list[Candidate]:
    """Candidates the message could mean: by every kind it names, time window, then the
    title words that tell the remaining candidates apart."""
    named = doc_nouns(text)
    if named:  # "the report", "that file": documents, not conversations
        candidates = [c for c in candidates if c.kind == "document"]
    nouns = named - GENERIC_DOC
    pool = [c for c in candidates if all(title_has_noun(c.title, n) for n in nouns)]
    window = time_window(text)
    if window is not None:
        pool = [c for c in pool if window[0] <= _age(c.created_at, now) <= window[1]]
    if len(pool) < 2:
        pool = pool or [c for c in candidates if _title_overlap(text, c.title) >= 0.5]
        return pool
    title_terms = {c.id: {t for t in terms(c.title) if t not in STOP_TITLE} for c in pool}
    common = set.intersection(*title_terms.values())
    message = set(terms(text))
    scored = []
    for c in pool:
        distinct = title_terms[c.id] - common
        scored.append((c, len(distinct & message) / len(distinct) if distinct else 0.0))
    best = max(s for _, s in scored)
    if best >= 0.5:  # the message names what sets a title apart ("Acme", "Sales")
        pool = [c for c, s in scored if s >= best - 1e-9]
    return pool


def _date(c: Candidate, lang: str) -> str:
    d = c.created_at
    return f"{d.year}년 {d.month}월 {d.day}일" if lang == "ko" else d.strftime("%b %-d, %Y")


def _choice(i: int, c: Candidate, lang: str) -> dict[str, Any]:
    value = {f"{c.kind}_id": c.id, "title": c.title, "created_at": c.created_at.isoformat()}
    label = f"{c.title} ({_date(c, lang)})"
    if c.kind == "conversation":
        label = ("대화: " if lang == "ko" else "Conversation: ") + label
    return {"id": f"c{i}", "label": label, "kind": c.kind, "value": value}


def _document_choices(pool: list[Candidate], lang: str) -> list[dict[str, Any]]:
    """The newest candidates (documents with their upload date, conversations with their
    last activity), then "something else"."""
    newest = sorted(pool, key=lambda c: c.created_at, reverse=True)[:MAX_CHOICES]
    choices = [_choice(i, c, lang) for i, c in enumerate(newest, start=1)]
    return [*choices, _something_else(lang, len(choices) + 1)]


def _something_else(lang: str, n: int) -> dict[str, Any]:
    label = "다른 것 (직접 입력)" if lang == "ko" else "Something else (type it)"
    return {"id": f"c{n}", "label": label, "kind": "other", "value": None}


def _question(kind: str, lang: str, count: int) -> str:
    if lang == "ko":
        return {
            "missing_referent": "어떤 것을 말씀하시는지 알려 주세요.",
            "close_candidates": f"해당하는 문서가 {count}개 있습니다. 어느 문서인가요?",
        }[kind]
    return {
        "missing_referent": "Which one do you mean?",
        "close_candidates": f"I found {count} documents that could match. Which one do you mean?",
    }[kind]


def check_form(text: str, fields: list[FormField], lang: str) -> Need | None:
    """A required field left empty, or a select the message contradicts."""
    for f in fields:
        if f.required and (f.value is None or (isinstance(f.value, str) and not f.value.strip())):
            if f.options:
                choices = [
                    {"id": f"c{i}", "label": o, "kind": "form_value", "value": {"variable": f.name, "value": o}}
                    for i, o in enumerate(f.options[:MAX_CHOICES], start=1)
                ]
                q = f"'{f.label or f.name}' 값을 골라 주세요." if lang == "ko" else f"Which {f.label or f.name}?"
                return Need("form_variable", q, [*choices, _something_else(lang, len(choices) + 1)])
    for f in fields:
        if f.type != "select" or not isinstance(f.value, str):
            continue
        others = [o for o in f.options if o != f.value and mentions(text, o)]
        if others and not mentions(text, f.value):
            options = [f.value, *others][:MAX_CHOICES]
            choices = [
                {"id": f"c{i}", "label": o, "kind": "form_value", "value": {"variable": f.name, "value": o}}
                for i, o in enumerate(options, start=1)
            ]
            name = f.label or f.name
            q = (
                f"양식의 {name}은(는) '{f.value}'인데 메시지에는 '{others[0]}'(이)라고 되어 있습니다. 어느 쪽인가요?"
                if lang == "ko"
                else f"The form says {name} = '{f.value}' but your message asks for '{others[0]}'. Which one?"
            )
            return Need("form_variable", q, [*choices, _something_else(lang, len(choices) + 1)])
    return None


CLOSE_SCORE = 0.8  # a candidate within 80% of the best retrieval score is "close"


def _by_score(pool: list[Candidate], scores: dict[str, float]) -> list[Candidate]:
    """The candidates scoring close to the best; all of them when none scored."""
    best = max((scores.get(c.id, 0.0) for c in pool), default=0.0)
    if best <= 0:
        return pool
    return [c for c in pool if scores.get(c.id, 0.0) >= CLOSE_SCORE * best]


def detect(
    text: str,
    *,
    candidates: list[Candidate],
    context: str = "",
    form: list[FormField] | None = None,
    now: datetime | None = None,
    scores: dict[str, float] | None = None,
) -> Outcome:
    """Decide: ask (`Need`), ground in one candidate (`Resolved`), or go on (None).

    `context` is the earlier turns' text: a reference it already explains is no reason to ask.
    `scores` (document id -> retrieval score of the message's topic words, see `topic_terms`)
    separate candidates the title can't: "the report about churn"."""
    now = now or datetime.now(UTC)
    lang = language(text)
    if form:
        need = check_form(text, form, lang)
        if need is not None:
            return need
    referring = has_reference(text)
    pronoun_task = is_pronoun_task(text)
    nouns = doc_nouns(text)
    single_doc_task = (
        bool(nouns)
        and bool(SUMMARIZE.search(text))
        and not re.search(r"\b(?:all|every|each)\b|모든|전부", text.lower())
    )
    if not (referring or pronoun_task or single_doc_task):
        return None
    if context.strip():
        in_context = [c for c in candidates if c.title and c.title.lower() in context.lower()]
        if len(in_context) == 1:
            return Resolved(in_context[0])
        if (referring or pronoun_task) and not nouns:
            return None  # "make it shorter" after an answer: the conversation is the referent
    pool = _filter(text, candidates, now) if candidates else []
    if len(pool) == 1 and (nouns or referring):
        return Resolved(pool[0])
    if len(pool) >= 2 and PLURAL.search(text):
        return None  # "all the reports", "both contracts": the model gets them all
    if len(pool) >= 2 and scores:
        pool = _by_score(pool, scores)
        if len(pool) == 1:
            return Resolved(pool[0])
    if len(pool) >= 2:
        kind = "close_candidates" if single_doc_task or nouns else "missing_referent"
        return Need(kind, _question(kind, lang, len(pool)), _document_choices(pool, lang))
    if referring or pronoun_task:
        recent = sorted(candidates, key=lambda c: c.created_at, reverse=True)
        if len(recent) >= 2 or (recent and not context.strip()):
            return Need(
                "missing_referent", _question("missing_referent", lang, len(recent)), _document_choices(recent, lang)
            )
    return None


def explicit_prompt(original: str, choice: dict[str, Any], free_text: str | None, lang: str) -> str:
    """The original request with the chosen referent made explicit, for the resumed call."""
    value = choice.get("value") or {}
    if choice.get("kind") == "other" or not value:
        detail = (free_text or "").strip()
        note = f"(명확히 함: {detail})" if lang == "ko" else f"(Clarified: {detail})"
        return f"{original}\n\n{note}" if detail else original
    if "document_id" in value:
        note = (
            f"(명확히 함: 문서 '{value['title']}', {value['created_at'][:10]} 업로드, id {value['document_id']})"
            if lang == "ko"
            else f"(Clarified: the document '{value['title']}', uploaded {value['created_at'][:10]}, "
            f"id {value['document_id']}.)"
        )
        return f"{original}\n\n{note}"
    if "conversation_id" in value:
        note = (
            f"(명확히 함: {value['created_at'][:10]}의 이전 대화 '{value['title']}')"
            if lang == "ko"
            else f"(Clarified: the earlier conversation '{value['title']}' of {value['created_at'][:10]}.)"
        )
        return f"{original}\n\n{note}"
    if "variable" in value:
        note = (
            f"(명확히 함: {value['variable']} = {value['value']})"
            if lang == "ko"
            else f"(Clarified: {value['variable']} = {value['value']}.)"
        )
        return f"{original}\n\n{note}"
    return original


def form_fields(definition: dict[str, Any], inputs: Any) -> list[FormField]:
    """The app's select variables with the values this call runs with (the clarify stage
    checks the message against them)."""
    values = inputs if isinstance(inputs, dict) else {}
    return [
        FormField(
            v["name"],
            v.get("label") or v["name"],
            "select",
            bool(v.get("required")),
            tuple(v.get("options") or ()),
            values.get(v["name"], v.get("default")),
        )
        for v in definition.get("variables") or []
        if v.get("type") == "select"
    ]


def clarification_view(row: Clarification) -> dict[str, Any]:
    """A stored question asked back, as the API shows it (on its own or in a conversation)."""
    return {
        "id": row.id,
        "object": "clarification",
        "kind": row.kind,
        "question": row.question,
        "choices": row.choices,
        "request_id": row.request_id,
        "created_at": iso_utc(row.created_at),
        "resolved": row.resolved_at is not None,
        "resolved_at": iso_utc(row.resolved_at),
        "resolved_choice": row.resolved_choice,
        "resolved_request_id": row.resolved_request_id,
    }
