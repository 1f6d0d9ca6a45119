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

from aiport.knowledge.analyze import terms

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

# ---- vocabulary ----------------------------------------------------------------------------
_DOC_NOUNS = {
    # English noun -> Korean equivalents (both directions are matched against titles)
    "report": ("보고서", "리포트"),
    "document": ("문서",),
    "doc": ("문서",),
    "file": ("파일",),
    "minutes": ("회의록",),
    "notes": ("노트", "메모", "회의록"),
    "memo": ("메모",),
    "guide": ("가이드", "안내서"),
    "manual": ("매뉴얼",),
    "policy": ("정책",),
    "proposal": ("제안서",),
    "contract": ("계약서",),
    "presentation": ("발표자료",),
    "deck": ("발표자료",),
    "spreadsheet": ("스프레드시트",),
    "plan": ("계획서",),
    "survey": ("조사",),
}
_KO_NOUNS = {ko: en for en, kos in _DOC_NOUNS.items() for ko in kos}
_GENERIC_DOC = {"document", "doc", "file", "문서", "파일"}

_EN_DOC = "|".join(sorted(_DOC_NOUNS, key=len, reverse=True)) + "|one"
_KO_DOC = "|".join(sorted(_KO_NOUNS, key=len, reverse=True)) + "|자료|것|거"
_KO_NOUN_ONLY = "|".join(sorted(_KO_NOUNS, key=len, reverse=True)) + "|자료"
_REFERENCE_EN = [
    rf"\b(?:that|those|the same)\s+(?:{_EN_DOC})s?\b(?!\s+(?:about|on|titled|called|named)\b)",
    rf"\bthe\s+(?:{_EN_DOC})s?\s+(?:i|we|you)\s+(?:uploaded|sent|shared|attached|gave you|mentioned|wrote|added)\b",
    r"\b(?:i|we)\s+(?:uploaded|sent|shared|attached|added)\s+(?:earlier|before|last\s+\w+|yesterday|the other day)\b",
    r"\b(?:same|like)\s+(?:as\s+)?(?:before|last time|the last one|the previous one)\b",
    r"\bfrom\s+last\s+time\b",
    r"\b(?:the\s+)?previous\s+(?:one|version|document|file|report)\b",
    r"\bthe\s+other\s+(?:one|document|file|report)\b",
    r"\b(?:as|like)\s+(?:we|i)\s+(?:discussed|talked about|agreed)\b",
    r"\b(?:as|like)\s+last\s+time\b",
]
_REFERENCE_KO = [
    rf"(?:지난번|저번|저번에|아까|전에|이전에|예전에)\s*(?:그\s*)?(?:{_KO_DOC})?",
    rf"(?:^|\s)그\s*(?:{_KO_NOUN_ONLY})",
    rf"(?:올린|올렸던|보낸|보냈던|공유한|공유했던|첨부한|업로드한|말한|말했던)\s*(?:{_KO_DOC})",
    r"(?:같은\s*걸로|똑같이|전처럼|지난번처럼|저번처럼|이전처럼|아까처럼)",
]
_PRONOUN_TASK_EN = re.compile(
    r"^\s*(?:please\s+)?(?:make|do|fix|translate|summari[sz]e|shorten|redo|rewrite|send|update|check|finish|continue"
    r"|improve|edit|polish|proofread|expand)\s+(?:it|that|this|them)\b(?!\s*:)",
    re.I,
)
_PRONOUN_TASK_KO = re.compile(
    r"^\s*(?:그거|그것|이거|이것|저거)\s*(?:을|를|좀|도)?\s*.{0,12}(?:해|줘|주세요|해줘|해주세요)[.!?]?\s*$"
)
_SUMMARIZE = re.compile(
    r"\b(?:summari[sz]e|summary of|recap|key points|main points|takeaways?|highlights|gist|tl;?dr|open|review|read"
    r"|explain)\b|요약|정리|핵심|검토|읽고|설명",
    re.I,
)
_TIME_WINDOWS: list[tuple[re.Pattern[str], timedelta, timedelta]] = [
    (re.compile(r"\btoday\b|오늘"), timedelta(0), timedelta(days=1)),
    (re.compile(r"\byesterday\b|어제"), timedelta(days=1), timedelta(days=2, hours=12)),
    (re.compile(r"\bthis\s+week\b|이번\s*주"), timedelta(0), timedelta(days=7)),
    (re.compile(r"\blast\s+week\b|지난\s*주|저번\s*주"), timedelta(days=3), timedelta(days=14)),
    (re.compile(r"\blast\s+month\b|지난\s*달|저번\s*달"), timedelta(days=20), timedelta(days=62)),
    (re.compile(r"\brecently\b|\bthe other day\b|최근|요전"), timedelta(0), timedelta(days=14)),
]
_PLURAL = re.compile(
    r"\b(?:all|both|every|each|compare)\b|모든|전부|모두|둘\s*다|두\s*(?:개|계약서|보고서|문서)|비교", re.I
)
_OPTION_WORDS = {
    # a select option -> other ways people say it (Korean requests against English options and back)
    "english": ("영어", "영문"),
    "korean": ("한국어", "한글", "국문"),
    "japanese": ("일본어",),
    "chinese": ("중국어",),
    "formal": ("격식", "정중"),
    "casual": ("캐주얼", "반말", "편하게"),
    "friendly": ("친근", "다정"),
    "short": ("짧게", "간단히"),
    "long": ("길게", "자세히"),
    "격식체": ("formal",),
    "반말": ("casual",),
    "친근한": ("friendly", "친근"),
}
_KO_HINT = re.compile(r"[\uac00-\ud7a3]")
_STOP_TITLE = {"report", "document", "doc", "file", "upload", "week", "last", "summary", "summariz", "the"}


