"""How hard a chat request looks, so `auto` can send easy ones to the cheap tier.

Rule-based on purpose: no model, no network, deterministic, tens of microseconds, and
every decision comes with human-readable reasons for the audit record and headers.
Weighted cues are summed into a logit and squashed to 0..1; the router compares the
score with a threshold (`DEFAULT_THRESHOLD`). Cues cover English, Korean, Japanese,
Chinese and Spanish, with a few German, French and Portuguese ones.

Speed comes from matching literals, not regex alternations: the text is split into
Latin words once, and each cue is a set lookup (a word), a substring test on the
space-joined words (a stem or phrase) or a substring test on the raw text (CJK).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aiport.domain.chat import ChatRequest

DEFAULT_THRESHOLD = 0.5

# feature: (weight, reason when it raises the score, reason when it lowers it). A feature's
# value is 0..1, a small count, or -1..1 (prompt length, max_tokens, the system prompt's
# role); negative weights pull toward the cheap tier. Tuned by hand on the dev split of
# tests/fixtures/routing/prompts.jsonl; bench/router_eval.py reports both splits.
_FEATURES: Mapping[str, tuple[float, str, str]] = MappingProxyType(
    {
        "bias": (-1.0, "", ""),
        "code_block": (2.6, "code block", ""),
        "code_syntax": (1.2, "code", ""),
        "code_task": (1.6, "code", ""),
        "stack_trace": (2.6, "stack trace", ""),
        "math_notation": (1.2, "math", ""),
        "math_terms": (1.0, "math", ""),
        "proof": (2.4, "proof", ""),
        "reasoning": (1.3, "multi-step", ""),
        "explain": (0.7, "explanation", ""),
        "constraints": (0.3, "constraints", ""),
        "long_output": (1.4, "long output", ""),
        "structured_output": (1.5, "structured output", ""),
        "tools": (1.0, "tools", ""),
        "images": (0.6, "images", ""),
        "prompt_length": (0.8, "long prompt", "short prompt"),
        "conversation": (0.5, "long conversation", ""),
        "code_in_context": (1.4, "code in conversation", ""),
        "max_tokens": (1.0, "large max_tokens", "small max_tokens"),
        "system_role": (0.5, "expert system prompt", "simple system prompt"),
        "simple_task": (-1.6, "", "simple task"),
        "greeting": (-2.5, "", "greeting"),
    }
)
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({name: spec[0] for name, spec in _FEATURES.items()})

_SIGNAL_MIN = 0.25  # a contribution smaller than this is not worth naming as a reason
_SCAN_HEAD, _SCAN_TAIL, _SCAN_MATERIAL = (
    2500,
    500,
    1500,
)  # huge pastes: scan the ask at the top and the question at the end


@dataclass(frozen=True, slots=True)
class _Text:
    """One piece of text prepared once for every cue table."""

    raw: str  # lower-cased; CJK cues are substrings of it
    words: frozenset[str]  # Latin-script words
    spaced: str  # " word word ... " for stems and phrases
    hangul: bool
    han_kana: bool


@dataclass(frozen=True, slots=True)
class _Cues:
    words: frozenset[str]
    spaced: re.Pattern[str] | None  # stems and phrases, matched on _Text.spaced
    hangul: tuple[str, ...]
    han_kana: tuple[str, ...]

    def count(self, text: _Text) -> int:
        """How many distinct cues of this table occur in the text."""
        n = len(self.words & text.words)
        if self.spaced is not None and len(text.spaced) > 2:
            n += len(set(self.spaced.findall(text.spaced)))
        if text.hangul:
            n += sum(1 for cue in self.hangul if cue in text.raw)
        if text.han_kana:
            n += sum(1 for cue in self.han_kana if cue in text.raw)
        return n


def _cues(**by_language: str) -> _Cues:
    """A cue table from '|'-separated entries: `word`, `stem*`, `a phrase`, or CJK text (a substring)."""
    words: set[str] = set()
    spaced: list[str] = []
    hangul: list[str] = []
    han_kana: list[str] = []
    for entries in by_language.values():
        for entry in entries.split("|"):
            entry = entry.strip()
            if _HANGUL.search(entry):
                hangul.append(entry)
            elif _HAN_KANA.search(entry):
                han_kana.append(entry)
            elif entry.endswith("*"):
                spaced.append(entry[:-1])
            elif " " in entry:
                spaced.append(entry + " ")
            else:
                words.add(entry)
    # The leading space anchors each cue to a word start; the trie keeps sre from retrying every cue there.
    pattern = re.compile(" " + _trie(spaced)) if spaced else None
    return _Cues(frozenset(words), pattern, tuple(hangul), tuple(han_kana))


def _trie(literals: list[str]) -> str:
    """A regex matching any of the literals, shaped as a trie (longest match wins)."""
    root: dict[str, Any] = {}
    for literal in literals:
        node = root
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_HAN_KANA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile(r"[a-z0-9à-öø-ÿ]+")
# Words that contain a cue but mean something else ("certificate" contains "proof" in Korean).
_FALSE_FRIENDS = tuple("증명서|証明書|证明书|证明信|바코드|qr코드|목표로|발표로|대표로|지표로|소수점".split("|"))

_CODE_TASK = _cues(
    en="implement*|refactor*|debug*|bug|bugs|regex*|regular expression|sql|unit test*|pytest|jest|algorithm*"
    "|data structure*|concurren*|thread safe|deadlock*|race condition|memory leak*|terraform|dockerfile"
    "|time complexity|space complexity|big o|this code|my code|following code|source code|code review|snippet"
    "|write a function|write a python|write a script|write a program|write a class|write a query|write a sql"
    "|write pytest|write unit|write a regex|write a bash|write a terraform|write code|write a program",
    es="código|función|funciones|implementa*|refactoriza*|depura*|consulta|expresión regular|algoritmo|complejidad",
    de="funktion|implementier*|algorithmus|laufzeit",
    fr="fonction|implémente*|algorithme",
    pt="função|algoritmo",
    ko="코드|함수|구현|리팩터링|리팩토링|디버그|디버깅|버그|쿼리|스크립트|정규표현식|정규식|알고리즘"
    "|시간 복잡도|시간복잡도|메모리 누수|데드락|비동기|테스트 코드|단위 테스트|테스트도",
    ja="コード|関数|実装|リファクタ|デバッグ|バグ|クエリ|スクリプト|正規表現|アルゴリズム|計算量|デッドロック|メモリリーク",
    zh="代码|函数|实现|重构|调试|查询|脚本|正则|算法|复杂度|单例|线程|内存泄漏|死锁",
)
_MATH_TERMS = _cues(
    en="integral*|derivative*|differentiat*|eigen*|matrix|matrices|probabilit*|expected value|expected number"
    "|equation|equations|theorem|lemma|polynomial*|modulo|combinatori*|permutation*|induction|solve for"
    "|converge*|variance|compound*|formula|closed form|irrational",
    es="derivada|matriz|probabilidad|ecuaci*|teorema|inducción|primos|fórmula|sistema",
    de="wahrscheinlichkeit|gleichung*|dreieck",
    fr="équation*|probabilité|angles",
    pt="equação|probabilidade",
    ko="적분|미분|도함수|고유값|고윳값|고유벡터|행렬|확률|기댓값|기대값|방정식|귀납법|다항식|복리|계산식|수열|나머지가|배수|무리수",
    ja="積分|微分|固有値|固有ベクトル|行列|確率|期待値|期待回数|方程式|定理|帰納法|無理数",
    zh="积分|导数|求导|特征值|矩阵|概率|期望|方程|定理|归纳|无理数|公式",
)
_PROOF = _cues(
    en="prove*|proof|derive|derivation|show that|demonstrate that",
    es="demuestra*|demostr*",
    de="beweise*|herleit*",
    fr="démontre*|prouve*",
    pt="demonstre",
    ko="증명|유도해|유도하|유도 과정",
    ja="証明|導出",
    zh="证明|推导",
)
_REASONING = _cues(
    en="step by step|compar*|versus|vs|trade off*|tradeoff*|pros and cons|design*|architect*|plan|planning"
    "|analy*|evaluat*|assess*|critique*|critici*|strateg*|root cause|investigat*|optimi*|scalab*|at scale"
    "|migrat*|roadmap|justify|implication*|consider*|in what order|scenario*|how would you|what would you"
    "|what could go wrong|edge case*|risk|risks|rather than|instead of|better to|better than|which would you"
    "|puzzle|riddle|how do you know|deduce|show the formula|show the derivation|show the calculation|show your work",
    es="paso a paso|diseñ*|arquitectura|analiza*|análisis|optimiza*|ventajas y desventajas|pros y contras"
    "|estrategia|planifica*|evalúa*|migración|escenarios|riesgos|muestra el cálculo|explica cada paso",
    de="schritt für schritt|vergleich*|entwirf|entwurf|analysier*|begründe*|nachteile",
    fr="étape par étape|conçois|conception|analyse*|compromis",
    pt="passo a passo|projet*|analise*|análise|riscos|plano",
    ko="단계별|단계적|차근차근|비교|설계|분석|최적화|장단점|장점과 단점|트레이드오프|전략|아키텍처|원인|검토|평가"
    "|계획|로드맵|마이그레이션|시나리오|근거|가설|우선순위|고려|방안|한계|비판|진단|리스크|위험|대응|풀이"
    "|과정을 보여|과정을 설명|측면",
    ja="ステップ|段階的|比較|設計|分析|最適化|戦略|トレードオフ|長所と短所|メリットとデメリット|原因|計画|評価|検討|観点"
    "|波及|対策|調査|解き方",
    zh="一步一步|逐步|分步|比较|对比|设计|分析|优化|架构|权衡|利弊|优缺点|策略|方案|选型|评估|规划|计划|根因|如何防止|复盘|步骤|方面",
)
_EXPLAIN = _cues(
    en="why|explain*|how does|how do|how can|what happens",
    es="por qué|explica*|cómo funciona",
    de="warum|erkläre*",
    fr="pourquoi|explique*",
    pt="por que|explique*",
    ko="왜|이유|설명|어떻게",
    ja="なぜ|理由|説明|どのように",
    zh="为什么|原因|解释|如何|怎样",
)
_LONG_OUTPUT = _cues(
    en="essay*|report|reports|detailed|in detail|comprehensive|in depth|thorough*|whitepaper|table|tables|chapter*"
    "|outline|business plan|section|sections|pages|prd|documentation|template",
    es="detallad*|en detalle|informe|ensayo|tabla|secciones|capítulos",
    de="ausführlich*|bericht|tabelle",
    fr="détaillé*|rapport|tableau",
    pt="detalhad*|relatório|tabela",
    ko="보고서|리포트|자세히|자세하게|상세|표로|표 형식|칼럼|에세이|문서|제안서|템플릿|서론|본론|결론|설계안",
    ja="詳しく|詳細|レポート|報告書|論文",
    zh="详细|报告|表格|文档|模板",
)
_CONSTRAINT_WORDS = _cues(
    en="must|should|without|at least|at most|ensure|requirement*|constraint*|including|covering",
    es="requisitos|debe|sin|incluye*|con secciones",
    ko="조건|요구사항|제약|포함|반드시|이내",
    ja="要件|条件|含め",
    zh="要求|条件|满足|包括",
)
_SIMPLE_TASK = _cues(
    en="translat*|how do you say|typo|typos|fix the grammar|correct the grammar|grammar and spelling|proofread*"
    "|spell*|rephrase|rewrite this sentence|rewrite the sentence|more polite|politer|more formal|shorten*|catchier"
    "|in one sentence|in a single sentence|one sentence|in two bullet*|tl dr|bullet point*|bulleted list|synonym*"
    "|antonym*|mean|stand for|classify|sentiment|extract the|turn this into|alphabetical order|plural of"
    "|past tense|capital of|how many|who wrote|who is|who was|who painted|who invented|when did|what year"
    "|time zone|convert|haiku|poem|birthday|reply to this|name ideas|recommend a|recommend an|recommend some"
    "|yes or no|which is bigger|difference between",
    es="tradu*|corrige|ortografía|sinónimo|reescribe|más formal|resume en|en una frase|cómo se dice|capital de"
    "|quién|cuántos|cuántas|cuánto es|felicita*|mensaje corto|es correcto decir|a qué hora",
    de="übersetze*|hauptstadt|wie sagt man",
    fr="fautes|comment dit on|traduis",
    pt="traduza|como se diz",
    ko="번역|영어로|일본어로|중국어로|한국어로|맞춤법|오타|띄어쓰기|교정|다듬어|공손하게|정중하게|존댓말|반말|요약"
    "|한 문장|한문장|한 줄|한줄|한마디|무슨 뜻|뜻이|수도는|며칠|언제|누구|추천해|짧게|답장|인사말|문자"
    "|순으로 정렬|가나다순|과거형|뭐야|뭐지|뭐였지|뭐예요|어디야"
    "|얼마나 걸려|골라 줘|골라줘|자기소개|몇 도|몇 분|몇 마일|몇 잔|몇 시간",
    ja="翻訳|英語に|英語で|韓国語で|日本語で|誤字|脱字|丁寧に|要約|一文で|何ですか|何と言|過去形|おすすめ|読み方|どれくらい|言うと",
    zh="翻译|翻成|译成|错别字|礼貌|总结|概括|一句话|是哪|什么意思|多少|怎么说|推荐",
)
_EXPERT_ROLE = _cues(
    en="senior|staff|principal|expert|architect|specialist|reviewer|engineer|scientist|mathematician|lawyer",
    es="experto|ingeniero|ingeniera",
    ko="시니어|전문가|아키텍트|엔지니어",
    ja="専門家|シニア|エンジニア",
    zh="专家|资深|工程师",
)
_SIMPLE_ROLE = _cues(
    en="translator|proofreader|customer service|customer support|receptionist|assistant of|only fix|friendly",
    es="traductor",
    ko="번역가|상담원|고객센터|교정",
    ja="翻訳者|親切",
    zh="客服",
)

# Structural patterns. Each alternation is split so every regex starts with a literal or a
# character set (sre then skips ahead in C) and runs only when a cheap substring test allows it.
_CODE_HINTS = (";", "{", "}", "def ", "class ", "import ", "function ", "return ", "func ", "fn ", "#include")
_CODE_LINE_START = re.compile(
    r"^[ \t]*(?:def |class |import |from [\w.]+ import|function |const |let |var |public |private |#include"
    r"|package |func |fn |return\b|if \(|for \(|while \()",
    re.MULTILINE,
)
_CODE_LINE_END = re.compile(r"[;{}][ \t]*$", re.MULTILINE)
_CODE_LITERALS = ("=>", "->", "::", "console.log", "print(", "</", "/>")
_CODE_CALL = re.compile(r"[a-z_]\.[a-z_]+\(")
_CODE_SELECT = re.compile(r"select\s+[\w*, .]+\s+from\b")
_CODE_INDEX = re.compile(r"\w\[\w*\]\s*=")
_TRACE_LITERALS = ("traceback (most recent call last)", "exception in thread", "panic:", "segmentation fault")
_TRACE_AT = re.compile(r"^\s+at [\w.$<>]+[ (]", re.MULTILINE)
_TRACE_ERROR = re.compile(r"[a-z](?:error|exception):")
_TRACE_LINE = re.compile(r"line \d+, in ")
_TRACE_FILE = re.compile(r"\.(?:java|jsx?|tsx?|py|go|rs):\d+")
_MATH_SYMBOL = re.compile(r"[∫∑∏√∞≤≥≠±∂∇∈∀∃≈θλσ^]")
_MATH_CALL = re.compile(r"\b(?:sin|cos|tan|ln|log|exp|lim|f)\s*\(\s*[a-z\d]")
_MATH_ASSIGN = re.compile(r"\b\d*[a-z]\s*=\s*-?\d")
_MATH_TERM = re.compile(r"\d[a-z]\s*[+\-]")
_LIST_LINE = re.compile(r"^[ \t]*(?:\d{1,2}[.)]|[-*•])[ \t]+\S", re.MULTILINE)
_LIST_INLINE = re.compile(r"(?<![\w(])\(?\d{1,2}\)[ \t]*\S")
_WORD_COUNT = re.compile(r"\d[\d,]{2,}\s*-?\s*(?:words?|palabras|wörter|mots|palavras|자|字|語|단어)")
_GREETING = re.compile(
    r"\W*(?:hi|hello|hey|yo|good (?:morning|afternoon|evening|night)|thanks?|thank you|thx|ok(?:ay)?|bye|cheers"
    r"|안녕|고마워|고맙|감사합니다|감사해요|주말 잘|수고|좋은 아침|こんにちは|こんばんは|おはよう|ありがとう|お疲れ"
    r"|你好|您好|谢谢|早上好|hola|gracias|muchas gracias|buen(?:os|as) (?:días|tardes|noches)"
    r"|guten (?:morgen|tag|abend)|hallo|danke|bonjour|salut|merci|olá|ola|obrigad[oa])(?![a-z])"
)
# Where the ask ends and pasted material begins: "Fix the typos: '...'" or "Summarize:\n\n...".
_QUOTE_AFTER_COLON = re.compile(r"[:：]\s*(?=['\"“「‘`(\[])")


def estimate_tokens(text: str) -> int:
    """Rough token count that does not undercount Korean, Japanese or Chinese.

    About 4 characters per token for Latin script, 0.8 tokens per CJK character. The
    CJK share comes from the UTF-8 length (a C-speed operation): 3 bytes for a CJK
    character, 2 for an accented Latin one, so no per-character Python loop.
    """
    n = len(text)
    if not n:
        return 0
    wide = (len(text.encode("utf-8", "surrogatepass")) - n) / 2
    return max(1, round((n - wide) / 4 + wide * 0.8))


@dataclass(frozen=True, slots=True)
class ComplexityScore:
    """How hard the request looks (0 = trivial, 1 = needs the strong tier) and why."""

    score: float
    signals: tuple[str, ...]


class ComplexityScorer:
    """Scores a ChatRequest from cues in its text and parameters; pure and thread-safe."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        merged = dict(DEFAULT_WEIGHTS)
        for name, value in (weights or {}).items():
            if name not in merged:
                raise ValueError(f"Unknown complexity weight '{name}'; known weights: {', '.join(sorted(merged))}.")
            merged[name] = float(value)
        self._weights = merged

    def score(self, request: ChatRequest) -> ComplexityScore:
        """Score the last user turn in the context of the whole request."""
        weights = self._weights
        logit = weights["bias"]
        reasons: list[tuple[float, str]] = []
        for name, value in self.features(request).items():
            contribution = weights[name] * value
            logit += contribution
            if abs(contribution) >= _SIGNAL_MIN:
                _, raises, lowers = _FEATURES[name]
                label = raises if contribution > 0 else lowers
                if label:
                    reasons.append((abs(contribution), label))
        reasons.sort(key=lambda r: -r[0])
        signals = tuple(dict.fromkeys(label for _, label in reasons))
        return ComplexityScore(score=round(1.0 / (1.0 + math.exp(-logit)), 4), signals=signals)

    @staticmethod
    def features(request: ChatRequest) -> dict[str, float]:
        """The raw feature values, exposed for evaluation and weight tuning."""
        last_user, earlier, system, images, user_turns = _split_messages(request.messages)
        text = _bounded(last_user).lower()
        for word in _FALSE_FRIENDS:
            if word in text:
                text = text.replace(word, " ")
        ask_text, material_text = _ask_and_material(text)
        ask, material = _prepare(ask_text), _prepare(material_text[:_SCAN_MATERIAL])
        f: dict[str, float] = {}

        code_lines = _code_lines(text)
        f["code_block"] = 1.0 if text.count("```") >= 2 or code_lines >= 3 else 0.0
        f["code_syntax"] = 1.0 if not f["code_block"] and (code_lines or _has_code_syntax(text)) else 0.0
        f["code_task"] = min(_CODE_TASK.count(ask) + 0.5 * _CODE_TASK.count(material), 1.0)
        f["stack_trace"] = 1.0 if _trace_markers(text) >= 2 else 0.0
        f["math_notation"] = min(_math_notation(text) / 2, 1.0)
        f["math_terms"] = min(_MATH_TERMS.count(ask), 2.0)
        f["proof"] = 1.0 if _PROOF.count(ask) else 0.0
        reasoning = _REASONING.count(ask) + 0.5 * _REASONING.count(material)
        f["reasoning"] = 0.0 if not reasoning else min(1.0 + 0.4 * (reasoning - 1), 2.0)
        f["explain"] = min(_EXPLAIN.count(ask), 2.0)
        long_output = _LONG_OUTPUT.count(ask) + (1 if _WORD_COUNT.search(ask_text) else 0)
        f["long_output"] = min(long_output, 2.0)
        f["constraints"] = min(_list_items(text) + _CONSTRAINT_WORDS.count(ask), 6.0)

        f["code_in_context"] = 1.0 if "```" in earlier or _trace_markers(earlier) >= 2 else 0.0
        strong_cue = any(
            f[k]
            for k in ("code_block", "code_task", "stack_trace", "proof", "reasoning", "long_output", "code_in_context")
        )
        simple = _SIMPLE_TASK.count(ask) > 0
        f["simple_task"] = 1.0 if simple else 0.0
        tokens = estimate_tokens(last_user)
        f["greeting"] = 1.0 if tokens <= 20 and not strong_cue and _GREETING.match(text) else 0.0
        length = max(-1.0, min(1.0, math.log2(max(tokens, 1) / 48) / 2.5))
        if length > 0 and simple and not strong_cue:
            length *= 0.3  # a long paste under "fix the typos" is still a simple job
        elif length < 0 and strong_cue:
            length *= 0.5  # "Prove that sqrt(2) is irrational." is short, not simple
        f["prompt_length"] = length

        f["conversation"] = min(max(user_turns - 1, 0), 4) / 4
        f["system_role"] = _system_role(system)
        f["images"] = min(images, 2) / 2

        params = request.params
        f["max_tokens"] = _max_tokens_value(params.get("max_tokens") or params.get("max_completion_tokens"))
        f["structured_output"] = _structured_output_value(params.get("response_format"))
        tools = params.get("tools") or params.get("functions") or ()
        f["tools"] = (1.3 if len(tools) > 5 else 1.0) if tools else 0.0
        return f


