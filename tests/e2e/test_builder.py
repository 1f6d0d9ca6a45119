"""The app builder screens in a browser: create an app with the no-code editor, test-run the
draft (streamed), publish it and run it; the natural-language builder fills the editor."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import login, shot


def test_no_code_builder_create_test_run_publish(page: Any) -> None:
    login(page)
    page.get_by_role("link", name="Build", exact=True).click()
    page.get_by_role("link", name="New app").click()
    page.get_by_label("Name", exact=True).fill("Owl facts")
    page.get_by_label("Slug").fill("owl-facts")
    page.get_by_label("Model").select_option("echo")
    page.get_by_label("Sharing").select_option("org")
    page.get_by_label("Prompt template").fill("Tell me about {{ animal }}.")
    page.get_by_role("button", name="Add variable").click()
    row = page.locator("#variables .var-row").last
    row.get_by_label("Name", exact=True).fill("animal")
    row.get_by_label("Label").fill("Animal")
    row.get_by_label("Required").check()
    page.locator("#test-animal").fill("owls")
    page.get_by_role("button", name="Test run").click()
    page.wait_for_function("() => !document.getElementById('test-run').disabled")
    assert page.locator("#test-output").inner_text() == "echo: Tell me about owls."
    assert "/ui/build/owl-facts" in page.url  # the draft was saved before the test run
    shot(page, "12-builder")
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("Published version v1").wait_for()
    page.goto("/ui/apps/owl-facts")
    page.get_by_label("Animal").fill("cats")
    page.get_by_role("button", name="Run").click()
    page.locator("#thread .msg.assistant").get_by_text("echo: Tell me about cats.").wait_for()


def test_bad_definition_names_the_problem(page: Any) -> None:
    login(page)
    page.goto("/ui/build/new")
    page.get_by_label("Name", exact=True).fill("Broken")
    page.get_by_label("Slug").fill("Not A Slug")
    page.get_by_role("button", name="Save draft").click()
    alert = page.locator("#editor-error")
    alert.wait_for()
    assert "slug" in alert.inner_text()


def test_natural_language_builder_gives_a_draft_or_a_clear_error(page: Any) -> None:
    login(page)
    page.goto("/ui/build/describe")
    page.get_by_label("Describe the app you want").fill("an app that writes haiku about a topic")
    page.get_by_role("button", name="Draft it").click()
    page.wait_for_function(
        "() => !document.getElementById('builder').hidden || "
        "(document.getElementById('draft-status').textContent.length > 3 && !document.getElementById('draft-btn').disabled)"
    )
    shot(page, "13-builder-describe")
    if page.locator("#builder").is_visible():
        assert page.get_by_label("Name", exact=True).input_value()
    else:
        assert page.locator("#draft-status").inner_text() != "Drafting…"
