"""Conversation handling in the browser: a refused run rolls back visibly, regenerate and
copy work on an answer, and the history can be renamed and deleted."""

from __future__ import annotations

from typing import Any

from tests.conftest import Gateway
from tests.e2e.conftest import login, publish_app, send_message, shot
from tests.e2e.test_safety_a11y import _chat_app


def test_refused_run_rolls_back_and_names_the_field(page: Any) -> None:
    login(page)
    page.goto("/ui/apps/story-teller")
    page.get_by_role("button", name="Run").click()  # Topic is required and empty
    alert = page.locator("#run-error")
    alert.wait_for()
    assert "Topic is required" in alert.inner_text()
    page.wait_for_function("() => document.querySelectorAll('#thread .msg').length === 0")
    assert page.evaluate("() => document.activeElement.id") == "in-topic"
    assert page.get_attribute("#in-topic", "aria-invalid") == "true"
    shot(page, "14-rollback")


def test_regenerate_copy_rename_delete(page: Any, ui_gateway: Gateway) -> None:
    _chat_app(ui_gateway)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page)
    page.goto("/ui/apps/echo-chat")
    page.get_by_label("Message").fill("hello there")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("#thread .msg.assistant").last
    answer.get_by_text("echo: hello there").wait_for()
    page.wait_for_function(
        "() => document.querySelector('#thread .msg.assistant:last-child').dataset.status === 'complete'"
    )
    first_id = answer.get_attribute("data-id")
    answer.get_by_role("button", name="Regenerate").click()
    page.wait_for_function(
        f"() => {{ const a = document.querySelector('#thread .msg.assistant:last-child');"
        f" return a.dataset.status === 'complete' && a.dataset.id !== '{first_id}'; }}"
    )
    assert page.locator("#thread .msg.assistant").count() == 1
    answer.get_by_role("button", name="Copy").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == "echo: hello there"
    # rename, then delete, from the history
    item = page.locator("#history li").first
    page.once("dialog", lambda d: d.accept("Greeting test"))
    item.get_by_role("button", name="Rename").click()
    page.wait_for_timeout(300)
    page.reload()
    assert page.locator("#history li").first.locator("a").inner_text() == "Greeting test"
    before = page.locator("#history li").count()
    page.once("dialog", lambda d: d.accept())
    page.locator("#history li").first.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/ui/apps/echo-chat")
    assert page.locator("#history li").count() == before - 1
    assert page.get_by_text("Greeting test").count() == 0


def test_a_question_asked_back_is_answered_with_one_click(page: Any, ui_gateway: Gateway) -> None:
    """The app's form says formal, the message says casual: the answer's place asks which,
    the choices are buttons, one click goes on — and after a reload the question stays,
    answered, without its buttons."""
    with ui_gateway.client() as c:
        publish_app(c, {
            "name": "Tone mail", "slug": "tone-mail", "kind": "chat", "model": "echo",
            "variables": [{"name": "tone", "label": "Tone", "type": "select", "options": ["formal", "casual"],
                           "default": "formal", "required": True}],
            "system_prompt": "Write in a {{ tone }} tone.",
        })  # fmt: skip
    login(page)
    send_message(page, "tone-mail", "Reply to Jae, make it casual")
    question = page.locator("#thread .msg.assistant").last
    choices = question.locator(".choices")
    choices.wait_for()
    page.wait_for_function(
        "() => document.querySelector('#thread .msg.assistant:last-child').dataset.status === 'clarification'"
    )
    labels = [b.inner_text() for b in choices.get_by_role("button").all()]
    assert labels[:2] == ["formal", "casual"], labels
    assert "?" in question.locator("[data-md]").inner_text()
    shot(page, "21-asked-back")
    choices.get_by_role("button", name="casual").click()
    page.wait_for_function("() => document.querySelectorAll('#thread .msg').length === 4")
    page.wait_for_function(
        "() => document.querySelector('#thread .msg.assistant:last-child').dataset.status === 'complete'"
    )
    turns = page.locator("#thread .msg")
    assert turns.nth(2).inner_text().strip() == "casual"
    assert "(Clarified: tone = casual.)" in turns.nth(3).inner_text()
    shot(page, "22-answered")
    page.reload()
    assert page.locator("#thread .msg").count() == 4
    assert page.locator("#thread .msg.assistant").first.get_attribute("data-status") == "clarification"
    assert page.locator("#thread .choices").count() == 0  # answered: no buttons any more


def test_a_grounded_answer_lists_its_sources_under_it(page: Any, ui_gateway: Gateway) -> None:
    with ui_gateway.client() as c:
        if c.get("/api/apps/handbook-chat").status_code == 404:
            col = c.post("/api/knowledge/collections", json={"name": "Handbook"}).json()
            doc = b"# Travel policy\n\n## Hotels\n\nBook hotels up to 180 euros a night through the travel desk."
            r = c.post(
                f"/api/knowledge/collections/{col['id']}/documents", params={"filename": "travel.md"}, content=doc
            )
            assert r.status_code == 201, r.text
            publish_app(c, {"name": "Handbook chat", "slug": "handbook-chat", "kind": "chat", "model": "echo",
                            "knowledge": [col["id"]]})  # fmt: skip
    login(page)
    send_message(page, "handbook-chat", "How much may a hotel night cost?")
    page.wait_for_function(
        "() => document.querySelector('#thread .msg.assistant:last-child')?.dataset.status === 'complete'"
    )
    sources = page.locator("#thread .msg.assistant .sources li")
    assert sources.count() >= 1 and sources.first.inner_text() == "Travel policy > Hotels"
    shot(page, "23-sources")
    page.reload()
    assert page.locator("#thread .msg.assistant .sources li").first.inner_text() == "Travel policy > Hotels"
