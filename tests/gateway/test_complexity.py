"""The complexity scorer behind `auto`: accuracy on the labeled set, and the behaviour the router relies on.

Accuracy floors sit a few prompts below the measured numbers (bench/router_eval.py), so a
cue change that misroutes several more prompts fails here, while one borderline prompt
moving does not. Latency is measured by the benchmark, not asserted here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiport.domain.chat import ChatRequest
from aiport.gateway.complexity import (
    DEFAULT_THRESHOLD,
    DEFAULT_WEIGHTS,
    ComplexityScore,
    ComplexityScorer,
    estimate_tokens,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "routing" / "prompts.jsonl"

# Measured at the default threshold: test 156/161 = 0.969, Korean test 45/50 = 0.90,
# dev (the split the cues were tuned on) 113/113. Always answering one class scores about 0.5.
TEST_ACCURACY_FLOOR = 0.90  # room for about 6 more misroutes out of 161
KOREAN_TEST_ACCURACY_FLOOR = 0.85  # room for 2 more out of 50
DEV_ACCURACY_FLOOR = 0.95
TEST_COMPLEX_RECALL_FLOOR = 0.88  # complex prompts on the cheap tier are the costly mistake


def request(prompt: str, system: str | None = None, **params: Any) -> ChatRequest:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return ChatRequest(model="auto", messages=messages, params=params)


def load_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


ROWS = load_rows()
SCORER = ComplexityScorer()


def accuracy(rows: list[dict[str, Any]]) -> float:
    right = 0
    for row in rows:
        score = SCORER.score(request(row["prompt"], row.get("system"), **(row.get("params") or {}))).score
        right += ("complex" if score >= DEFAULT_THRESHOLD else "simple") == row["label"]
    return right / len(rows)


# --- the labeled set itself -------------------------------------------------------------


def test_labeled_set_is_large_balanced_multilingual_and_split() -> None:
    assert len(ROWS) >= 240
    labels = Counter(r["label"] for r in ROWS)
    assert set(labels) == {"simple", "complex"}
    assert 0.4 <= labels["complex"] / len(ROWS) <= 0.6
    languages = Counter(r["lang"] for r in ROWS)
    assert languages["ko"] >= 70
    assert {"en", "ko", "ja", "zh", "es"} <= set(languages)
    splits = Counter(r["split"] for r in ROWS)
    assert set(splits) == {"dev", "test"} and splits["test"] > splits["dev"]
    assert len({r["prompt"] for r in ROWS}) == len(ROWS), "duplicate prompts"
    for split in ("dev", "test"):
        assert {r["label"] for r in ROWS if r["split"] == split and r["lang"] == "ko"} == {"simple", "complex"}


# --- accuracy ---------------------------------------------------------------------------


def test_accuracy_on_the_held_out_test_split() -> None:
    assert accuracy([r for r in ROWS if r["split"] == "test"]) >= TEST_ACCURACY_FLOOR


def test_accuracy_on_korean_test_prompts() -> None:
    assert accuracy([r for r in ROWS if r["split"] == "test" and r["lang"] == "ko"]) >= KOREAN_TEST_ACCURACY_FLOOR


def test_accuracy_on_the_dev_split() -> None:
    assert accuracy([r for r in ROWS if r["split"] == "dev"]) >= DEV_ACCURACY_FLOOR


def test_recall_of_complex_prompts_on_the_test_split() -> None:
    complex_rows = [r for r in ROWS if r["split"] == "test" and r["label"] == "complex"]
    assert accuracy(complex_rows) >= TEST_COMPLEX_RECALL_FLOOR


# --- behaviour the router and the audit record rely on ----------------------------------


@pytest.mark.parametrize("greeting", ["hi", "Hello!", "thanks!", "안녕!", "고마워요", "ありがとう", "你好", "¡Hola!"])
def test_greetings_are_simple(greeting: str) -> None:
    scored = SCORER.score(request(greeting))
    assert scored.score < 0.1
    assert "greeting" in scored.signals


@pytest.mark.parametrize(
    "prompt",
    [
        "Why is this slow?\n```python\nfor row in rows:\n    db.execute('SELECT * FROM t WHERE id = %s', row)\n```",
        "이 함수가 None을 반환하는 이유가 뭐야?\n```python\ndef find(xs, k):\n    for x in xs:\n        if x == k:\n"
        "            return x\n```",
        "Implement a trie in TypeScript with insert, search and startsWith.",
        "Fix this:\nTraceback (most recent call last):\n  File \"main.py\", line 3, in <module>\nKeyError: 'user'",
    ],
)
def test_code_and_stack_traces_are_complex(prompt: str) -> None:
    scored = SCORER.score(request(prompt))
    assert scored.score >= DEFAULT_THRESHOLD
    assert {"code block", "code", "stack trace"} & set(scored.signals)


@pytest.mark.parametrize(
    ("prompt", "signal"),
    [
        ("Prove that there are infinitely many primes of the form 4k+3.", "proof"),
        ("세 점 A, B, C가 한 직선 위에 있지 않을 때 삼각형 내각의 합이 180도임을 증명해 줘.", "proof"),
        ("Compare gRPC and REST for internal service calls and recommend one for a 30-service system.", "multi-step"),
        ("물류 창고 재고 관리 시스템의 아키텍처를 설계하고 장단점을 분석해 줘.", "multi-step"),
        ("Write a detailed 3000-word report on battery recycling with sections and a table of sources.", "long output"),
    ],
)
def test_reasoning_proofs_and_long_output_are_complex(prompt: str, signal: str) -> None:
    scored = SCORER.score(request(prompt))
    assert scored.score >= DEFAULT_THRESHOLD
    assert signal in scored.signals


@pytest.mark.parametrize(
    "prompt",
    [
        "What's the capital of Canada?",
        "Translate 'see you tomorrow' into Korean.",
        "이 문장 맞춤법 좀 봐 줘: '내일 뵈요.'",
        "재직증명서는 어디서 발급받아?",  # contains 증명 (proof) but means "certificate"
        "「おやすみ」を英語で言うと？",
    ],
)
def test_short_everyday_requests_are_simple(prompt: str) -> None:
    assert SCORER.score(request(prompt)).score < DEFAULT_THRESHOLD


def test_a_long_paste_under_a_simple_instruction_stays_simple() -> None:
    paragraph = (
        "Our quarterly offsite will take place in Busan from the 14th to the 16th. Please book your train "
        "tickets before friday, and send your receipts to finance within two weeks of the trip. "
    ) * 12
    scored = SCORER.score(request(f"Fix the typos in this text, change nothing else:\n\n{paragraph}"))
    assert estimate_tokens(paragraph) > 400
    assert scored.score < DEFAULT_THRESHOLD
    assert "simple task" in scored.signals


def test_tools_json_schema_and_large_max_tokens_raise_the_score() -> None:
    prompt = "List the action items from the meeting notes."
    base = SCORER.score(request(prompt)).score
    tool = {"type": "function", "function": {"name": "create_ticket", "parameters": {"type": "object"}}}
    with_tools = SCORER.score(request(prompt, tools=[tool]))
    schema = {"type": "json_schema", "json_schema": {"name": "items", "schema": {"type": "object", "properties": {}}}}
    with_schema = SCORER.score(request(prompt, response_format=schema))
    with_budget = SCORER.score(request(prompt, max_tokens=8000))
    assert with_tools.score > base and "tools" in with_tools.signals
    assert with_schema.score > base and "structured output" in with_schema.signals
    assert with_budget.score > base and "large max_tokens" in with_budget.signals
    assert SCORER.score(request(prompt, max_tokens=32)).score < base


def test_an_expert_system_prompt_raises_and_a_help_desk_one_lowers_the_score() -> None:
    prompt = "What do you think about our plan to cache sessions in the browser?"
    base = SCORER.score(request(prompt)).score
    assert SCORER.score(request(prompt, system="You are a senior security engineer.")).score > base
    assert SCORER.score(request(prompt, system="You are a friendly customer support agent.")).score < base


def test_a_follow_up_on_code_earlier_in_the_conversation_counts_as_code() -> None:
    messages = [
        {
            "role": "user",
            "content": "```go\nfunc Sum(xs []int) int {\n\ts := 0\n\tfor _, x := range xs {\n"
            "\t\ts += x\n\t}\n\treturn s\n}\n```",
        },
        {"role": "assistant", "content": "This sums a slice of ints."},
        {"role": "user", "content": "now make it generic"},
    ]
    alone = SCORER.score(request("now make it generic"))
    scored = SCORER.score(ChatRequest(model="auto", messages=messages))
    assert scored.score >= DEFAULT_THRESHOLD > alone.score
    assert "code in conversation" in scored.signals


def test_content_parts_and_images_are_read() -> None:
    parts = [
        {"type": "text", "text": "Prove that the diagonal of this unit square has length sqrt(2)."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    scored = SCORER.score(ChatRequest(model="auto", messages=[{"role": "user", "content": parts}]))
    assert scored.score >= DEFAULT_THRESHOLD
    assert "images" in scored.signals and "proof" in scored.signals


def test_scores_are_deterministic_and_do_not_depend_on_the_instance() -> None:
    req = request("단계별로 설명해 줘: 왜 해시 테이블의 평균 조회 시간이 O(1)인지, 최악의 경우는 언제인지.")
    first = SCORER.score(req)
    assert all(SCORER.score(req) == first for _ in range(20))
    assert ComplexityScorer().score(req) == first
    assert isinstance(first, ComplexityScore) and all(isinstance(s, str) for s in first.signals)


def test_every_labeled_prompt_scores_within_zero_and_one() -> None:
    for row in ROWS:
        assert 0.0 <= SCORER.score(request(row["prompt"], row.get("system"))).score <= 1.0


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "You are terse."}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": [{"type": "text"}, "junk", {"type": "image_url"}]}],
        [{"role": "user", "content": "x" * 300_000}],
        [{"role": "user", "content": "가" * 100_000}],
    ],
)
def test_odd_requests_still_get_a_score(messages: list[dict[str, Any]]) -> None:
    scored = SCORER.score(ChatRequest(model="auto", messages=messages, params={"max_tokens": "lots", "tools": []}))
    assert 0.0 <= scored.score <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.sampled_from([None, 16, 512, 9000]))
def test_any_text_scores_within_zero_and_one(text: str, max_tokens: int | None) -> None:
    score = SCORER.score(request(text, max_tokens=max_tokens)).score
    assert 0.0 <= score <= 1.0


def test_weights_can_be_overridden_and_unknown_names_are_refused() -> None:
    always_strong = ComplexityScorer({"bias": 20.0})
    assert always_strong.score(request("hi")).score > 0.99
    no_greeting = ComplexityScorer({"greeting": 0.0})
    assert no_greeting.score(request("hi")).score > SCORER.score(request("hi")).score
    with pytest.raises(ValueError, match="known weights"):
        ComplexityScorer({"vibes": 1.0})
    assert DEFAULT_WEIGHTS["bias"] < 0 and DEFAULT_THRESHOLD == 0.5


def test_token_estimate_counts_cjk_characters_closer_to_one_token_each() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 400) == 100
    assert 70 <= estimate_tokens("가" * 100) <= 90
    assert estimate_tokens("데이터베이스 인덱스") > estimate_tokens("db index")
