"""Done-when: a user uploads documents, asks "summarize the report I uploaded last week"
with two candidate reports, gets a choice, picks one and receives an answer citing it —
over /api and through the OpenAI API (the real `openai` client); and a member of another
team is denied the collection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from sqlalchemy import update

from aiport.store.knowledge import Document
from tests.apps.harness import World
from tests.conftest import Gateway
from tests.knowledge.conftest import upload
from tests.support.fake_openai import FakeOpenAI

SALES = b"""# Q3 Sales Report

## Results

Revenue grew 18% to 4.2 million dollars, driven by the enterprise plan in Korea.

## Risks

Churn in the small-business segment rose to 3.1%.
"""
MARKETING = b"""# Q3 Marketing Report

## Campaigns

The autumn webinar series brought 1,900 sign-ups at a cost of 12 dollars per lead.
"""
NOTES = b"Team lunch is on Friday at noon. Bring your own cup."


def _backdate(gw: Gateway, doc_id: str, days: float) -> None:
    async def go() -> None:
        async with gw.runtime.sessions() as session, session.begin():
            when = datetime.now(UTC) - timedelta(days=days)
            await session.execute(update(Document).where(Document.id == doc_id).values(created_at=when))

    gw.server.run(go())


@pytest.fixture(scope="module")
def library(world: World) -> dict[str, Any]:
    """a_member's private collection with two reports from last week and yesterday's notes,
    plus team A's shared collection."""
    gw = world.gateway
    with world.client("a_member") as c:
        col = c.post("/api/knowledge/collections", json={"name": "My documents"}).json()
        docs = {}
        for name, data, age in (
            ("q3-sales-report.md", SALES, 6),
            ("q3-marketing-report.md", MARKETING, 5),
            ("lunch.txt", NOTES, 1),
        ):
            r = upload(c, col["id"], name, data)
            assert r.status_code == 201, r.text
            docs[name] = r.json()
            _backdate(gw, r.json()["id"], age)
        team = c.post(
            "/api/knowledge/collections", json={"name": "Team A wiki", "visibility": "team", "team_id": world.team_a}
        )
        assert team.status_code == 201, team.text
        r = upload(c, team.json()["id"], "wiki.md", b"# Wiki\n\nThe deploy password rotates every 30 days.")
        assert r.status_code == 201, r.text
    return {"col": col, "docs": docs, "team_col": team.json()}


def test_ask_back_then_answer_with_citation(world: World, library: dict[str, Any], fake_upstream: FakeOpenAI) -> None:
    gw = world.gateway
    sales = library["docs"]["q3-sales-report.md"]
    with world.client("a_member") as c:
        before = len(fake_upstream.requests)
        r = c.post(
            "/api/knowledge/ask",
            json={"message": "Summarize the report I uploaded last week", "model": "echo",
                  "collection_ids": [library["col"]["id"]]},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "clarification"
        assert len(fake_upstream.requests) == before  # the model was not called
        clar = body["clarification"]
        labels = [ch["label"] for ch in clar["choices"]]
        assert any(label.startswith("Q3 Sales Report (") for label in labels)
        assert any(label.startswith("Q3 Marketing Report (") for label in labels)
        assert not any("lunch" in label.lower() for label in labels)  # not a report, not last week
        assert clar["choices"][-1]["kind"] == "other" and 3 <= len(clar["choices"]) <= 5
        pick = next(ch for ch in clar["choices"] if ch["label"].startswith("Q3 Sales Report"))

        r = c.post(f"/api/knowledge/clarifications/{clar['id']}/resolve", json={"choice": pick["id"]})
        assert r.status_code == 200, r.text
        answer = r.json()
    assert answer["object"] == "knowledge.answer"
    assert answer["parent_request_id"] == body["request_id"]
    assert answer["citations"] and {c["document_id"] for c in answer["citations"]} == {sales["id"]}
    assert answer["citations"][0]["number"] == 1 and answer["citations"][0]["title"] == "Q3 Sales Report"
    sent = fake_upstream.requests[-1]["messages"]
    sources = next(m["content"] for m in sent if m["role"] == "system" and "[1]" in m["content"])
    assert "Revenue grew 18%" in sources and "webinar" not in sources
    assert "the document 'Q3 Sales Report'" in sent[-1]["content"]  # the choice is explicit in the prompt

    # the audit log links both steps
    gw.flush()
    with world.client("owner") as c:
        logs = {row["request_id"]: row for row in c.get("/api/admin/logs", params={"limit": 500}).json()["data"]}
        asked, resumed = logs[body["request_id"]], logs[answer["request_id"]]
        assert asked["finish_reason"] == "clarification" and asked["status"] == "ok"
        detail = c.get(f"/api/admin/logs/{resumed['id']}").json()
    assert detail["parent_request_id"] == body["request_id"]

    # the process trace shows the retrieval of the chosen document
    with world.client("a_member") as c:
        trace = c.get(f"/api/traces/{answer['request_id']}").json()
    names = [s["name"] for s in trace["spans"]]
    assert "retrieval" in names and "model" in names
    retrieval = next(s for s in trace["spans"] if s["name"] == "retrieval")
    assert retrieval["args"] == {"document_id": sales["id"]} and retrieval["status"] == "ok"

    # answering twice is refused
    with world.client("a_member") as c:
        again = c.post(f"/api/knowledge/clarifications/{clar['id']}/resolve", json={"choice": pick["id"]})
    assert again.status_code == 409


def test_korean_request_through_the_openai_client(world: World, library: dict[str, Any]) -> None:
    client = openai.OpenAI(base_url=world.gateway.url + "/v1", api_key=world.a_member.key, max_retries=0)
    first = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "지난주에 올린 보고서 요약해줘"}],
        extra_body={"aiport": {"collections": [library["col"]["id"]]}},
    )
    choice = first.choices[0]
    assert choice.finish_reason == "clarification"
    clar = (choice.message.model_extra or {})["clarification"]
    assert clar["question"] == choice.message.content and "어느 문서" in clar["question"]
    marketing = next(ch for ch in clar["choices"] if ch["label"].startswith("Q3 Marketing Report"))
    assert "년" in marketing["label"]  # Korean date

    second = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "(resume)"}],
        extra_body={"aiport": {"resume": {"clarification_id": clar["id"], "choice": marketing["id"]}}},
    )
    message = second.choices[0].message
    citations = (message.model_extra or {})["citations"]
    assert citations and citations[0]["title"] == "Q3 Marketing Report"
    assert second.choices[0].finish_reason == "stop"


