"""Guided prompting: the form as JSON Schema, input validation (422 naming the field, nothing
written), and definition validation with the exact path of the field to fix."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from aiport.apps.definition import AppDefinition
from aiport.apps.forms import form_schema, validate_inputs
from aiport.domain.errors import Unprocessable
from tests.apps.harness import World, simple_app


@pytest.fixture(scope="module")
def form_app(world: World) -> str:
    definition = simple_app("formy")
    definition["variables"].append(
        {"name": "notes", "label": "Notes", "type": "long_text", "max_length": 50, "help": "Paste them here."}
    )
    definition["system_prompt"] += "{% if notes %} Notes: {{ notes }}{% endif %}"
    with world.client("a_admin") as c:
        r = c.post("/api/apps", json={"definition": definition, "publish": True, "sharing": {"visibility": "org"}})
        assert r.status_code == 201, r.text
    return "formy"


def test_the_form_schema_is_json_schema_any_client_can_render(world: World, form_app: str) -> None:
    with world.client("b_member") as c:
        schema = c.get(f"/api/apps/{form_app}/form").json()
    jsonschema_rs.meta.validate(schema)
    props = schema["properties"]
    assert schema["x-aiport-order"] == ["topic", "tone", "words", "emoji", "notes"]
    assert schema["required"] == ["topic"] and schema["additionalProperties"] is False
    assert props["tone"] == {"type": "string", "title": "Tone", "x-aiport-widget": "select",
                             "enum": ["formal", "casual"], "default": "formal"}  # fmt: skip
    assert props["words"]["type"] == "integer" and props["words"]["minimum"] == 10 and props["words"]["maximum"] == 500
    assert props["emoji"]["type"] == "boolean" and props["emoji"]["default"] is False
    assert props["notes"]["maxLength"] == 50 and props["notes"]["description"] == "Paste them here."
    validator = jsonschema_rs.Draft202012Validator(schema)
    assert validator.is_valid({"topic": "cats", "tone": "casual", "words": 20})
    assert not validator.is_valid({"topic": "cats", "tone": "angry"})


BAD_INPUTS: list[tuple[Any, str, str]] = [
    ({}, "inputs.topic", "Topic is required"),
    ({"topic": "   "}, "inputs.topic", "Topic is required"),
    ({"topic": 42}, "inputs.topic", "Topic must be text"),
    ({"topic": "x", "tone": "angry"}, "inputs.tone", "Tone must be one of 'formal', 'casual'"),
    ({"topic": "x", "words": 5}, "inputs.words", "Words must be at least 10"),
    ({"topic": "x", "words": 501}, "inputs.words", "Words must be at most 500"),
    ({"topic": "x", "words": 12.5}, "inputs.words", "Words must be a whole number"),
    ({"topic": "x", "words": "12"}, "inputs.words", "Words must be a number"),
    ({"topic": "x", "words": True}, "inputs.words", "Words must be a number"),
    ({"topic": "x", "emoji": "yes"}, "inputs.emoji", "Emoji must be true or false"),
    ({"topic": "x", "notes": "n" * 51}, "inputs.notes", "at most 50 are allowed"),
    ({"topic": "x", "colour": "red"}, "inputs.colour", "this app has no field 'colour'"),
    (["topic"], "inputs", "'inputs'"),
]


@pytest.mark.parametrize(("inputs", "param", "message"), BAD_INPUTS, ids=[p for _, p, _ in BAD_INPUTS])
def test_bad_inputs_are_422_naming_the_field_and_nothing_is_written(
    world: World, form_app: str, inputs: Any, param: str, message: str
) -> None:
    with world.client("b_member") as c:
        before = len(c.get("/api/conversations").json()["data"])
        r = c.post(f"/api/apps/{form_app}/runs", json={"inputs": inputs})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["param"] == param and message in error["message"], error
        assert len(c.get("/api/conversations").json()["data"]) == before
        chat = c.post(
            "/v1/chat/completions",
            json={"model": f"app:{form_app}", "messages": [{"role": "user", "content": "hi"}], "inputs": inputs},
        )
        assert chat.status_code == 400 and chat.json()["error"]["param"] == param  # OpenAI-shaped


def test_defaults_fill_in_and_values_reach_the_prompt() -> None:
    defn = AppDefinition.model_validate(simple_app("x"))
    assert validate_inputs(defn, {"topic": "cats"}) == {
        "topic": "cats",
        "tone": "formal",
        "words": None,
        "emoji": False,
    }
    assert validate_inputs(defn, {"topic": "cats", "words": 20.0})["words"] == 20
    assert form_schema(defn)["properties"]["topic"]["minLength"] == 1
    with pytest.raises(Unprocessable):
        validate_inputs(defn, None)


BAD_DEFINITIONS: list[tuple[dict[str, Any], str]] = [
    ({"slug": "Not A Slug"}, "slug"),
    ({"name": ""}, "name"),
    ({"kind": "robot"}, "kind"),
    ({"params": {"temperature": 3}}, "params.temperature"),
    ({"variables": [{"name": "tone", "type": "select", "options": []}], "system_prompt": "", "prompt_template": ""},
     "variables[0].options"),
    ({"variables": [{"name": "n", "type": "number", "min": 5, "max": 1}], "system_prompt": "", "prompt_template": ""},
     "variables[0].min"),
    ({"variables": [{"name": "t", "type": "toggle", "default": "yes"}], "system_prompt": "", "prompt_template": ""},
     "variables[0].default"),
    ({"variables": [{"name": "a"}, {"name": "a"}], "system_prompt": "", "prompt_template": ""}, "variables[1].name"),
    ({"variables": [{"name": "Bad Name"}]}, "variables[0].name"),
    ({"tools": ["shell"]}, "tools[0]"),
    ({"surprise": 1}, "surprise"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "param"), BAD_DEFINITIONS, ids=[p for _, p in BAD_DEFINITIONS])
def test_bad_definitions_are_422_naming_the_field(world: World, change: dict[str, Any], param: str) -> None:
    definition = {**simple_app("bad-def"), **change}
    with world.client("a_admin") as c:
        r = c.post("/api/apps", json={"definition": definition})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["param"] == f"{param}" and r.json()["error"]["code"] == "invalid_app"
        assert c.get("/api/apps/bad-def").status_code == 404  # nothing half-written
