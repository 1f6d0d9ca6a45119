"""Template sandboxing: an app author cannot reach Python objects, files or settings through a
template. Refused when saved (with the reason and the field), and refused again at render
time by the sandbox if a template ever got past the check."""

from __future__ import annotations

import pytest

from aiport.apps.templates import _compiled, check_template, render
from aiport.domain.errors import Unprocessable
from tests.apps.harness import World, simple_app

ATTACKS = [
    ("{{ topic.__class__ }}", "attribute access"),
    ("{{ topic.upper() }}", "not allowed"),
    ("{{ topic['__class__'] }}", "'_'"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "not allowed"),
    ("{{ lipsum }}", "not a variable"),
    ("{{ config }}", "not a variable"),
    ("{{ settings }}", "not a variable"),
    ("{{ self }}", "not a variable"),
    ("{{ range(10) }}", "calling functions"),
    ("{% include '/etc/passwd' %}", "cannot read files"),
    ("{% import 'x.html' as x %}", "cannot read files"),
    ("{% from 'x.html' import y %}", "cannot read files"),
    ("{% extends '/etc/passwd' %}", "cannot read files"),
    ("{% for c in topic %}{{ c }}{% endfor %}", "loops"),
    ("{% macro m() %}x{% endmacro %}", "macros"),
    ("{{ topic|attr('__class__') }}", "filter 'attr'"),
    ("{{ topic|map('upper') }}", "filter 'map'"),
    ("{{ topic|format('%s') }}", "filter 'format'"),
    ("{{ topic is evil }}", "unknown test 'evil'"),
    ("{{ topic", "syntax error"),
]


@pytest.mark.parametrize(("source", "reason"), ATTACKS)
def test_dangerous_templates_are_refused_when_saved(source: str, reason: str) -> None:
    problem = check_template(source, {"topic", "tone"})
    assert problem is not None and reason in problem.message, (source, problem)


def test_plain_templates_with_conditions_and_filters_pass() -> None:
    source = "{% set t = tone|upper %}{{ t }}: {{ topic|trim|truncate(20) }}{% if words %} {{ words * 2 }}{% endif %}"
    assert check_template(source, {"topic", "tone", "words"}) is None
    text = render(source, {"topic": "  cats  ", "tone": "formal", "words": 5}, field="system_prompt", max_chars=1000)
    assert text == "FORMAL: cats 10"


def test_the_sandbox_still_refuses_at_render_time() -> None:
    """Second wall: even a template that skipped the save-time check has no attributes to reach."""
    for source in ("{{ topic.__class__ }}", "{{ topic['__class__'] }}", "{{ topic.upper() }}", "{{ range }}"):
        with pytest.raises(Unprocessable) as caught:
            render(source, {"topic": "x"}, field="system_prompt", max_chars=1000)
        assert caught.value.param == "system_prompt" and caught.value.code == "template_error"
    assert _compiled("{{ topic }}").environment.globals == {}


def test_values_are_data_never_template_code() -> None:
    text = render("Say: {{ topic }}", {"topic": "{{ 7*7 }} {% include '/etc/passwd' %}"}, field="x", max_chars=100)
    assert text == "Say: {{ 7*7 }} {% include '/etc/passwd' %}"


def test_huge_outputs_are_bounded() -> None:
    with pytest.raises(Unprocessable, match="repetition"):
        render("{{ topic * 100000 }}", {"topic": "ab"}, field="system_prompt", max_chars=10**9)
    with pytest.raises(Unprocessable, match="exponents"):
        render("{{ 9 ** 99999 }}", {}, field="system_prompt", max_chars=10**9)
    with pytest.raises(Unprocessable) as caught:
        render("{{ topic }}", {"topic": "x" * 50}, field="prompt_template", max_chars=10)
    assert caught.value.code == "prompt_too_long" and caught.value.param == "prompt_template"


def test_the_api_refuses_to_save_a_template_that_reads_files_or_attributes(world: World) -> None:
    with world.client("a_admin") as c:
        r = c.post("/api/apps", json={"definition": simple_app("sneaky", system_prompt="{% include '/etc/passwd' %}")})
        assert r.status_code == 422 and r.json()["error"]["param"] == "system_prompt"
        assert "cannot read files" in r.json()["error"]["message"]
        r = c.post("/api/apps", json={"definition": simple_app("sneaky", prompt_template="{{ topic.__class__ }}")})
        assert r.status_code == 422 and r.json()["error"]["param"] == "prompt_template"
        r = c.post("/api/apps", json={"definition": simple_app("sneaky", prompt_template="{{ secret_key }}")})
        assert r.status_code == 422 and "'secret_key' is not a variable" in r.json()["error"]["message"]
        assert c.post("/api/apps", json={"definition": simple_app("sneaky")}).status_code == 201
        r = c.patch("/api/apps/sneaky", json={"definition": {"system_prompt": "{{ config.SECRET }}"}})
        assert r.status_code == 422 and r.json()["error"]["param"] == "system_prompt"
        assert c.get("/api/apps/sneaky").json()["draft"]["system_prompt"].startswith("Write in")  # unchanged
