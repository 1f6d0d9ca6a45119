"""The natural-language builder against a scripted model: valid, partially valid (repaired)
and invalid drafts (rejected with precise errors), JSON Schema constrained output where the
model supports it, and the review -> save -> test-run path."""

from __future__ import annotations

from typing import Any

import pytest

from aiport.apps.builder import extract_json
from aiport.apps.definition import definition_errors
from aiport.apps.repair import repair_definition
from tests.apps.harness import World, audit_record
from tests.apps.scripted_model import ScriptedModel

DESCRIPTION = "an app that turns meeting notes into a Korean summary with action items, formal tone"

GOOD: dict[str, Any] = {
    "name": "Meeting summary (Korean)",
    "slug": "korean-meeting-summary",
    "description": "Turns meeting notes into a formal Korean summary with action items.",
    "icon": "📝",
    "kind": "generator",
    "variables": [
        {"name": "notes", "label": "Meeting notes", "type": "long_text", "required": True},
        {"name": "action_items", "label": "Action items", "type": "toggle", "default": True},
    ],
    "system_prompt": "Summarize in Korean, formal tone.{% if action_items %} End with action items.{% endif %}",
    "prompt_template": "{{ notes }}",
    "model": "auto",
    "params": {"temperature": 0.2},
}

SLOPPY: dict[str, Any] = {  # the shape small models produce: right idea, wrong details
    "app": {
        "title": "Meeting Summary",
        "type": "Generator",
        "systemPrompt": "Summarize in {language}, {tone} tone, with action items.",
        "prompt": "Notes: {notes}",
        "fields": [
            {"key": "notes", "label": "Notes", "type": "textarea", "isRequired": "yes"},
            {"key": "language", "type": "dropdown", "choices": "Korean, English", "defaultValue": "korean"},
            {"key": "tone", "type": "string", "default": "formal"},
            {"key": "length", "type": "integer", "minimum": "300", "maximum": "50", "default": "1000"},
        ],
        "model": "gpt-9",
        "settings": {"temperature": "5", "maxTokens": 500},
        "tools": ["web_search", "calculator"],
        "knowledge": "kc_0123456789, my documents",
        "greeting": 42,
    }
}


def draft(world: World, model: str = "scripted", who: str = "a_member") -> Any:
    with world.client(who) as c:
        return c.post("/api/apps/builder/draft", json={"description": DESCRIPTION, "model": model})


def test_a_valid_draft_is_returned_for_review_and_the_model_was_constrained(
    world: World, scripted: ScriptedModel
) -> None:
    scripted.queue(GOOD)
    r = draft(world)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "app.draft" and body["attempts"] == 1 and body["repairs"] == []
    assert (
        body["definition"]["slug"] == "korean-meeting-summary" and body["definition"]["variables"][1]["default"] is True
    )
    asked = scripted.requests[0]
    assert asked["response_format"]["type"] == "json_schema"
    schema = asked["response_format"]["json_schema"]["schema"]
    assert {"name", "slug", "variables", "system_prompt"} <= set(schema["properties"])
    assert asked["messages"][-1]["content"] == DESCRIPTION
    record = audit_record(world, body["request_ids"][0])
    assert record["entry_point"] == "builder" and record["model_used"] == "scripted"


def test_without_structured_output_support_it_asks_for_json_mode(world: World, scripted: ScriptedModel) -> None:
    scripted.queue("Here is your app:\n```json\n" + __import__("json").dumps(GOOD) + "\n```")
    r = draft(world, model="scripted-plain")
    assert r.status_code == 200, r.text
    assert scripted.requests[0]["response_format"] == {"type": "json_object"}


def test_a_partially_valid_draft_is_repaired_and_every_fix_is_reported(world: World, scripted: ScriptedModel) -> None:
    scripted.queue(SLOPPY)
    r = draft(world)
    assert r.status_code == 200, r.text
    body = r.json()
    d = body["definition"]
    assert body["attempts"] == 1
    assert d["name"] == "Meeting Summary" and d["slug"] == "meeting-summary" and d["kind"] == "generator"
    assert d["system_prompt"] == "Summarize in {{ language }}, {{ tone }} tone, with action items."
    assert d["prompt_template"] == "Notes: {{ notes }}"
    variables = {v["name"]: v for v in d["variables"]}
    assert variables["notes"]["type"] == "long_text" and variables["notes"]["required"] is True
    assert variables["language"]["type"] == "select" and variables["language"]["options"] == ["Korean", "English"]
    assert variables["language"]["default"] == "Korean"
    assert variables["length"]["type"] == "number" and (variables["length"]["min"], variables["length"]["max"]) == (
        50,
        300,
    )
    assert variables["length"]["default"] is None  # 1000 is outside 50..300
    assert d["model"] == "auto" and d["params"]["temperature"] == 2 and d["params"]["max_tokens"] == 500
    assert d["tools"] == ["calculator"] and d["knowledge"] == ["kc_0123456789"] and d["opening_message"] == "42"
    notes = "\n".join(body["repairs"])
    for expected in ("unwrapped the 'app' object", "renamed systemPrompt to system_prompt", "model 'gpt-9'",
                     "params.temperature 5 was clamped to 2", "min and max were swapped",
                     "tools: removed 'web_search'", "knowledge: removed 'my documents'",
                     "turned {name} placeholders"):  # fmt: skip
        assert expected in notes, (expected, notes)


