"""Apps attach collections and tools: `model="app:<slug>"` on the OpenAI API retrieves with
the caller's own access (a member of another team gets nothing from team A's collection)
and runs the agent loop with the app's tools. The admin record shows the trace."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.apps.harness import World
from tests.knowledge.conftest import upload
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def team_app(world: World) -> dict[str, Any]:
    with world.client("a_admin") as c:
        col = c.post("/api/knowledge/collections", json={"name": "A handbook", "visibility": "team",
                                                        "team_id": world.team_a}).json()  # fmt: skip
        r = upload(
            c, col["id"], "oncall.md", b"# On-call\n\n## Pager\n\nThe pager rotation changes every Monday at 10:00."
        )
        assert r.status_code == 201, r.text
    with world.client("owner") as c:  # an org-wide app that attaches team A's collection
        definition = {"name": "Helper", "slug": "kn-helper", "model": "echo", "knowledge": [col["id"]],
                      "system_prompt": "Be brief."}  # fmt: skip
        r = c.post("/api/apps", json={"definition": definition, "sharing": {"visibility": "org"}, "publish": True})
        assert r.status_code == 201, r.text
        agent = {"name": "Calc", "slug": "kn-calc", "kind": "agent", "model": "agent", "tools": ["calculator"]}
        r = c.post("/api/apps", json={"definition": agent, "sharing": {"visibility": "org"}, "publish": True})
        assert r.status_code == 201, r.text
        bad = {**agent, "slug": "kn-bad", "tools": ["shell"], "knowledge": ["not-an-id"]}
        r = c.post("/api/apps", json={"definition": bad})
        assert r.status_code == 422 and "tools[0]" in r.text and "knowledge[0]" in r.text
    return col


def _client(world: World, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.gateway.url + "/v1", api_key=world.people[who].key, max_retries=0)


def test_app_answers_with_citations_from_its_collection(
    world: World, team_app: dict[str, Any], fake_upstream: FakeOpenAI
) -> None:
    out = _client(world, "a_member").chat.completions.create(
        model="app:kn-helper", messages=[{"role": "user", "content": "When does the pager rotation change?"}]
    )
    citations = (out.choices[0].message.model_extra or {})["citations"]
    assert citations[0]["title"] == "On-call" and citations[0]["collection_id"] == team_app["id"]
    sent = fake_upstream.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert "[1] On-call — On-call > Pager" in sent[1]["content"]


def test_member_of_another_team_gets_nothing_from_it(world: World, fake_upstream: FakeOpenAI) -> None:
    out = _client(world, "b_member").chat.completions.create(
        model="app:kn-helper", messages=[{"role": "user", "content": "When does the pager rotation change?"}]
    )
    assert (out.choices[0].message.model_extra or {})["citations"] == []
    assert not any("pager rotation changes" in str(m["content"]) for m in fake_upstream.requests[-1]["messages"])


def test_agent_app_uses_its_tools_and_the_admin_sees_the_trace(world: World) -> None:
    out = _client(world, "b_member").chat.completions.create(
        model="app:kn-calc", messages=[{"role": "user", "content": 'use calculator {"expression": "12*12"}'}]
    )
    assert out.choices[0].message.content == "final: 144"
    request_id = out.id.removeprefix("chatcmpl-")
    world.gateway.flush()
    with world.client("owner") as c:
        rows = c.get("/api/admin/logs", params={"limit": 50}).json()["data"]
        row = next(r for r in rows if r["request_id"].endswith(request_id))
        detail = c.get(f"/api/admin/logs/{row['id']}").json()
    names = [s["name"] for s in detail["trace"]]
    assert "tool:calculator" in names and "model step 1" in names


def test_streaming_relays_the_grounded_answer_as_it_comes_with_citations_first(
    world: World, team_app: dict[str, Any]
) -> None:
    stream = _client(world, "a_member").chat.completions.create(
        model="app:kn-helper", stream=True, messages=[{"role": "user", "content": "pager rotation this week?"}]
    )
    chunks = list(stream)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and (first.model_extra or {})["citations"][0]["title"] == "On-call"
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(words) > 3 and "".join(words) == "echo: pager rotation this week?"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all("citations" not in (c.choices[0].delta.model_extra or {}) for c in chunks[1:] if c.choices)

    agent = _client(world, "b_member").chat.completions.create(  # with tools: the finished answer, one piece
        model="app:kn-calc", stream=True, messages=[{"role": "user", "content": 'use calculator {"expression": "3*3"}'}]
    )
    pieces = list(agent)
    assert len(pieces) == 1 and pieces[0].choices[0].delta.content == "final: 9"


def test_a_message_contradicting_the_form_is_asked_back(world: World, fake_upstream: FakeOpenAI) -> None:
    definition = {
        "name": "Mail", "slug": "kn-mail", "kind": "generator", "model": "echo",
        "variables": [{"name": "tone", "label": "tone", "type": "select", "options": ["formal", "casual"],
                       "default": "formal", "required": True}],
        "system_prompt": "Write in a {{ tone }} tone.",
    }  # fmt: skip
    with world.client("owner") as c:
        r = c.post("/api/apps", json={"definition": definition, "sharing": {"visibility": "org"}, "publish": True})
        assert r.status_code == 201, r.text
    client = _client(world, "a_member")
    before = len(fake_upstream.requests)
    first = client.chat.completions.create(
        model="app:kn-mail",
        messages=[{"role": "user", "content": "Reply to Jae, make it casual"}],
        extra_body={"inputs": {"tone": "formal"}},
    )
    assert first.choices[0].finish_reason == "clarification" and len(fake_upstream.requests) == before
    clar = (first.choices[0].message.model_extra or {})["clarification"]
    assert clar["kind"] == "form_variable" and [c["label"] for c in clar["choices"]][:2] == ["formal", "casual"]
    second = client.chat.completions.create(
        model="app:kn-mail",
        messages=[{"role": "user", "content": "-"}],
        extra_body={"aiport": {"resume": {"clarification_id": clar["id"], "choice": "c2"}}},
    )
    assert second.choices[0].finish_reason == "stop"
    assert fake_upstream.requests[-1]["messages"][-1]["content"].endswith("(Clarified: tone = casual.)")
    plain = client.chat.completions.create(  # no contradiction: the normal path, untouched
        model="app:kn-mail",
        messages=[{"role": "user", "content": "Reply to Jae"}],
        extra_body={"inputs": {"tone": "formal"}},
    )
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.model_extra.get("citations") is None


def test_app_runs_use_knowledge_and_tools(world: World, team_app: dict[str, Any]) -> None:
    with world.client("a_member") as c:
        r = c.post("/api/apps/kn-helper/runs", json={"message": "When does the pager rotation change?"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["citations"][0]["title"] == "On-call" and body["status"] == "complete"
        with c.stream("POST", "/api/apps/kn-calc/runs",
                      json={"message": 'use calculator {"expression": "7*6"}', "stream": True}) as s:  # fmt: skip
            text = "".join(s.iter_text())
        assert '"content":"final: 42"' in text and '"app.run.end"' in text
        calc_conv = json.loads(text.split("\n\n")[0].removeprefix("data: "))["conversation_id"]
        stored = c.get(f"/api/conversations/{calc_conv}").json()["messages"][-1]
        assert stored["content"] == "final: 42" and stored["status"] == "complete"
        conv = c.get(f"/api/conversations/{body['conversation_id']}").json()
    answer = [m for m in conv["messages"] if m["role"] == "assistant"][-1]
    assert answer["content"].startswith("echo: ") and answer["status"] == "complete"
    assert answer["citations"][0]["title"] == "On-call"  # the sources stay with the answer
    with world.client("b_member") as c:  # runs with the caller's access: nothing from team A's collection
        r = c.post("/api/apps/kn-helper/runs", json={"message": "When does the pager rotation change?"})
        assert r.status_code == 200 and r.json()["citations"] == []


def test_a_streamed_app_run_with_knowledge_streams_word_by_word_and_ends_with_its_sources(
    world: World, team_app: dict[str, Any], fake_upstream: FakeOpenAI
) -> None:
    question = "When does the pager rotation change, streamed?"
    with world.client("a_member") as c:
        with c.stream("POST", "/api/apps/kn-helper/runs", json={"message": question, "stream": True}) as s:
            assert s.status_code == 200
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        header, *rest = [e if e == "[DONE]" else json.loads(e) for e in events]
        words = [e["choices"][0]["delta"].get("content") for e in rest if isinstance(e, dict) and e.get("choices")]
        words = [w for w in words if w]
        assert len(words) > 3  # the model's own chunks, not one finished piece
        assert "".join(words) == f"echo: {question}"
        end = next(e for e in rest if isinstance(e, dict) and e.get("object") == "app.run.end")
        assert end["status"] == "complete" and end["citations"][0]["title"] == "On-call"
        assert "[1] On-call" in fake_upstream.requests[-1]["messages"][1]["content"]  # the sources reached the model
        stored = c.get(f"/api/conversations/{header['conversation_id']}").json()["messages"][-1]
        assert stored["content"] == f"echo: {question}" and stored["status"] == "complete"
        assert stored["citations"] == end["citations"]
    world.gateway.flush()
    with world.client("owner") as c:
        rows = c.get("/api/admin/logs", params={"limit": 50}).json()["data"]
        row = next(r for r in rows if r["request_id"] == header["request_id"])
        trace = c.get(f"/api/admin/logs/{row['id']}").json()["trace"]
    spans = {s["name"]: s for s in trace}
    assert spans["retrieval"]["status"] == "ok"
    assert spans["model"]["status"] == "ok" and spans["model"]["result_preview"] == f"echo: {question}"


def test_stopping_a_grounded_stream_keeps_its_trace_with_the_partial_answer(
    world: World, team_app: dict[str, Any]
) -> None:
    with world.client("owner") as c:
        definition = {"name": "Slow", "slug": "kn-slow", "model": "slowstream", "knowledge": [team_app["id"]]}
        r = c.post("/api/apps", json={"definition": definition, "sharing": {"visibility": "org"}, "publish": True})
        assert r.status_code == 201, r.text
    with world.client("a_member") as c:
        with c.stream("POST", "/api/apps/kn-slow/runs", json={"message": "pager rotation?", "stream": True}) as s:
            lines = (line[6:] for line in s.iter_lines() if line.startswith("data: "))
            header = json.loads(next(lines))
            next(lines)  # the first words arrived
            assert c.post(f"/api/conversations/{header['conversation_id']}/stop").json()["stopped"] is True
            rest = [e if e == "[DONE]" else json.loads(e) for e in lines]
        end = next(e for e in rest if isinstance(e, dict) and e.get("object") == "app.run.end")
        assert end["status"] == "stopped" and end["citations"][0]["title"] == "On-call"
    world.gateway.flush()
    with world.client("owner") as c:
        rows = c.get("/api/admin/logs", params={"limit": 50}).json()["data"]
        row = next(r for r in rows if r["request_id"] == header["request_id"])
        trace = c.get(f"/api/admin/logs/{row['id']}").json()["trace"]
    model = next(s for s in trace if s["name"] == "model")
    assert model["status"] == "ok" and model["result_preview"].startswith("w0")  # partial, not an error