def test_member_of_another_team_is_denied(world: World, library: dict[str, Any]) -> None:
    team_col = library["team_col"]["id"]
    private_col = library["col"]["id"]
    with world.client("b_member") as c:
        for col in (team_col, private_col):
            assert c.get(f"/api/knowledge/collections/{col}").status_code == 404
            r = c.post("/api/knowledge/search", json={"query": "deploy password", "collection_ids": [col]})
            assert r.status_code == 404 and r.json()["error"]["param"] == "collection_id"
            r = c.post("/api/knowledge/ask", json={"message": "deploy password?", "model": "echo",
                                                   "collection_ids": [col]})  # fmt: skip
            assert r.status_code == 404
            assert upload(c, col, "x.txt", b"intrusion").status_code == 404
        listed = {x["id"] for x in c.get("/api/knowledge/collections").json()["data"]}
        assert team_col not in listed and private_col not in listed
        # searching "everything I can see" never returns team A's text
        hits = c.post("/api/knowledge/search", json={"query": "deploy password rotates"}).json()["data"]
        assert all("deploy password" not in h["text"] for h in hits)
    with world.client("a_admin") as c:  # a team A member (admin) reads it
        hits = c.post("/api/knowledge/search", json={"query": "deploy password", "collection_ids": [team_col]})
        assert hits.status_code == 200 and "rotates every 30 days" in hits.json()["data"][0]["text"]
        assert c.get(f"/api/knowledge/collections/{private_col}").status_code == 404  # someone else's private one


def test_the_same_as_before_offers_recent_conversations(
    world: World, library: dict[str, Any], fake_upstream: FakeOpenAI
) -> None:
    with world.client("a_member") as c:
        app = {"name": "Weekly", "slug": "kn-weekly", "model": "echo"}
        assert c.post("/api/apps", json={"definition": app, "publish": True}).status_code == 201
        run = c.post("/api/apps/kn-weekly/runs", json={"message": "Draft the weekly update for the platform team"})
        assert run.status_code == 200, run.text
        conversation_id = run.json()["conversation_id"]
        r = c.post("/api/knowledge/ask", json={"message": "Do the same as before", "model": "echo",
                                               "collection_ids": [library["col"]["id"]]})  # fmt: skip
        clar = r.json()["clarification"]
        assert clar["kind"] == "missing_referent"
        pick = next(ch for ch in clar["choices"] if ch["kind"] == "conversation")
        assert pick["label"].startswith("Conversation: Draft the weekly update")
        assert pick["value"]["conversation_id"] == conversation_id
        answer = c.post(f"/api/knowledge/clarifications/{clar['id']}/resolve", json={"choice": pick["id"]}).json()
    assert answer["object"] == "knowledge.answer"
    sent = fake_upstream.requests[-1]["messages"]
    earlier = next(m["content"] for m in sent if m["role"] == "system" and "earlier conversation" in m["content"])
    assert "user: Draft the weekly update for the platform team" in earlier
    assert "(Clarified: the earlier conversation 'Draft the weekly update" in sent[-1]["content"]
    with world.client("b_member") as c:  # someone else's conversation is never offered nor readable
        r = c.post("/api/knowledge/ask", json={"message": "Do the same as before", "model": "echo"})
        choices = r.json().get("clarification", {}).get("choices", [])
        assert all(ch["value"] is None or ch["value"].get("conversation_id") != conversation_id for ch in choices)


