"""The no-code builder's lifecycle: create a draft, test-run it, publish, edit (a new version
only on publish), runs and audit records naming the version, roll back."""

from __future__ import annotations

from tests.apps.harness import World, audit_record, simple_app


def test_every_field_is_editable_and_a_draft_test_run_comes_before_publishing(world: World) -> None:
    with world.client("a_admin") as c:
        r = c.post("/api/apps", json={"definition": simple_app("drafty"), "sharing": {"visibility": "org"}})
        assert r.status_code == 201 and r.json()["published_version"] is None
        # members can't see or run an unpublished app; its editor can test-run the draft
        with world.client("a_member") as m:
            assert m.post("/api/apps/drafty/runs", json={"inputs": {"topic": "x"}}).status_code == 404
        assert c.post("/api/apps/drafty/runs", json={"inputs": {"topic": "x"}}).status_code == 404  # not published
        changes = {
            "name": "Drafty", "description": "A test app", "icon": "🧪", "kind": "chat",
            "opening_message": "Hello!", "suggested_questions": ["What can you do?"],
            "params": {"temperature": 0.3, "max_tokens": 200, "stop": ["END"]},
            "system_prompt": "Be {{ tone }}.", "prompt_template": "About {{ topic }}",
        }  # fmt: skip
        r = c.patch("/api/apps/drafty", json={"definition": changes})
        assert r.status_code == 200, r.text
        assert {k: r.json()["draft"][k] for k in changes} == {
            **changes,
            "params": {**changes["params"], "top_p": None, "seed": None, "presence_penalty": None,
                       "frequency_penalty": None},
        }  # fmt: skip
        test = c.post("/api/apps/drafty/runs", json={"inputs": {"topic": "cats"}, "draft": True})
        assert test.status_code == 200, test.text
        assert test.json()["draft"] is True and test.json()["app_version"] is None
        assert test.json()["output"] == "echo: About cats"
        record = audit_record(world, test.json()["request_id"])
        assert record["entry_point"] == "app_test" and record["app_version_id"] is None
        assert record["request_params"] == {"temperature": 0.3, "max_tokens": 200, "stop": ["END"]}
        # a test run is not one of the person's conversations
        assert test.json()["conversation_id"] not in {x["id"] for x in c.get("/api/conversations").json()["data"]}
        drafts = c.get("/api/conversations", params={"include_drafts": True}).json()["data"]
        assert test.json()["conversation_id"] in {x["id"] for x in drafts}
        published = c.post("/api/apps/drafty/publish", json={"note": "ready"})
        assert published.status_code == 201 and published.json()["number"] == 1
        assert published.json()["definition"]["name"] == "Drafty"
    with world.client("b_member") as m:
        view = m.get("/api/apps/drafty").json()
        assert view["definition"]["opening_message"] == "Hello!" and "draft" not in view and view["can_edit"] is False


def test_editing_a_published_app_makes_a_new_version_and_rollback_restores_an_old_one(world: World) -> None:
    with world.client("a_admin") as c:
        r = c.post(
            "/api/apps", json={"definition": simple_app("versioned"), "publish": True, "sharing": {"visibility": "org"}}
        )
        v1 = r.json()["published_version"]
        assert v1["number"] == 1
        # editing changes the draft only: people keep running version 1
        c.patch("/api/apps/versioned", json={"definition": {"system_prompt": "Version two, {{ tone }}."}})
    with world.client("b_member") as m:
        run = m.post("/api/apps/versioned/runs", json={"inputs": {"topic": "a"}}).json()
        assert run["app_version"] == {"id": v1["id"], "number": 1}
    with world.client("a_admin") as c:
        v2 = c.post("/api/apps/versioned/publish").json()
        assert v2["number"] == 2 and v2["definition"]["system_prompt"] == "Version two, {{ tone }}."
    with world.client("b_member") as m:
        run2 = m.post("/api/apps/versioned/runs", json={"inputs": {"topic": "b", "tone": "casual"}}).json()
        assert run2["app_version"] == {"id": v2["id"], "number": 2}
        conv = m.get(f"/api/conversations/{run2['conversation_id']}").json()
        assert {msg["app_version_id"] for msg in conv["messages"]} == {v2["id"]}
    record = audit_record(world, run2["request_id"])
    assert record["app_version_id"] == v2["id"] and record["app_id"] == r.json()["id"]
    # the rendered prompt, not the template, is what the audit log shows
    assert record["input_messages"] == [
        {"role": "system", "content": "Version two, casual."},
        {"role": "user", "content": "Topic: b"},
    ]
    assert record["entry_point"] == "app" and record["model_used"] == "echo"
    with world.client("a_admin") as c:
        listed = c.get("/api/apps/versioned/versions").json()["data"]
        assert [(v["number"], v["published"]) for v in listed] == [(2, True), (1, False)]
        assert c.get("/api/apps/versioned/versions/1").json()["definition"]["system_prompt"].startswith("Write in")
        back = c.post("/api/apps/versioned/rollback", json={"version": 1})
        assert back.status_code == 200 and back.json()["published_version"]["number"] == 1
        assert back.json()["draft"]["system_prompt"] == v1_prompt()
        missing = c.post("/api/apps/versioned/rollback", json={"version": 9})
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "version"
    with world.client("b_member") as m:
        run3 = m.post("/api/apps/versioned/runs", json={"inputs": {"topic": "c"}}).json()
        assert run3["app_version"]["number"] == 1
    assert audit_record(world, run3["request_id"])["app_version_id"] == v1["id"]


def v1_prompt() -> str:
    return str(simple_app("x")["system_prompt"])


def test_slugs_are_unique_per_org_and_renaming_moves_the_model_name(world: World) -> None:
    with world.client("a_admin") as c:
        assert c.post("/api/apps", json={"definition": simple_app("unique-one")}).status_code == 201
        dup = c.post("/api/apps", json={"definition": simple_app("unique-one")})
        assert dup.status_code == 409 and dup.json()["error"]["param"] == "slug"
        reserved = c.post("/api/apps", json={"definition": simple_app("builder")})
        assert reserved.status_code == 409
        renamed = c.patch("/api/apps/unique-one", json={"definition": {"slug": "unique-two"}})
        assert renamed.status_code == 200 and renamed.json()["model_name"] == "app:unique-two"
        assert c.get("/api/apps/unique-one").status_code == 404
        assert c.delete("/api/apps/unique-two").json()["deleted"] is True
        assert c.get("/api/apps/unique-two").status_code == 404
    with world.client("stranger") as s:  # slugs are per organization
        assert s.post("/api/apps", json={"definition": simple_app("unique-two")}).status_code == 201


def test_the_definition_schema_endpoint_describes_every_field(world: World) -> None:
    with world.client("a_member") as c:
        schema = c.get("/api/apps/schema").json()
    assert set(schema["properties"]) >= {
        "name", "slug", "description", "icon", "kind", "system_prompt", "prompt_template", "variables", "model",
        "params", "opening_message", "suggested_questions", "tools", "knowledge",
    }  # fmt: skip
    assert schema["required"] == ["name", "slug"]
