"""Running apps through both entry points and the one pipeline, on SQLite and PostgreSQL:
`POST /api/apps/{slug}/runs` (JSON and SSE), the OpenAI API with `model="app:<slug>"` (real
`openai` client), and conversations: continue, regenerate, stop, rename, delete."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.apps.harness import World, audit_record, simple_app
from tests.support.fake_openai import FakeOpenAI


def sse(response: httpx.Response) -> Iterator[dict[str, Any] | str]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            yield data if data == "[DONE]" else json.loads(data)


@pytest.fixture(scope="module")
def app_slug(any_world: World) -> str:
    with any_world.client("a_admin") as c:
        r = c.post("/api/apps", json={"definition": simple_app("runner"), "publish": True,
                                      "sharing": {"visibility": "teams", "team_ids": [any_world.team_a]}})  # fmt: skip
        assert r.status_code == 201, r.text
    return "runner"


def test_a_run_answers_and_persists_the_conversation(any_world: World, app_slug: str) -> None:
    with any_world.client("a_member") as c:
        r = c.post(f"/api/apps/{app_slug}/runs", json={"inputs": {"topic": "cats", "tone": "casual"}, "message": "Go"})
        assert r.status_code == 200, r.text
        run = r.json()
        assert run["status"] == "complete" and run["output"] == "echo: Topic: cats\n\nGo"
        assert run["app_version"]["number"] == 1 and run["model"] == "echo" and run["usage"]["total_tokens"] > 0
        conv = c.get(f"/api/conversations/{run['conversation_id']}").json()
    assert conv["title"] == "Go" and conv["inputs"] == {
        "topic": "cats",
        "tone": "casual",
        "words": None,
        "emoji": False,
    }
    assert [(m["role"], m["content"], m["status"]) for m in conv["messages"]] == [
        ("user", "Topic: cats\n\nGo", "complete"),
        ("assistant", "echo: Topic: cats\n\nGo", "complete"),
    ]
    assistant = conv["messages"][1]
    assert assistant["request_id"] == run["request_id"] and assistant["model"] == "echo" and assistant["log_id"]
    record = audit_record(any_world, run["request_id"])
    assert record["id"] == assistant["log_id"] and record["user_id"] == any_world.a_member.id
    assert record["input_messages"][0] == {"role": "system", "content": "Write in a casual tone."}


def test_a_streamed_run_sends_a_header_the_chunks_and_how_it_ended(any_world: World, app_slug: str) -> None:
    with any_world.client("a_member") as c:
        body = {"inputs": {"topic": "dogs"}, "stream": True}
        with c.stream("POST", f"/api/apps/{app_slug}/runs", json=body) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = list(sse(r))
        header, *chunks, end, done = events
        assert isinstance(header, dict) and header["object"] == "app.run" and header["app_version"]["number"] == 1
        assert done == "[DONE]" and isinstance(end, dict) and end == {
            "object": "app.run.end", "status": "complete", "message_id": header["assistant_message_id"]
        }  # fmt: skip
        text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if isinstance(ch, dict))
        assert text == "echo: Topic: dogs" and all(ch["object"] == "chat.completion.chunk" for ch in chunks)  # type: ignore[index]
        conv = c.get(f"/api/conversations/{header['conversation_id']}").json()
        assert conv["messages"][-1]["content"] == text and conv["messages"][-1]["status"] == "complete"
    record = audit_record(any_world, header["request_id"])
    assert record["stream"] is True and record["output_text"] == text


def test_continue_regenerate_rename_delete(any_world: World, app_slug: str, fake_upstream: FakeOpenAI) -> None:
    with any_world.client("a_member") as c:
        first = c.post(f"/api/apps/{app_slug}/runs", json={"inputs": {"topic": "tea"}}).json()
        conv_id = first["conversation_id"]
        r = c.post(f"/api/conversations/{conv_id}/messages", json={"message": "And coffee?"})
        assert r.status_code == 200 and r.json()["output"] == "echo: And coffee?"
        sent = fake_upstream.requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]  # the history went along
        assert sent[1]["content"] == "Topic: tea" and sent[2]["content"] == "echo: Topic: tea"
        empty = c.post(f"/api/conversations/{conv_id}/messages", json={"message": "  "})
        assert empty.status_code == 422 and empty.json()["error"]["param"] == "message"
        before = c.get(f"/api/conversations/{conv_id}").json()["messages"]
        again = c.post(f"/api/conversations/{conv_id}/regenerate", json={})
        assert again.status_code == 200 and again.json()["user_message_id"] is None
        after = c.get(f"/api/conversations/{conv_id}").json()["messages"]
        assert len(after) == len(before) == 4
        assert after[-1]["id"] != before[-1]["id"] and after[-1]["id"] == again.json()["assistant_message_id"]
        assert after[:3] == before[:3]
        renamed = c.patch(f"/api/conversations/{conv_id}", json={"title": "  Tea   and coffee "})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Tea and coffee"
        blank = c.patch(f"/api/conversations/{conv_id}", json={"title": "   "})
        assert blank.status_code == 422 and blank.json()["error"]["param"] == "title"
        assert conv_id in {x["id"] for x in c.get("/api/conversations", params={"app": app_slug}).json()["data"]}
        assert c.delete(f"/api/conversations/{conv_id}").json()["deleted"] is True
        assert c.get(f"/api/conversations/{conv_id}").status_code == 404
        assert conv_id not in {x["id"] for x in c.get("/api/conversations").json()["data"]}
    assert audit_record(any_world, first["request_id"])["status"] == "ok"  # the audit log keeps deleted chats' calls


def test_members_only_list_their_own_conversations(any_world: World, app_slug: str) -> None:
    with any_world.client("a_admin") as c:
        theirs = c.post(f"/api/apps/{app_slug}/runs", json={"inputs": {"topic": "admin's"}}).json()["conversation_id"]
    with any_world.client("a_member") as c:
        mine = {x["id"] for x in c.get("/api/conversations").json()["data"]}
        assert theirs not in mine and mine
        assert all(x["user_id"] == any_world.a_member.id for x in c.get("/api/conversations").json()["data"])


def test_stop_ends_a_streaming_answer_and_keeps_the_partial_text(world: World, fake_upstream: FakeOpenAI) -> None:
    with world.client("a_admin") as c:
        slow = simple_app("slow-app", model="slowstream")
        assert c.post("/api/apps", json={"definition": slow, "publish": True}).status_code == 201
        cancelled = fake_upstream.cancelled_streams
        events: list[Any] = []
        with c.stream("POST", "/api/apps/slow-app/runs", json={"inputs": {"topic": "x"}, "stream": True}) as r:
            stream = sse(r)
            header = next(stream)
            assert isinstance(header, dict)
            events.append(next(stream))  # the first words arrived
            stopper = threading.Thread(
                target=lambda: world.client("a_admin").post(f"/api/conversations/{header['conversation_id']}/stop")
            )
            stopper.start()
            events.extend(stream)
            stopper.join()
        end = next(e for e in events if isinstance(e, dict) and e.get("object") == "app.run.end")
        assert end["status"] == "stopped" and events[-1] == "[DONE]"
        words = [e for e in events if isinstance(e, dict) and e.get("object") == "chat.completion.chunk"]
        assert 1 <= len(words) < 50  # ended long before the 50 words
        conv = c.get(f"/api/conversations/{header['conversation_id']}").json()
        answer = conv["messages"][-1]
        assert answer["status"] == "stopped" and answer["content"].startswith("w0")
        assert c.post(f"/api/conversations/{header['conversation_id']}/stop").json()["stopped"] is False
    assert fake_upstream.cancelled_streams > cancelled  # the upstream request was closed too
    assert audit_record(world, header["request_id"])["status"] == "client_closed"


def test_a_failing_model_is_an_error_message_not_a_lost_turn(world: World) -> None:
    with world.client("a_admin") as c:
        assert (
            c.post(
                "/api/apps", json={"definition": simple_app("broken-app", model="broken"), "publish": True}
            ).status_code
            == 201
        )
        r = c.post("/api/apps/broken-app/runs", json={"inputs": {"topic": "x"}})
        assert r.status_code == 502
        conv = c.get("/api/conversations", params={"app": "broken-app"}).json()["data"][0]
        messages = c.get(f"/api/conversations/{conv['id']}").json()["messages"]
        assert [(m["role"], m["status"]) for m in messages] == [("user", "complete"), ("assistant", "error")]
        assert messages[1]["error"]


def test_the_openai_client_runs_an_app_by_model_name(any_world: World, app_slug: str) -> None:
    client = openai.OpenAI(base_url=any_world.gateway.url + "/v1", api_key=any_world.a_member.key, max_retries=0)
    completion = client.chat.completions.create(
        model=f"app:{app_slug}",
        messages=[{"role": "user", "content": "Hello"}],
        extra_body={"inputs": {"topic": "owls", "tone": "casual"}},
    )
    assert completion.choices[0].message.content == "echo: Topic: owls\n\nHello"
    stream = client.chat.completions.create(
        model=f"app:{app_slug}",
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"inputs": {"topic": "bats"}},
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "echo: Topic: bats\n\nHi"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    record = audit_record(any_world, "req_" + completion.id.removeprefix("chatcmpl-"))
    assert record["model_requested"] == "echo" and record["entry_point"] == "api"
    assert record["app_id"] and record["app_version_id"]
    assert record["input_messages"] == [
        {"role": "system", "content": "Write in a casual tone."},
        {"role": "user", "content": "Topic: owls\n\nHello"},
    ]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=f"app:{app_slug}", messages=[{"role": "user", "content": "x"}], extra_body={"inputs": {}}
        )
    assert bad.value.status_code == 400 and "inputs.topic" in str(bad.value)
    outsider = openai.OpenAI(base_url=any_world.gateway.url + "/v1", api_key=any_world.b_member.key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        outsider.chat.completions.create(model=f"app:{app_slug}", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="app:no-such-app", messages=[{"role": "user", "content": "x"}])


def test_an_app_key_runs_its_app_and_nothing_else(any_world: World, app_slug: str) -> None:
    with any_world.client("a_admin") as c:
        created = c.post(f"/api/apps/{app_slug}/keys", json={"name": "bot"})
        assert created.status_code == 201 and created.json()["key"].startswith("aip_")
        key, key_id = created.json()["key"], created.json()["id"]
        assert [k["id"] for k in c.get(f"/api/apps/{app_slug}/keys").json()["data"]] == [key_id]
    bot = openai.OpenAI(base_url=any_world.gateway.url + "/v1", api_key=key, max_retries=0)
    answer = bot.chat.completions.create(
        model=f"app:{app_slug}", messages=[{"role": "user", "content": "Hi"}], extra_body={"inputs": {"topic": "x"}}
    )
    assert answer.choices[0].message.content == "echo: Topic: x\n\nHi"
    with pytest.raises(openai.PermissionDeniedError):
        bot.chat.completions.create(model="echo", messages=[{"role": "user", "content": "Hi"}])
    assert [m.id for m in bot.models.list().data] == []
    with any_world.client("a_admin") as c:
        assert c.delete(f"/api/apps/{app_slug}/keys/{key_id}").json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError):
        bot.chat.completions.create(
            model=f"app:{app_slug}", messages=[{"role": "user", "content": "Hi"}], extra_body={"inputs": {"topic": "x"}}
        )


def test_a_client_leaving_mid_stream_keeps_the_partial_answer(world: World, fake_upstream: FakeOpenAI) -> None:
    with world.client("a_admin") as c:
        c.post("/api/apps", json={"definition": simple_app("leaver", model="slowstream"), "publish": True})
        with c.stream("POST", "/api/apps/leaver/runs", json={"inputs": {"topic": "x"}, "stream": True}) as r:
            stream = sse(r)
            header = next(stream)
            next(stream)
            assert isinstance(header, dict)
        # the connection is closed here, long before the 50 words
        deadline = time.monotonic() + 10
        while True:
            answer = c.get(f"/api/conversations/{header['conversation_id']}").json()["messages"][-1]
            if answer["status"] != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert answer["status"] == "stopped" and answer["content"].startswith("w0")
    assert audit_record(world, header["request_id"])["status"] == "client_closed"


def test_message_ids_keep_the_turn_order_within_one_millisecond() -> None:
    from aiport.apps.conversations import message_id_after

    previous = None
    for _ in range(2000):  # a user message and its answer are created in the same millisecond
        current = message_id_after(previous)
        assert previous is None or current > previous
        previous = current
    assert message_id_after("msg_zzzzzzzzzz0000000000000zzz") == "msg_zzzzzzzzzz0000000000001000"


def test_a_conversation_continues_on_the_newest_version_with_its_form_values(world: World) -> None:
    with world.client("a_admin") as c:
        c.post("/api/apps", json={"definition": simple_app("evolving"), "publish": True})
        first = c.post("/api/apps/evolving/runs", json={"inputs": {"topic": "owls", "tone": "casual"}}).json()
        variables = [
            {"name": "topic", "type": "short_text", "required": True},
            {"name": "audience", "type": "select", "options": ["kids", "experts"], "required": True},
        ]
        changes = {"variables": variables, "system_prompt": "For {{ audience }}.", "prompt_template": "{{ topic }}"}
        assert c.patch("/api/apps/evolving", json={"definition": changes}).status_code == 200
        v2 = c.post("/api/apps/evolving/publish").json()
        conv = first["conversation_id"]
        missing = c.post(f"/api/conversations/{conv}/messages", json={"message": "More?"})
        assert missing.status_code == 422 and missing.json()["error"]["param"] == "inputs.audience"
        r = c.post(f"/api/conversations/{conv}/messages", json={"message": "More?", "inputs": {"topic": "owls",
                                                                                               "audience": "kids"}})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["app_version"]["id"] == v2["id"]
        assert c.get(f"/api/conversations/{conv}").json()["inputs"] == {"topic": "owls", "audience": "kids"}
        again = c.post(f"/api/conversations/{conv}/messages", json={"message": "And then?"})
        assert again.status_code == 200  # the stored values carry on
    record = audit_record(world, again.json()["request_id"])
    assert record["input_messages"][0] == {"role": "system", "content": "For kids."}


def test_continue_and_regenerate_stream_too(any_world: World, app_slug: str) -> None:
    with any_world.client("a_member") as c:
        conv = c.post(f"/api/apps/{app_slug}/runs", json={"inputs": {"topic": "sun"}}).json()["conversation_id"]
        for path, body in (("messages", {"message": "Why?", "stream": True}), ("regenerate", {"stream": True})):
            with c.stream("POST", f"/api/conversations/{conv}/{path}", json=body) as r:
                assert r.status_code == 200
                events = list(sse(r))
            header, end = events[0], events[-2]
            assert isinstance(header, dict) and header["conversation_id"] == conv
            assert isinstance(end, dict) and end["status"] == "complete"
        messages = c.get(f"/api/conversations/{conv}").json()["messages"]
    assert [(m["role"], m["content"]) for m in messages][-2:] == [("user", "Why?"), ("assistant", "echo: Why?")]
    assert len(messages) == 4