def test_broken_json_gets_the_error_fed_back_and_a_second_try(world: World, scripted: ScriptedModel) -> None:
    scripted.queue('{"name": "Meeting summary", "slug": "x", "variables": [', GOOD)
    r = draft(world)
    assert r.status_code == 200, r.text
    assert r.json()["attempts"] == 2 and len(r.json()["request_ids"]) == 2
    feedback = scripted.requests[1]["messages"][-1]["content"]
    assert "could not be used" in feedback and "not JSON" in feedback
    assert scripted.requests[1]["messages"][-2]["role"] == "assistant"


def test_a_draft_that_stays_invalid_is_rejected_with_precise_errors(world: World, scripted: ScriptedModel) -> None:
    looping = {**GOOD, "system_prompt": "{% for x in notes %}{{ x }}{% endfor %}"}
    scripted.queue(looping, looping)
    r = draft(world)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "draft_invalid" and error["param"] == "draft.system_prompt"
    assert "loops are not allowed" in error["message"] and "in 2 tries" in error["message"]
    assert len(r.headers["x-aiport-builder-requests"].split(",")) == 2
    feedback = scripted.requests[1]["messages"][-1]["content"]
    assert "system_prompt: loops are not allowed" in feedback


def test_prose_instead_of_json_is_rejected_as_unparseable(world: World, scripted: ScriptedModel) -> None:
    scripted.queue("Sure! I would make a summarizer app.", "It has a notes field.")
    r = draft(world)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "draft_unparseable" and r.json()["error"]["param"] is None
    assert "not JSON" in r.json()["error"]["message"]


def test_a_reviewed_draft_is_saved_then_test_run_then_published(world: World, scripted: ScriptedModel) -> None:
    scripted.queue(GOOD)
    d = draft(world, who="a_admin").json()["definition"]
    d["model"] = "echo"  # the reviewer edits the draft before saving it
    with world.client("a_admin") as c:
        saved = c.post("/api/apps", json={"definition": d})
        assert saved.status_code == 201, saved.text
        test = c.post(f"/api/apps/{d['slug']}/runs", json={"inputs": {"notes": "We agreed."}, "draft": True})
        assert test.status_code == 200 and test.json()["output"] == "echo: We agreed."
        assert c.post(f"/api/apps/{d['slug']}/publish").json()["number"] == 1
    scripted.queue(GOOD)  # the same draft again: its slug is taken now, so it gets a fresh one
    again = draft(world, who="a_admin").json()
    assert again["definition"]["slug"] == "korean-meeting-summary-2"


def test_app_keys_cannot_use_the_builder(world: World) -> None:
    with world.client("a_admin") as c:
        c.post("/api/apps", json={"definition": {**GOOD, "slug": "keyed", "model": "echo"}, "publish": True})
        key = c.post("/api/apps/keyed/keys", json={"name": "bot"}).json()["key"]
    with world.gateway.client(key) as c:
        r = c.post("/api/apps/builder/draft", json={"description": DESCRIPTION})
        assert r.status_code == 403


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1,}\n```', {"a": 1}),
        ('Here you go: {"a": [1, 2,]} Enjoy!', {"a": [1, 2]}),
    ],
)
def test_json_is_found_fenced_amid_prose_and_with_trailing_commas(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


def test_repair_leaves_what_it_cannot_fix_for_validation() -> None:
    repaired, notes = repair_definition("just text", description="x", models=set(), taken_slugs=set())
    assert repaired == "just text" and notes == []
    repaired, notes = repair_definition(
        {"variables": "nonsense"}, description="A thing", models=set(), taken_slugs=set()
    )
    assert repaired["name"] == "A thing" and repaired["variables"] == [] and "name was missing" in notes[0]


def test_the_draft_schema_is_a_bounded_subset_of_the_definition() -> None:
    from aiport.apps.definition import definition_json_schema
    from aiport.apps.draft_schema import draft_json_schema

    draft, full = draft_json_schema(), definition_json_schema()
    assert set(draft["properties"]) <= set(full["properties"])
    assert set(draft["required"]) >= {"name", "slug", "variables", "system_prompt"}
    strings = [p for p in draft["properties"].values() if p.get("type") == "string" and "enum" not in p]
    assert all("maxLength" in p or "pattern" in p for p in strings)  # no endless strings under a grammar
    defn, errors = definition_errors(GOOD)
    assert defn is not None and not errors