def _code_lines(text: str) -> int:
    if not any(hint in text for hint in _CODE_HINTS):
        return 0
    return len(_CODE_LINE_START.findall(text)) + len(_CODE_LINE_END.findall(text))


def _has_code_syntax(text: str) -> bool:
    return (
        any(literal in text for literal in _CODE_LITERALS)
        or ("(" in text and _CODE_CALL.search(text) is not None)
        or ("select" in text and _CODE_SELECT.search(text) is not None)
        or ("]" in text and _CODE_INDEX.search(text) is not None)
    )


def _trace_markers(text: str) -> int:
    """How many different kinds of stack-trace line the text has; two or more is a trace."""
    n = sum(1 for literal in _TRACE_LITERALS if literal in text)
    if " at " in text:
        n += _TRACE_AT.search(text) is not None
    if "error:" in text or "exception:" in text:
        n += _TRACE_ERROR.search(text) is not None
    if ", in " in text:
        n += _TRACE_LINE.search(text) is not None
    if ":" in text:
        n += _TRACE_FILE.search(text) is not None
    return n


def _math_notation(text: str) -> int:
    """Distinct mathematical symbols and formula shapes (x^2, f(x), 2x + 3y, x = 5)."""
    n = len(set(_MATH_SYMBOL.findall(text)))
    n += "sqrt" in text
    n += " dx" in text or " dy" in text
    if "(" in text:
        n += _MATH_CALL.search(text) is not None
    if "=" in text:
        n += _MATH_ASSIGN.search(text) is not None
    if "+" in text or "-" in text:
        n += _MATH_TERM.search(text) is not None
    return n


