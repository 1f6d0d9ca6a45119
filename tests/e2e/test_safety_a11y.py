"""Model output is rendered as Markdown without ever becoming HTML; every control has a
label and the main flows work from the keyboard; members don't see admin pages."""

from __future__ import annotations

from typing import Any

from tests.conftest import Gateway
from tests.e2e.conftest import DEMO_PASSWORD, login, publish_app

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
  .filter((el) => {
    if (el.tagName === 'BUTTON') return !(el.textContent.trim() || el.getAttribute('aria-label'));
    return !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'));
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def _chat_app(gw: Gateway) -> None:
    with gw.client() as c:
        publish_app(c, {"name": "Echo chat", "slug": "echo-chat", "kind": "chat", "model": "echo"})


def test_model_output_cannot_inject_html(page: Any, ui_gateway: Gateway) -> None:
    _chat_app(ui_gateway)
    login(page)
    page.goto("/ui/apps/echo-chat")
    attack = '<img src=x onerror="window.__xss=1"> **bold** `<b>code</b>` [link](javascript:alert(1)) <script>window.__xss=2</script>'
    page.get_by_label("Message").fill(attack)
    page.keyboard.press("Enter")  # Enter sends, from the keyboard
    answer = page.locator("#thread .msg.assistant").last
    answer.locator("strong").wait_for()
    page.wait_for_function(
        "() => document.querySelector('#thread .msg.assistant:last-child').dataset.status === 'complete'"
    )
    assert answer.locator("img, script, b").count() == 0
    assert answer.locator("a").count() == 0  # javascript: links are not links
    assert answer.locator("code").inner_text() == "<b>code</b>"
    assert page.evaluate("() => window.__xss") is None
    # and the same text in the admin record view is escaped too
    page.goto("/ui/admin/logs")
    page.locator("#logs-table tbody tr").first.get_by_role("link").click()
    assert page.locator(".thread img, .thread script").count() == 0
    assert page.evaluate("() => window.__xss") is None


def test_every_control_is_labelled(page: Any, ui_gateway: Gateway) -> None:
    page.goto("/ui/login")
    assert page.evaluate(UNLABELLED) == []
    login(page)
    for path in (
        "/ui/",
        "/ui/apps/story-teller",
        "/ui/admin/logs",
        "/ui/admin/usage",
        "/ui/admin/people",
        "/ui/admin/keys",
        "/ui/admin/quotas",
        "/ui/admin/jobs",
        "/ui/build/new",
    ):
        page.goto(path)
        assert page.evaluate(UNLABELLED) == [], path


def test_login_and_run_with_the_keyboard_only(page: Any) -> None:
    page.goto("/ui/login")
    assert page.evaluate("() => document.activeElement.id") == "email"  # autofocus
    page.keyboard.type("admin@demo.aiport.local")
    page.keyboard.press("Tab")
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.get_by_label("Search apps").focus()
    page.keyboard.type("story")
    assert page.locator("#app-grid > li:not([hidden])").count() == 1
    for _ in range(20):  # past the recent conversations, to the one card left
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()").endswith("Story teller"):
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/apps/story-teller")
    page.get_by_label("Topic").focus()
    page.keyboard.type("keyboards")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "in-tone"


def test_team_admins_see_their_team_usage_only(page: Any) -> None:
    login(page, "sara@demo.aiport.local")  # admin of the Support team, member of the org
    page.get_by_role("link", name="Usage").click()
    options = page.locator("#u-team option").all_inner_texts()
    assert options == ["Support"]
    assert page.goto("/ui/admin/usage?team=" + "x").status == 200  # another team id falls back to hers
    assert page.locator("#u-team option").all_inner_texts() == ["Support"]
    assert page.goto("/ui/admin/logs").status == 403


def test_members_see_no_admin_pages(page: Any) -> None:
    login(page, "joon@demo.aiport.local")
    assert page.get_by_role("link", name="Logs").count() == 0
    response = page.goto("/ui/admin/logs")
    assert response.status == 403
    assert "Only organization owners and admins" in page.inner_text("main")
    assert page.goto("/ui/admin/logs.csv").status == 403
    assert page.goto("/ui/admin/usage").status == 403