def test_an_app_run_asks_back_in_its_conversation_and_goes_on_with_the_choice(
    world: World, library: dict[str, Any], fake_upstream: FakeOpenAI
) -> None:
    """The chat UI's path: the app with knowledge asks "which report?" in the conversation,
    the person picks one, and the run goes on grounded in it — bad answers change nothing."""
    sales = library["docs"]["q3-sales-report.md"]
    with world.client("a_member") as c:
        app = {"name": "Reports", "slug": "kn-reports", "model": "echo", "knowledge": [library["col"]["id"]]}
        assert c.post("/api/apps", json={"definition": app, "publish": True}).status_code == 201
        before = len(fake_upstream.requests)
        with c.stream("POST", "/api/apps/kn-reports/runs",
                      json={"message": "Summarize the report I uploaded last week", "stream": True}) as s:  # fmt: skip
            events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
        assert len(fake_upstream.requests) == before  # asked back: no model call
        header, question, end = events
        assert question["object"] == "app.run.clarification" and question["kind"] in (
            "close_candidates",
            "missing_referent",
        )
        assert end == {"object": "app.run.end", "status": "clarification", "message_id": header["assistant_message_id"]}
        conv_id, clar_id = header["conversation_id"], question["id"]
        url = f"/api/conversations/{conv_id}/clarifications/{clar_id}"

        shown = c.get(f"/api/conversations/{conv_id}").json()["messages"]
        assert [m["status"] for m in shown] == ["complete", "clarification"]
        assert shown[1]["content"] == question["question"] and shown[1]["clarification"]["resolved"] is False
        assert shown[1]["clarification"]["choices"] == question["choices"]

        assert c.post(url, json={"choice": "c99"}).status_code == 422  # not one of the choices
        other = next(ch for ch in question["choices"] if ch["kind"] == "other")
        assert c.post(url, json={"choice": other["id"]}).json()["error"]["param"] == "text"
        elsewhere = c.post("/api/apps/kn-reports/runs", json={"message": "hello"}).json()["conversation_id"]
        assert (
            c.post(f"/api/conversations/{elsewhere}/clarifications/{clar_id}", json={"choice": "c1"}).status_code == 404
        )
        assert len(c.get(f"/api/conversations/{conv_id}").json()["messages"]) == 2  # nothing was written

        pick = next(ch for ch in question["choices"] if ch["label"].startswith("Q3 Sales Report"))
        r = c.post(url, json={"choice": pick["id"]})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == "complete" and answer["conversation_id"] == conv_id
        assert {x["document_id"] for x in answer["citations"]} == {sales["id"]}
        assert "the document 'Q3 Sales Report'" in fake_upstream.requests[-1]["messages"][-1]["content"]
        assert c.post(url, json={"choice": pick["id"]}).status_code == 409  # answered once

        turns = c.get(f"/api/conversations/{conv_id}").json()["messages"]
    assert [(m["role"], m["status"]) for m in turns] == [
        ("user", "complete"), ("assistant", "clarification"), ("user", "complete"), ("assistant", "complete"),
    ]  # fmt: skip
    assert turns[1]["clarification"]["resolved"] is True and turns[2]["content"] == pick["label"]
    assert turns[3]["content"].startswith("echo: ")


def test_an_app_run_contradicting_its_form_is_asked_back(world: World) -> None:
    definition = {
        "name": "Notes", "slug": "kn-notes", "kind": "generator", "model": "echo",
        "variables": [{"name": "tone", "label": "tone", "type": "select", "options": ["formal", "casual"],
                       "default": "formal", "required": True}],
        "system_prompt": "Write in a {{ tone }} tone.",
    }  # fmt: skip
    with world.client("a_member") as c:
        assert c.post("/api/apps", json={"definition": definition, "publish": True}).status_code == 201
        r = c.post(
            "/api/apps/kn-notes/runs", json={"inputs": {"tone": "formal"}, "message": "Reply to Jae, make it casual"}
        )
        asked = r.json()
        assert asked["status"] == "clarification" and asked["clarification"]["kind"] == "form_variable"
        casual = next(ch for ch in asked["clarification"]["choices"] if ch["label"] == "casual")
        url = f"/api/conversations/{asked['conversation_id']}/clarifications/{asked['clarification']['id']}"
        with c.stream("POST", url, json={"choice": casual["id"], "stream": True}) as s:
            text = "".join(s.iter_text())
        assert '"app.run.end"' in text and '"status":"complete"' in text
        conversation = c.get(f"/api/conversations/{asked['conversation_id']}").json()
        assert conversation["inputs"]["tone"] == "casual"  # later turns keep the choice
        plain = c.post("/api/apps/kn-notes/runs", json={"inputs": {"tone": "casual"}, "message": "Reply to Jae"})
        assert plain.json()["status"] == "complete"  # no contradiction: no question