def _list_items(text: str) -> int:
    n = len(_LIST_LINE.findall(text)) if "\n" in text else 0
    return n + (len(_LIST_INLINE.findall(text)) if ")" in text else 0)


def _prepare(text: str) -> _Text:
    words = _WORD.findall(text)
    wide = not text.isascii()
    return _Text(
        raw=text,
        words=frozenset(words),
        spaced=f" {' '.join(words)} ",
        hangul=wide and _HANGUL.search(text) is not None,
        han_kana=wide and _HAN_KANA.search(text) is not None,
    )


def _bounded(text: str) -> str:
    """The part of a huge prompt worth scanning: its head (the ask) and its tail (the question)."""
    if len(text) <= _SCAN_HEAD + _SCAN_TAIL:
        return text
    return text[:_SCAN_HEAD] + "\n" + text[-_SCAN_TAIL:]


def _text_of(content: Any) -> tuple[str, int]:
    """Text and image count of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    images = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") in ("image_url", "input_image", "image"):
            images += 1
    return "\n".join(texts), images


def _split_messages(messages: list[dict[str, Any]]) -> tuple[str, str, str, int, int]:
    """Last user turn, the four turns before it (bounded), system prompt, image count, user-turn count."""
    last_index = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), -1)
    last_user = ""
    system_parts: list[str] = []
    earlier_parts: list[str] = []
    images = user_turns = 0
    for i, message in enumerate(messages):
        role = message.get("role")
        text, n_images = _text_of(message.get("content"))
        images += n_images
        if i == last_index:
            last_user = text
        if role in ("system", "developer"):
            system_parts.append(text)
            continue
        if role == "user":
            user_turns += 1
        if i != last_index and i >= last_index - 4:
            earlier_parts.append(text)
    earlier = _bounded("\n".join(earlier_parts)).lower()
    return last_user, earlier, "\n".join(system_parts)[:_SCAN_HEAD].lower(), images, user_turns


def _ask_and_material(text: str) -> tuple[str, str]:
    """Split the ask from what it applies to, so the words of a pasted paragraph are not the ask.

    A short question on the last line, after the material, is part of the ask too.
    """
    newline = text.find("\n")
    quoted = _QUOTE_AFTER_COLON.search(text, 0, newline if newline >= 0 else len(text))
    start, end = (quoted.start(), quoted.end()) if quoted else (newline, newline + 1)
    if start < 8:
        return text, ""
    ask, material = text[:start], text[end:]
    head, _, last = material.rstrip().rpartition("\n")
    if head and last.rstrip().endswith(("?", "？")) and len(last) < 200:
        return ask + "\n" + last, head
    return ask, material


def _system_role(system: str) -> float:
    """+1 for an expert persona, -1 for a translator or help-desk one; long agent prompts lean complex."""
    if not system:
        return 0.0
    prepared = _prepare(system)
    value = (1.0 if _EXPERT_ROLE.count(prepared) else 0.0) - (1.0 if _SIMPLE_ROLE.count(prepared) else 0.0)
    if estimate_tokens(system) > 1500:
        value += 0.5
    return max(-1.0, min(1.0, value))


def _max_tokens_value(value: Any) -> float:
    try:
        limit = int(value)
    except (TypeError, ValueError):
        return 0.0
    if limit >= 4000:
        return 1.0
    if limit >= 2000:
        return 0.6
    if limit <= 64:
        return -1.0
    return -0.5 if limit <= 256 else 0.0


def _structured_output_value(response_format: Any) -> float:
    if not isinstance(response_format, dict):
        return 0.0
    kind = response_format.get("type")
    if kind == "json_object":
        return 0.4
    if kind != "json_schema":
        return 0.0
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return 1.5 if isinstance(properties, dict) and len(properties) > 8 else 1.0