def language(text: str) -> str:
    return "ko" if _KO_HINT.search(text) else "en"


def _has_reference(text: str) -> bool:
    low = text.lower()
    if any(re.search(p, low) for p in _REFERENCE_EN):
        return True
    return any(re.search(p, text) for p in _REFERENCE_KO)


def _is_pronoun_task(text: str) -> bool:
    """An imperative whose object is only a pronoun ("translate it into English"), with no
    content of its own (no colon, quotes or second line) and short."""
    if any(ch in text for ch in ':"“\n') or len(text.split()) > 10:
        return False
    return bool(_PRONOUN_TASK_EN.match(text) or _PRONOUN_TASK_KO.match(text))


def _doc_nouns(text: str) -> set[str]:
    """Document kinds the message names, as English keys ("report", "minutes", ...)."""
    low = text.lower()
    found = {n for n in _DOC_NOUNS if re.search(rf"\b{n}s?\b", low)}
    found |= {en for ko, en in _KO_NOUNS.items() if ko in text}
    return found


def _title_has_noun(title: str, noun: str) -> bool:
    low = title.lower()
    return bool(re.search(rf"\b{noun}s?\b", low)) or any(ko in title for ko in _DOC_NOUNS.get(noun, ()))


def _window(text: str) -> tuple[timedelta, timedelta] | None:
    low = text.lower()
    for pattern, start, end in _TIME_WINDOWS:
        if pattern.search(low):
            return start, end
    return None


def _title_overlap(text: str, title: str) -> float:
    """How much of a title's distinctive terms the message mentions (0..1)."""
    title_terms = {t for t in terms(title) if t not in _STOP_TITLE}
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
    nouns = _doc_nouns(text) - _GENERIC_DOC
    pool = [c for c in candidates if all(_title_has_noun(c.title, n) for n in nouns)]
    window = _window(text)
    if window is not None:
        pool = [c for c in pool if window[0] <= _age(c.created_at, now) <= window[1]]
    if len(pool) < 2:
        pool = pool or [c for c in candidates if _title_overlap(text, c.title) >= 0.5]
        return pool
    title_terms = {c.id: {t for t in terms(c.title) if t not in _STOP_TITLE} for c in pool}
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


def _document_choices(pool: list[Candidate], lang: str) -> list[dict[str, Any]]:
    newest = sorted(pool, key=lambda c: c.created_at, reverse=True)[:MAX_CHOICES]
    choices = [
        {
            "id": f"c{i}",
            "label": f"{c.title} ({_date(c, lang)})",
            "kind": c.kind,
            "value": {"document_id": c.id, "title": c.title, "created_at": c.created_at.isoformat()},
        }
        for i, c in enumerate(newest, start=1)
    ]
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


def _mentions(text: str, option: str) -> bool:
    """Does the message ask for this option (by its name or a common synonym, ko/en)?"""
    low = text.lower()
    for word in (option.lower(), *_OPTION_WORDS.get(option.lower(), ())):
        if _KO_HINT.search(word):
            if word in text:  # Korean words carry particles: substring match
                return True
        elif re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", low):
            return True
    return False


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
        others = [o for o in f.options if o != f.value and _mentions(text, o)]
        if others and not _mentions(text, f.value):
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
_NON_TOPIC = " ".join(
    [*_DOC_NOUNS, *_KO_NOUNS, "summarize summary recap key points main takeaways highlights gist review read explain",
     "open send show tell give uploaded sent shared attached added wrote last week month today yesterday recently",
     "earlier before previous other same time file document one please can could you me my the that this those",
     "요약해줘 요약해 요약 정리해줘 정리해 정리 핵심만 핵심 알려줘 알려 주세요 해줘 다시 보여줘 검토해줘",
     "지난주에 지난주 지난번 저번에 저번 이번주 이번 어제 오늘 최근에 최근 올린 올렸던 보낸 공유한 업로드한 그 이 저"]
)  # fmt: skip


def topic_terms(text: str) -> list[str]:
    """The message's words that describe *what* is meant, not how it is referred to:
    "summarize the report about churn" -> ["churn"]. Empty: nothing to score candidates by."""
    skip = set(terms(_NON_TOPIC))
    seen: dict[str, None] = {}
    for t in terms(text):
        if t not in skip:
            seen.setdefault(t, None)
    return list(seen)


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
    referring = _has_reference(text)
    pronoun_task = _is_pronoun_task(text)
    nouns = _doc_nouns(text)
    single_doc_task = (
        bool(nouns)
        and bool(_SUMMARIZE.search(text))
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
    if len(pool) >= 2 and _PLURAL.search(text):
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
    if "variable" in value:
        note = (
            f"(명확히 함: {value['variable']} = {value['value']})"
            if lang == "ko"
            else f"(Clarified: {value['variable']} = {value['value']}.)"
        )
        return f"{original}\n\n{note}"
    return original
