"""The words the clarify step listens for, in English and Korean: document kinds, references
without a referent, pronoun-only tasks, time windows, form-option synonyms, and the words
that describe *how* something is referred to rather than *what* it is."""

from __future__ import annotations

import re
from datetime import timedelta

from aiport.knowledge.analyze import terms

DOC_NOUNS = {
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
KO_NOUNS = {ko: en for en, kos in DOC_NOUNS.items() for ko in kos}
GENERIC_DOC = {"document", "doc", "file", "문서", "파일"}

EN_DOC = "|".join(sorted(DOC_NOUNS, key=len, reverse=True)) + "|one"
KO_DOC = "|".join(sorted(KO_NOUNS, key=len, reverse=True)) + "|자료|것|거"
KO_NOUN_ONLY = "|".join(sorted(KO_NOUNS, key=len, reverse=True)) + "|자료"
REFERENCE_EN = [
    rf"\b(?:that|those|the same)\s+(?:{EN_DOC})s?\b(?!\s+(?:about|on|titled|called|named)\b)",
    rf"\bthe\s+(?:{EN_DOC})s?\s+(?:i|we|you)\s+(?:uploaded|sent|shared|attached|gave you|mentioned|wrote|added)\b",
    r"\b(?:i|we)\s+(?:uploaded|sent|shared|attached|added)\s+(?:earlier|before|last\s+\w+|yesterday|the other day)\b",
    r"\b(?:same|like)\s+(?:as\s+)?(?:before|last time|the last one|the previous one)\b",
    r"\bfrom\s+last\s+time\b",
    r"\b(?:the\s+)?previous\s+(?:one|version|document|file|report)\b",
    r"\bthe\s+other\s+(?:one|document|file|report)\b",
    r"\b(?:as|like)\s+(?:we|i)\s+(?:discussed|talked about|agreed)\b",
    r"\b(?:as|like)\s+last\s+time\b",
]
REFERENCE_KO = [
    rf"(?:지난번|저번|저번에|아까|전에|이전에|예전에)\s*(?:그\s*)?(?:{KO_DOC})?",
    rf"(?:^|\s)그\s*(?:{KO_NOUN_ONLY})",
    rf"(?:올린|올렸던|보낸|보냈던|공유한|공유했던|첨부한|업로드한|말한|말했던)\s*(?:{KO_DOC})",
    r"(?:같은\s*걸로|똑같이|전처럼|지난번처럼|저번처럼|이전처럼|아까처럼)",
]
PRONOUN_TASK_EN = re.compile(
    r"^\s*(?:please\s+)?(?:make|do|fix|translate|summari[sz]e|shorten|redo|rewrite|send|update|check|finish|continue"
    r"|improve|edit|polish|proofread|expand)\s+(?:it|that|this|them)\b(?!\s*:)",
    re.I,
)
PRONOUN_TASK_KO = re.compile(
    r"^\s*(?:그거|그것|이거|이것|저거)\s*(?:을|를|좀|도)?\s*.{0,12}(?:해|줘|주세요|해줘|해주세요)[.!?]?\s*$"
)
SUMMARIZE = re.compile(
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
PLURAL = re.compile(
    r"\b(?:all|both|every|each|compare)\b|모든|전부|모두|둘\s*다|두\s*(?:개|계약서|보고서|문서)|비교", re.I
)
OPTION_WORDS = {
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
KO_HINT = re.compile(r"[\uac00-\ud7a3]")
STOP_TITLE = {"report", "document", "doc", "file", "upload", "week", "last", "summary", "summariz", "the"}


def language(text: str) -> str:
    return "ko" if KO_HINT.search(text) else "en"


def has_reference(text: str) -> bool:
    low = text.lower()
    if any(re.search(p, low) for p in REFERENCE_EN):
        return True
    return any(re.search(p, text) for p in REFERENCE_KO)


def is_pronoun_task(text: str) -> bool:
    """An imperative whose object is only a pronoun ("translate it into English"), with no
    content of its own (no colon, quotes or second line) and short."""
    if any(ch in text for ch in ':"“\n') or len(text.split()) > 10:
        return False
    return bool(PRONOUN_TASK_EN.match(text) or PRONOUN_TASK_KO.match(text))


def doc_nouns(text: str) -> set[str]:
    """Document kinds the message names, as English keys ("report", "minutes", ...)."""
    low = text.lower()
    found = {n for n in DOC_NOUNS if re.search(rf"\b{n}s?\b", low)}
    found |= {en for ko, en in KO_NOUNS.items() if ko in text}
    return found


def title_has_noun(title: str, noun: str) -> bool:
    low = title.lower()
    return bool(re.search(rf"\b{noun}s?\b", low)) or any(ko in title for ko in DOC_NOUNS.get(noun, ()))


def time_window(text: str) -> tuple[timedelta, timedelta] | None:
    low = text.lower()
    for pattern, start, end in _TIME_WINDOWS:
        if pattern.search(low):
            return start, end
    return None


def mentions(text: str, option: str) -> bool:
    """Does the message ask for this option (by its name or a common synonym, ko/en)?"""
    low = text.lower()
    for word in (option.lower(), *OPTION_WORDS.get(option.lower(), ())):
        if KO_HINT.search(word):
            if word in text:  # Korean words carry particles: substring match
                return True
        elif re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", low):
            return True
    return False


NON_TOPIC = " ".join(
    [*DOC_NOUNS, *KO_NOUNS, "summarize summary recap key points main takeaways highlights gist review read explain",
     "open send show tell give uploaded sent shared attached added wrote last week month today yesterday recently",
     "earlier before previous other same time file document one please can could you me my the that this those",
     "요약해줘 요약해 요약 정리해줘 정리해 정리 핵심만 핵심 알려줘 알려 주세요 해줘 다시 보여줘 검토해줘",
     "지난주에 지난주 지난번 저번에 저번 이번주 이번 어제 오늘 최근에 최근 올린 올렸던 보낸 공유한 업로드한 그 이 저"]
)  # fmt: skip


def topic_terms(text: str) -> list[str]:
    """The message's words that describe *what* is meant, not how it is referred to:
    "summarize the report about churn" -> ["churn"]. Empty: nothing to score candidates by."""
    skip = set(terms(NON_TOPIC))
    seen: dict[str, None] = {}
    for t in terms(text):
        if t not in skip:
            seen.setdefault(t, None)
    return list(seen)
