"""Text -> search terms, the same for documents and queries and for both databases.

Why our own analysis instead of the databases' stemmers: SQLite's unicode61 tokenizer
and PostgreSQL's `simple` configuration treat a run of Hangul as one word, so "보고서를"
would never match "보고서". Korean (and other CJK) runs become overlapping character
bigrams (single characters stay as they are); Latin words are lower-cased, lightly
stemmed and stripped of stop words. The result is stored as `search_text` and indexed
by FTS5 / tsvector unchanged, so both backends rank the same terms.
"""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"[\uac00-\ud7a3]+|[\u3040-\u30ff\u4e00-\u9fff]+|[a-z0-9]+")
_CJK = re.compile(r"[\uac00-\ud7a3\u3040-\u30ff\u4e00-\u9fff]")
STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have how i in is it its me my of on or our so that the "
    "their them then there these this to was we were what when where which who why will with you your "
    "do does did can could would should please about into than".split()
)


def _stem(word: str) -> str:
    """A light English stemmer: enough to match plurals and common verb forms."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Search terms of `text`, in order (duplicates kept: they carry term frequency)."""
    out: list[str] = []
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if _CJK.match(token):
            if len(token) == 1:
                out.append(token)
            else:
                out.extend(token[i : i + 2] for i in range(len(token) - 1))
        elif token not in STOP_WORDS:
            out.append(_stem(token))
    return out


def search_text(text: str) -> str:
    return " ".join(terms(text))


def query_terms(text: str, limit: int = 40) -> list[str]:
    """Distinct query terms, first occurrences first, at most `limit` (a long question
    must not become a giant OR query)."""
    seen: dict[str, None] = {}
    for term in terms(text):
        seen.setdefault(term, None)
    return list(seen)[:limit]
